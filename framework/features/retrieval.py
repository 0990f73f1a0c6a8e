"""Point-in-time correct training features, and online lookups.

``get_historical_features(repo, entity_df, service)`` returns the entity rows
in their input order plus one column per feature, named as declared. Two
engines give the same answer:

- ``"feast"``: Feast's own ``get_historical_features`` on the same repo;
- ``"fast"`` (the default where it applies): the same point-in-time rule run
  with :mod:`framework.features.pit` over the views' parquet files, and on-demand views
  applied with their own transformation.

After either engine: windowed counts and sums that come back null (no row at or
before t, an expired row, an unknown entity) are 0, because that is their value;
a windowed mean stays null. Types are those declared (integers of other views
are nullable integers).

``get_online_features(repo, entity_rows, service)`` reads the online store and
fills the same defaults, with a ``feature_status`` per row: ``ok`` when every
stored view had the entity, ``defaults`` when none had it, ``partial`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from framework.declare.dates import to_utc_timestamps
from framework.declare.repo import FeatureRepo
from framework.errors import DataError, FeatureRepoError, StoreError

__all__ = [
    "ViewFeatures",
    "check_entity_frame",
    "get_historical_features",
    "get_online_features",
    "resolve_features",
]

TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class ViewFeatures:
    """The features one view contributes, and how to fill and type them."""

    view: Any  # feast FeatureView or OnDemandFeatureView
    features: list[str]
    dtypes: dict[str, str]  # feature -> Feast type name
    zero_fill: frozenset[str]  # windowed counts and sums: null means 0

    @property
    def windowed(self) -> bool:
        return bool(self.zero_fill)

    @property
    def on_demand(self) -> bool:
        return not hasattr(self.view, "batch_source")


def _select(pairs: list[tuple[Any, list[str]]], features: list[str]) -> list[tuple[Any, list[str]]]:
    """Keep only ``features`` (names as declared), refusing unknown ones by name."""
    import difflib

    known = [n for _, names in pairs for n in names]
    unknown = [f for f in features if f not in known]
    if unknown:
        hints = {f: difflib.get_close_matches(f, known, n=3) for f in unknown}
        raise FeatureRepoError(
            f"Unknown feature(s) {unknown}; close matches: {hints}. "
            "List the features with `feast features list` in the repo."
        )
    wanted = set(features)
    return [(v, [n for n in names if n in wanted]) for v, names in pairs if wanted & set(names)]


def resolve_features(
    repo: FeatureRepo, service: str | None = None, features: list[str] | None = None
) -> list[ViewFeatures]:
    """The views and features of a feature service (or of every view), narrowed to ``features``."""
    from framework.declare.windows import WindowSpec

    if service is None:
        pairs = [
            (v, [f.name for f in v.features])
            for v in [*repo.feature_views, *repo.on_demand_feature_views]
        ]
    else:
        fs = repo.feature_service(service)
        pairs = [
            (repo.view(p.name), [f.name for f in p.features]) for p in fs.feature_view_projections
        ]
    if features:
        pairs = _select(pairs, features)
    out = []
    for view, names in pairs:
        types = {f.name: str(f.dtype) for f in view.features}
        spec = WindowSpec.from_feature_view(view) if hasattr(view, "batch_source") else None
        zero = set()
        if spec is not None:
            zero = {
                spec.feature_name(a, w)
                for a in spec.aggregates
                if a.function in ("count", "sum")
                for w in spec.windows
            }
        out.append(ViewFeatures(view, names, {n: types[n] for n in names}, frozenset(zero)))
    return out


def _entity_keys(views: list[ViewFeatures]) -> list[str]:
    keys: list[str] = []
    for v in views:
        if v.on_demand:
            continue
        for col in v.view.entity_columns:
            if col.name not in keys and not col.name.startswith("__dummy"):
                keys.append(col.name)
    return keys


def check_entity_frame(
    entity_df: pd.DataFrame, keys: list[str], source: str = "entity rows"
) -> pd.DataFrame:
    """Check the entity rows: keys and a tz-aware ``event_timestamp``, no nulls."""
    missing = [c for c in [*keys, TIMESTAMP] if c not in entity_df.columns]
    if missing:
        raise DataError(
            f"{source} is missing column(s) {missing}; it needs {[*keys, TIMESTAMP]} "
            f"and has {list(entity_df.columns)}."
        )
    if len(entity_df) == 0:
        raise DataError(f"{source} is empty; it needs at least one row.")
    df = entity_df.reset_index(drop=True).copy()
    for key in keys:
        if df[key].isna().any():
            raise DataError(f"{source}: column {key!r} has null values.")
        if not pd.api.types.is_integer_dtype(df[key]):
            raise DataError(f"{source}: column {key!r} must hold integers, got {df[key].dtype}.")
        df[key] = df[key].astype("int64")
    ts = df[TIMESTAMP]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(ts):
            raise DataError(
                f"{source}: column {TIMESTAMP!r} holds timezone-naive timestamps; they are "
                "refused as ambiguous. Localize them (tz_localize('UTC')) or write an offset "
                "such as 2025-06-01T12:00:00Z."
            )
        raise DataError(f"{source}: column {TIMESTAMP!r} must hold timestamps, got {ts.dtype}.")
    if ts.isna().any():
        raise DataError(f"{source}: column {TIMESTAMP!r} has null values.")
    df[TIMESTAMP] = ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    return df


_NULLABLE = {"Int32": "Int32", "Int64": "Int64", "Float32": "float32", "Float64": "float64"}


def _finish(df: pd.DataFrame, views: list[ViewFeatures]) -> pd.DataFrame:
    """Fill windowed counts and sums with 0 and give every feature its declared type."""
    for vf in views:
        for name in vf.features:
            df[name] = _typed_series(df[name], vf.dtypes[name], name in vf.zero_fill)
    return df


def _typed_series(col: pd.Series, typ: str, zero_fill: bool) -> Any:
    if zero_fill:
        return col.fillna(0).astype("int32" if typ == "Int32" else "float64")
    if typ in _NULLABLE:
        if typ.startswith("Int"):
            return pd.array(col, dtype=_NULLABLE[typ])
        return col.astype(_NULLABLE[typ])
    if typ == "Bool":
        return pd.array(col, dtype="boolean")
    if typ == "String":
        return col.astype(object).where(col.notna(), None)
    return col


def _typed(values: list | pd.Series, typ: str, zero_fill: bool) -> Any:
    """One online column as ``_finish`` types it, built straight from a list of values."""
    if isinstance(values, pd.Series):
        return _typed_series(values, typ, zero_fill)
    if zero_fill:
        if typ == "Int32":
            return np.array([0 if v is None else v for v in values], dtype="int32")
        out = np.array([np.nan if v is None else v for v in values], dtype="float64")
        out[np.isnan(out)] = 0.0
        return out
    if typ in _NULLABLE:
        if typ.startswith("Int"):
            return pd.array(values, dtype=_NULLABLE[typ])
        return np.array([np.nan if v is None else v for v in values], dtype=_NULLABLE[typ])
    if typ == "Bool":
        return pd.array(values, dtype="boolean")
    if typ == "String":
        return np.array([None if v is None or v != v else v for v in values], dtype=object)
    return values


def _fast_supported(views: list[ViewFeatures]) -> bool:
    from feast import FileSource, RequestSource

    for vf in views:
        if vf.on_demand:
            sources = list(vf.view.source_request_sources.values())
            if vf.view.source_feature_view_projections or not all(
                isinstance(s, RequestSource) for s in sources
            ):
                return False
        else:
            src = vf.view.batch_source
            if (
                not isinstance(src, FileSource)
                or src.field_mapping
                or len(vf.view.entity_columns) != 1
            ):
                return False
    return True


def _fast(df: pd.DataFrame, views: list[ViewFeatures]) -> dict[str, Any]:
    from framework.declare.windows import WindowSpec
    from framework.features.pit import load_index
    from framework.prepare.window_index import load_window_index

    out: dict[str, Any] = {}
    times = df[TIMESTAMP].astype("int64").to_numpy()  # microseconds: see check_entity_frame
    for vf in views:
        if vf.on_demand:
            produced = vf.view.feature_transformation.transform(df)
            out.update({n: produced[n].to_numpy() for n in vf.features})
            continue
        spec = WindowSpec.from_feature_view(vf.view)
        windows = load_window_index(spec) if spec else None
        if windows is not None:
            key = spec.entity_key
            values, _ = windows.at(df[key].to_numpy(), times)
            out.update({n: values[n] for n in vf.features})
            continue
        src = vf.view.batch_source
        key = vf.view.entity_columns[0].name
        index = load_index(src.path, key, src.timestamp_field, vf.features, presorted=vf.windowed)
        ttl = vf.view.ttl
        ttl_us = int(ttl.total_seconds() * 1_000_000) if ttl else 0
        rows = index.lookup(df[key].to_numpy(), times, ttl_us)
        for name, values in index.take(rows, vf.features).items():
            out[name] = values.to_pandas()
    return out


def _refs(views: list[ViewFeatures]) -> list[str]:
    """Feast feature references (``view:feature``) of the resolved features."""
    return [f"{vf.view.name}:{n}" for vf in views for n in vf.features]


def _feast(repo: FeatureRepo, df: pd.DataFrame, views: list[ViewFeatures]) -> dict[str, Any]:
    store = repo.store
    features = _refs(views)
    edf = df.copy()
    edf["__row"] = np.arange(len(edf))
    try:
        result = store.get_historical_features(entity_df=edf, features=features).to_df()
    except Exception as exc:
        raise StoreError(f"Feast get_historical_features failed: {exc}") from exc
    result = result.sort_values("__row").reset_index(drop=True)
    return {n: result[n].to_numpy() for vf in views for n in vf.features}


def get_historical_features(
    repo: FeatureRepo,
    entity_df: pd.DataFrame,
    service: str | None = None,
    *,
    features: list[str] | None = None,
    engine: str = "auto",
) -> pd.DataFrame:
    """The entity rows (input order) plus the point-in-time value of every feature."""
    if engine not in ("auto", "fast", "feast"):
        raise FeatureRepoError(f"engine must be 'auto', 'fast' or 'feast'; got {engine!r}.")
    views = resolve_features(repo, service, features)
    df = check_entity_frame(entity_df, _entity_keys(views))
    taken = set(df.columns)
    clash = [n for vf in views for n in vf.features if n in taken]
    if clash:
        raise DataError(f"entity rows already have column(s) {clash} named like features.")
    use_fast = engine == "fast" or (engine == "auto" and _fast_supported(views))
    if engine == "fast" and not _fast_supported(views):
        raise FeatureRepoError("The fast engine supports file-backed single-key views only.")
    values = _fast(df, views) if use_fast else _feast(repo, df, views)
    names = features or [n for vf in views for n in vf.features]  # the order asked for
    frame = pd.DataFrame({n: values[n] for n in names}, index=df.index)
    return _finish(pd.concat([df, frame], axis=1), views)


def get_online_features(
    repo: FeatureRepo,
    entity_rows: list[dict[str, Any]],
    service: str | None = None,
    *,
    features: list[str] | None = None,
    engine: str = "auto",
) -> pd.DataFrame:
    """Online values for ``entity_rows`` (dicts of keys and optional ``event_timestamp``).

    ``engine="fast"`` (default where it applies) reads the store directly
    (:mod:`framework.features.online_read`); ``"feast"`` goes through Feast's
    ``get_online_features``. The tests check that both give the same frame.
    """
    from framework.features.online_read import reader

    if engine not in ("auto", "fast", "feast"):
        raise FeatureRepoError(f"engine must be 'auto', 'fast' or 'feast'; got {engine!r}.")
    fast = reader(repo, service, features) if engine != "feast" else None
    if engine == "fast" and fast is None:
        raise FeatureRepoError("The fast online engine supports single-key views only.")
    views = fast.views if fast is not None else resolve_features(repo, service, features)
    keys = _entity_keys(views)
    rows = []
    now = datetime.now(UTC)
    for i, row in enumerate(entity_rows):
        missing = [k for k in keys if k not in row]
        if missing:
            raise DataError(f"entity row {i} is missing {missing}; it has {sorted(row)}.")
        rows.append({**row, TIMESTAMP: row.get(TIMESTAMP, now)})
    frame = pd.DataFrame(rows)
    frame[TIMESTAMP] = to_utc_timestamps(frame[TIMESTAMP]).astype("datetime64[us, UTC]")
    names = features or [n for vf in views for n in vf.features]  # the order asked for
    if fast is not None:
        data, found = fast.read(frame)
        typed = {
            n: _typed(data[n], vf.dtypes[n], n in vf.zero_fill)
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
            features=_refs(views), entity_rows=request.to_dict("records")
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
    result = _finish(pd.concat([frame, out], axis=1), views)
    result["feature_status"] = _status(found, frame)
    return result


def _status(found: dict[str, list[bool]], frame: pd.DataFrame) -> np.ndarray:
    """Per row: ``ok`` when every stored view had the entity, ``defaults`` when none had
    it, ``partial`` otherwise."""
    has = np.array(list(found.values()), dtype=bool).reshape(len(found), len(frame))
    return np.where(has.all(axis=0), "ok", np.where(has.any(axis=0), "partial", "defaults"))
