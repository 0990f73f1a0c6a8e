"""Features: online values for serving, read from the online store.

``get_online_features(repo, entity_rows, service)`` reads the online store and
fills the same defaults, with a ``feature_status`` per row: ``ok`` when every
stored view had the entity, ``defaults`` when none had it, ``partial`` otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from framework.declare.dates import to_utc_timestamps
from framework.declare.repo import FeatureRepo
from framework.errors import DataError, FeatureRepoError, StoreError
from framework.features.resolve import (
    ENGINES,
    TIMESTAMP,
    feature_refs,
    features_for_columns,
    finish,
    key_kinds,
    resolve_features,
    typed_column,
)

__all__ = ["get_online_features"]


def get_online_features(
    repo: FeatureRepo,
    entity_rows: list[dict[str, Any]],
    service: str | None = None,
    *,
    features: list[str] | None = None,
    engine: str = "auto",
    early: str = "refuse",
) -> pd.DataFrame:
    """Online values for ``entity_rows`` (dicts of keys and optional ``event_timestamp``).

    Windowed features are exact at each row's time, from the last materialization
    on. A row time before it is refused (``early="refuse"``, a ``DataError``) or read
    as of the materialization (``early="clamp"``: what Feast's store holds; the
    service does this, so a client clock a moment behind is not an error).

    ``engine="direct"`` (default where it applies) reads the store directly
    (:mod:`framework.features.online_read`); ``"feast"`` goes through Feast's
    ``get_online_features``. The tests check that both give the same frame.
    """
    from framework.features.online_read import reader

    if engine not in ENGINES:
        raise FeatureRepoError(f"engine must be one of {ENGINES}; got {engine!r}.")
    if service is None and features is None:
        features = features_for_columns(repo, {k for row in entity_rows for k in row})
    fast = reader(repo, service, features) if engine != "feast" else None
    if engine == "direct" and fast is None:
        raise FeatureRepoError("The direct online engine supports single-key views only.")
    views = fast.views if fast is not None else resolve_features(repo, service, features)
    kinds = key_kinds(views)
    rows = []
    now = datetime.now(UTC)
    for i, row in enumerate(entity_rows):
        missing = [k for k in kinds if k not in row]
        if missing:
            raise DataError(f"entity row {i} is missing {missing}; it has {sorted(row)}.")
        typed = {k: _key_value(row[k], kind, k, i) for k, kind in kinds.items()}
        rows.append({**row, **typed, TIMESTAMP: row.get(TIMESTAMP, now)})
    frame = pd.DataFrame(rows)
    frame[TIMESTAMP] = to_utc_timestamps(frame[TIMESTAMP]).astype("datetime64[us, UTC]")
    names = features or [n for vf in views for n in vf.features]  # the order asked for
    if fast is not None:
        data, found = fast.read(frame, early=early)
        typed = {
            n: typed_column(data[n], vf.dtypes[n], n in vf.zero_fill, vf.fills.get(n))
            for vf in views
            for n in vf.features
            if n in names
        }
        columns = {c: frame[c].to_numpy() for c in frame.columns}
        columns[TIMESTAMP] = frame[TIMESTAMP].array
        return pd.DataFrame(
            {**columns, **{n: typed[n] for n in names}, "feature_status": _status(found, frame)},
            index=frame.index,
        )
    request = frame.copy()
    request[TIMESTAMP] = [ts.to_pydatetime() for ts in request[TIMESTAMP]]
    try:
        response = repo.store.get_online_features(
            features=feature_refs(views), entity_rows=request.to_dict("records")
        )
    except Exception as exc:
        raise StoreError(f"Reading the online store failed: {exc}") from exc
    data = response.to_dict()
    out = pd.DataFrame({n: data[n] for n in names})
    found = {
        vf.view.name: out[vf.features].notna().any(axis=1).tolist()
        for vf in views
        if not vf.on_demand
    }
    result = finish(pd.concat([frame, out], axis=1), views)
    result["feature_status"] = _status(found, frame)
    return result


def _key_value(value: Any, kind: str, key: str, row: int) -> Any:
    """A key value of its kind: a string key keeps text; an integer key gets an int."""
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise DataError(f"entity row {row}: {key!r} must be a string, got {value!r}.")
        return str(value)
    if isinstance(value, bool):
        raise DataError(f"entity row {row}: {key!r} must be an integer, got {value!r}.")
    if isinstance(value, int | np.integer):
        return int(value)
    try:
        return int(str(value))
    except ValueError:
        raise DataError(f"entity row {row}: {key!r} must be an integer, got {value!r}.") from None


def _status(found: dict[str, list[bool]], frame: pd.DataFrame) -> np.ndarray:
    """Per row: ``ok`` when every stored view had the entity, ``defaults`` when none had
    it, ``partial`` otherwise."""
    has = np.array(list(found.values()), dtype=bool).reshape(len(found), len(frame))
    return np.where(has.all(axis=0), "ok", np.where(has.any(axis=0), "partial", "defaults"))
