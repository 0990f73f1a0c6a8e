"""Training sets: point-in-time features at each observation, plus its label.

``build_training_set(repo, problem)`` joins the problem's observations (entity,
t, label) with the features of its feature service at t (``get_historical_features``)
and returns a ``TrainingSet``: the frame, the spec that made it, and a content
hash. ``save`` writes it under ``data/datasets/<problem>/<hash>/``; building
twice from the same data gives the same hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from framework.common.columns import LABEL, TIMESTAMP
from framework.declare.problems import DailyTotal, Problem
from framework.declare.repo import FeatureRepo
from framework.errors import DataError, FeatureRepoError
from framework.features.horizons import HORIZON_FEATURES
from framework.tasks import task_of
from framework.training.labels import build_observations

if TYPE_CHECKING:
    from framework.features.resolve import ViewFeatures

__all__ = [
    "LABEL",
    "TIMESTAMP",
    "TrainingSet",
    "build_training_set",
    "check_no_leakage",
    "load_training_set",
]


def content_hash(frame: pd.DataFrame) -> str:
    """A hash of the values, column names and types, in row order."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[c, str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class TrainingSet:
    """A frame of (entity, event_timestamp, features..., label) and how it was made."""

    problem: str
    frame: pd.DataFrame
    features: list[str]
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return content_hash(self.frame)

    @property
    def keys(self) -> list[str]:
        """The problem's join keys (one, or several for a composite key)."""
        entity = self.spec["entity"]
        return [entity] if isinstance(entity, str) else list(entity)

    @property
    def entities(self) -> int:
        """The number of distinct entities (key tuples) observed."""
        return len(self.frame[self.keys].drop_duplicates())

    def summary(self) -> dict[str, Any]:
        ts = self.frame[TIMESTAMP]
        label = self.frame[LABEL]
        out = {
            "problem": self.problem,
            "hash": self.hash,
            "rows": len(self.frame),
            "entities": self.entities,
            "features": len(self.features),
            "time_range": [ts.min().isoformat(), ts.max().isoformat()],
            "observation_times": int(ts.nunique()),
        }
        out.update(task_of(self.spec["task"]).label_summary(label))
        return out

    def save(self, root: str | Path) -> Path:
        """Write data.parquet and dataset.json under root/<problem>/<hash>/ (atomically)."""
        final = Path(root) / self.problem / self.hash
        if (final / "dataset.json").exists():
            return final
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.frame.to_parquet(tmp / "data.parquet", index=False)
        meta = {**self.summary(), "feature_names": self.features, "spec": self.spec}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2, default=str))
        os.replace(tmp, final)
        return final


def load_training_set(path: str | Path) -> TrainingSet:
    path = Path(path)
    meta = json.loads((path / "dataset.json").read_text())
    frame = pd.read_parquet(path / "data.parquet")
    ts = TrainingSet(meta["problem"], frame, meta["feature_names"], meta["spec"])
    if ts.hash != meta["hash"]:
        raise DataError(
            f"Dataset {path} does not match its recorded hash {meta['hash']}: it was changed."
        )
    return ts


def check_no_leakage(problem: Problem, views: list[ViewFeatures]) -> None:
    """Refuse a problem whose features could see its label window.

    Stored views are read with a point-in-time join (rows at or before t) and
    windows look back, so they cannot. What could: a feature named like the
    label or the entity key, and an on-demand view that reads request fields
    other than the observation time, because in training those come from the
    entity rows, where the label lives.
    """
    features = [n for vf in views for n in vf.features]
    clash = sorted({LABEL, *problem.keys} & set(features))
    if clash:
        raise FeatureRepoError(
            f"Problem {problem.name!r}: feature service {problem.feature_service!r} has feature(s) "
            f"named {clash}, like the label or an entity key; rename them."
        )
    for vf in views:
        if not vf.on_demand:
            continue
        fields = sorted(
            f.name for src in vf.view.source_request_sources.values() for f in src.schema
        )
        extra = [f for f in fields if f != TIMESTAMP]
        if extra:
            raise FeatureRepoError(
                f"Problem {problem.name!r}: on-demand view {vf.view.name!r} reads request field(s) "
                f"{extra} besides {TIMESTAMP!r}. In training they would come from the entity rows, "
                "next to the label: features may only use data up to the observation time. "
                "Store those values in a feature view with a timestamp instead."
            )


def _window_facts(views: list[ViewFeatures]) -> dict[str, list[Any]]:
    """From the declarations: the zero-filled windowed features (counts and sums), and for
    each aggregate its features ordered by window (shortest first), for the validation suite."""
    from framework.declare.windows import WindowSpec

    zero_fill: list[str] = []
    groups: list[list[str]] = []
    for vf in views:
        spec = None if vf.on_demand else WindowSpec.from_feature_view(vf.view)
        if spec is None:
            continue
        zero_fill += [f for f in vf.features if f in vf.zero_fill]
        for agg in spec.aggregates:
            if agg.function not in ("count", "count_distinct"):
                continue  # only counts never fall as the window grows (a sum may)
            group = [spec.feature_name(agg, w) for w in spec.windows]
            group = [f for f in group if f in vf.features and f in vf.zero_fill]
            if len(group) > 1:
                groups.append(group)
    return {"zero_fill": zero_fill, "window_groups": groups}


Rows = tuple[pd.DataFrame, list[str]]


def _point_rows(
    repo: FeatureRepo,
    problem: Problem,
    observations: pd.DataFrame,
    features: list[str],
    engine: str,
) -> Rows:
    """The feature service's values at each observation (a point in time)."""
    from framework.features.historical import get_historical_features

    fetched = get_historical_features(repo, observations, problem.feature_service, engine=engine)
    return fetched, features


def _forecast_rows(
    repo: FeatureRepo,
    problem: Problem,
    observations: pd.DataFrame,
    features: list[str],
    engine: str,
) -> Rows:
    """Features at each origin (fetched once per entity and origin), joined to its
    horizons, with the target day's calendar and the seasonal-naive values."""
    from framework.features.historical import get_historical_features
    from framework.features.horizons import daily_series, horizon_features

    label = problem.label
    assert isinstance(label, DailyTotal)
    keys = list(problem.keys)
    origins = observations[[*keys, TIMESTAMP]].drop_duplicates(ignore_index=True)
    fetched = get_historical_features(repo, origins, problem.feature_service, engine=engine)
    rows = observations.merge(fetched, on=[*keys, TIMESTAMP], how="left", validate="many_to_one")
    series = daily_series(
        label.source or problem.events, keys, where=label.where, column=label.column
    )
    return horizon_features(rows, series, country=label.country), [*features, *HORIZON_FEATURES]


def _ranking_rows(
    repo: FeatureRepo,
    problem: Problem,
    observations: pd.DataFrame,
    features: list[str],
    engine: str,
) -> Rows:
    """Features of each shown item at its list's time (fetched once per key and time),
    beside the list it was shown in; refuses a popularity feature the service lacks."""
    from framework.features.historical import get_historical_features

    if problem.popularity not in features:
        raise FeatureRepoError(
            f"Problem {problem.name!r}: popularity={problem.popularity!r} is not a feature of "
            f"its feature service {problem.feature_service!r}; name one of {features[:12]}."
        )
    group = str(problem.group)
    clash = sorted({group} & set(features))
    if clash:
        raise FeatureRepoError(
            f"Problem {problem.name!r}: the group column {group!r} is also a feature name."
        )
    keys = list(problem.keys)
    points = observations[[*keys, TIMESTAMP]].drop_duplicates(ignore_index=True)
    fetched = get_historical_features(repo, points, problem.feature_service, engine=engine)
    fetched = fetched[[*keys, TIMESTAMP, *features]]
    rows = observations.merge(fetched, on=[*keys, TIMESTAMP], how="left", validate="many_to_one")
    return rows, features


# how the training rows of each kind of observation are made (``Task.observations``)
_ROWS = {"points": _point_rows, "horizons": _forecast_rows, "lists": _ranking_rows}


def build_training_set(
    repo: FeatureRepo, problem: Problem | str, *, engine: str = "auto"
) -> TrainingSet:
    """Observations with labels, joined with the feature service's values at t."""
    from framework.features.resolve import resolve_features

    if isinstance(problem, str):
        problem = repo.problem(problem)
    views = resolve_features(repo, problem.feature_service)
    features = [n for vf in views for n in vf.features]
    check_no_leakage(problem, views)
    observations = build_observations(problem)
    kind = problem.kind
    frame, features = _ROWS[kind.observations](repo, problem, observations, features, engine)
    frame = frame[[*problem.keys, TIMESTAMP, *kind.row_columns(problem), *features, LABEL]]
    kind.check_training_labels(problem, frame[LABEL])
    spec = {
        **problem.spec(),
        "engine": engine,
        "feature_dtypes": {f: str(frame[f].dtype) for f in features},
        **_window_facts(views),
    }
    return TrainingSet(problem.name, frame, features, spec)
