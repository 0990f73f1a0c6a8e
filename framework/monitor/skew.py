"""Monitor: train/serve skew. Did the service see the features training would have seen?

``skew(repo, "churn")`` takes logged online predictions (entity, request time,
the feature values served), fetches the historical features of the same entity
at the same time with the point-in-time retrieval that builds training sets,
and counts per feature the rows whose values differ (numbers beyond a relative
1e-9, text and booleans exactly, a missing value only equal to a missing one).

The rate should be zero. A non-zero rate has a cause worth finding: a stale
online store (requests later than the last materialization see older values),
a transformation that differs between the paths, or a bug. The report names
each feature that differs, with examples.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from framework.common.jsonable import finite
from framework.declare.repo import FeatureRepo
from framework.errors import DataError

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["FeatureSkew", "SkewReport", "skew"]

EXAMPLES = 3


@dataclass(frozen=True)
class FeatureSkew:
    name: str
    mismatches: int
    rate: float
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SkewReport:
    problem: str
    model_version: str
    rows: int
    features: list[FeatureSkew]

    @property
    def skewed(self) -> list[FeatureSkew]:
        return [f for f in self.features if f.mismatches]

    def to_json(self) -> dict[str, Any]:
        return finite(
            {**asdict(self), "skewed": [f.name for f in self.skewed], "clean": not self.skewed}
        )

    def to_text(self) -> str:
        head = (
            f"Train/serve skew of {self.problem} {self.model_version}: {self.rows:,} logged "
            "predictions re-fetched at their entity and time"
        )
        if not self.skewed:
            return f"{head}\n  no feature differs ({len(self.features)} features compared)"
        lines = [head]
        for f in self.skewed:
            lines.append(f"  {f.name}: {f.mismatches:,} rows differ ({f.rate:.2%}), e.g.")
            lines += [
                f"    entity {e['entity_id']} at {e['at']}: served {e['served']!r}, "
                f"offline {e['offline']!r}"
                for e in f.examples
            ]
        return "\n".join(lines)


def _same(served: pd.Series, offline: pd.Series) -> np.ndarray:
    s_missing, o_missing = served.isna().to_numpy(), offline.isna().to_numpy()
    both = ~s_missing & ~o_missing
    equal = s_missing & o_missing
    if pd.api.types.is_bool_dtype(offline) or not pd.api.types.is_numeric_dtype(offline):
        s = served.astype(object).to_numpy()
        o = offline.astype(object).to_numpy()
        equal[both] = [a == b for a, b in zip(s[both], o[both], strict=True)]
        return equal
    s = pd.to_numeric(served, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    o = pd.to_numeric(offline, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    equal[both] = np.isclose(s[both], o[both], rtol=1e-9, atol=0.0)
    return equal


def skew(
    repo: FeatureRepo,
    problem: str,
    *,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    db: str | Path | None = None,
) -> SkewReport:
    """The skew report of ``problem``'s logged predictions (see the module docstring)."""
    from framework.features.historical import get_historical_features
    from framework.models.registry import registry_of
    from framework.monitor.drift import logged_predictions

    declared = repo.problem(problem)
    artifact = registry_of(repo).get(declared.name, version)
    features = artifact.meta.features
    log = logged_predictions(
        db or repo.prediction_db, declared.name, artifact.version, since, until
    )
    if log.empty:
        raise DataError(
            f"No logged predictions of {declared.name} {artifact.version} in the window: "
            "nothing to compare."
        )
    served = pd.DataFrame([json.loads(v) for v in log["features"]])
    from framework.common.keys import entity_frame

    rows = entity_frame(log["entity_id"], repo.key_kinds(declared))
    rows["event_timestamp"] = (
        pd.to_datetime(log["request_ts"], utc=True).astype("datetime64[us, UTC]").to_numpy()
    )
    offline = get_historical_features(repo, rows, artifact.meta.feature_service)
    out = []
    for name in features:
        if name not in served:
            raise DataError(f"The logged predictions have no value for feature {name!r}.")
        same = _same(served[name], offline[name])
        bad = np.flatnonzero(~same)
        examples = [
            {
                "entity_id": str(log["entity_id"].iloc[i]),
                "at": rows["event_timestamp"].iloc[i].isoformat(),
                "served": _plain(served[name].iloc[i]),
                "offline": _plain(offline[name].iloc[i]),
            }
            for i in bad[:EXAMPLES]
        ]
        out.append(FeatureSkew(name, len(bad), len(bad) / len(log), examples))
    return SkewReport(declared.name, artifact.version, len(log), out)


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value
