"""Features: which views and features a request names, and the shape of its entity rows.

``resolve_features(repo, service, features)`` turns a feature service (or every
registered view) into ``ViewFeatures``: each view with the features it contributes,
their declared types and which of them are windowed counts and sums (null means 0).
``check_entity_frame`` checks the entity rows a retrieval is asked for. Both
retrieval paths (historical and online) and their typing (``finish``) share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from framework.declare.repo import FeatureRepo
from framework.errors import DataError, FeatureRepoError

__all__ = [
    "ENGINES",
    "TIMESTAMP",
    "ViewFeatures",
    "check_entity_frame",
    "entity_keys",
    "feature_refs",
    "features_for_columns",
    "finish",
    "resolve_features",
    "typed_column",
]

TIMESTAMP = "event_timestamp"
ENGINES = (
    "auto",
    "direct",
    "feast",
)  # direct: our readers of the files and store; feast: Feast's API


@dataclass(frozen=True)
class ViewFeatures:
    """The features one view contributes, and how to fill and type them."""

    view: Any  # feast FeatureView or OnDemandFeatureView
    features: list[str]
    dtypes: dict[str, str]  # feature -> Feast type name
    zero_fill: frozenset[str]  # windowed counts, sums and distinct counts: null means 0
    windowed: bool = False  # a WindowedFeatureView
    # windowed ratios with a prior: null (no events in the window) means a / b
    fills: dict[str, float] = field(default_factory=dict)

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


def features_for_columns(repo: FeatureRepo, columns: Any) -> list[str] | None:
    """Without a feature service: the features of every view whose join keys are all among
    ``columns`` (views without keys, such as date expansions, included), so rows keyed by
    one entity read that entity's features in a repo of several. None: every view fits,
    or none does (then the missing keys are reported as usual)."""
    have = set(columns)
    views = [*repo.feature_views, *repo.on_demand_feature_views]

    def keys(view: Any) -> list[str]:  # Feast gives a view without entities "__dummy_id"
        return [c.name for c in getattr(view, "entity_columns", []) if not c.name.startswith("__")]

    fits = [v for v in views if all(k in have for k in keys(v))]
    if len(fits) == len(views) or not any(keys(v) for v in fits):
        return None
    return [f.name for v in fits for f in v.features]


def resolve_features(
    repo: FeatureRepo, service: str | None = None, features: list[str] | None = None
) -> list[ViewFeatures]:
    """The views and features of a feature service (or of every view), narrowed to ``features``."""
    from framework.declare.windows import ZERO_WHEN_EMPTY, WindowSpec

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
        zero: set[str] = set()
        fills: dict[str, float] = {}
        if spec is not None:
            zero = {
                spec.feature_name(a, w)
                for a in spec.aggregates
                if a.function in ZERO_WHEN_EMPTY
                for w in spec.windows
            }
            fills = {
                spec.feature_name(a, w): float(a.empty_value)
                for a in spec.aggregates
                if a.empty_value is not None
                for w in spec.windows
            }
        dtypes = {n: types[n] for n in names}
        out.append(ViewFeatures(view, names, dtypes, frozenset(zero), spec is not None, fills))
    return out


def entity_keys(views: list[ViewFeatures]) -> list[str]:
    return list(key_kinds(views))


def key_kinds(views: list[ViewFeatures]) -> dict[str, str]:
    """The join keys of the views, in order, and their kind (``int`` or ``string``)."""
    keys: dict[str, str] = {}
    for v in views:
        if v.on_demand:
            continue
        for col in v.view.entity_columns:
            if col.name not in keys and not col.name.startswith("__dummy"):
                keys[col.name] = "string" if str(col.dtype) == "String" else "int"
    return keys


def check_entity_frame(
    entity_df: pd.DataFrame, keys: list[str] | dict[str, str], source: str = "entity rows"
) -> pd.DataFrame:
    """Check the entity rows: keys of their kind and a tz-aware ``event_timestamp``, no nulls."""
    kinds = keys if isinstance(keys, dict) else dict.fromkeys(keys, "int")
    keys = list(kinds)
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
        if kinds[key] == "string":
            if pd.api.types.is_integer_dtype(df[key]):  # digits read from a CSV
                df[key] = df[key].astype(str)
            if not (
                pd.api.types.is_string_dtype(df[key]) or pd.api.types.is_object_dtype(df[key])
            ) or not all(isinstance(v, str) for v in df[key]):
                raise DataError(
                    f"{source}: column {key!r} must hold strings (the entity's key is a "
                    f"string), got {df[key].dtype}."
                )
            df[key] = df[key].astype(object)
            continue
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


_ZERO = {"Int32": "int32", "Int64": "int64", "Float64": "float64", "Float32": "float64"}
_NULLABLE = {"Int32": "Int32", "Int64": "Int64", "Float32": "float32", "Float64": "float64"}


def finish(df: pd.DataFrame, views: list[ViewFeatures]) -> pd.DataFrame:
    """Fill windowed counts and sums with 0 and give every feature its declared type."""
    for vf in views:
        for name in vf.features:
            df[name] = _typed_series(
                df[name], vf.dtypes[name], name in vf.zero_fill, vf.fills.get(name)
            )
    return df


def finish_columns(
    df: pd.DataFrame, types: list[tuple[str, str, bool, float | None]]
) -> pd.DataFrame:
    """``finish`` from a plain plan: (feature, Feast type name, zero fill, empty value)
    per feature (what an executor gets, instead of the views)."""
    for name, typ, zero_fill, fill in types:
        df[name] = _typed_series(df[name], typ, zero_fill, fill)
    return df


def _typed_series(col: pd.Series, typ: str, zero_fill: bool, fill: float | None = None) -> Any:
    if fill is not None:  # a ratio's prior: an empty window is a / b
        return pd.to_numeric(col, errors="coerce").astype("float64").fillna(fill)
    if zero_fill:
        return col.fillna(0).astype(_ZERO[typ])
    if typ in _NULLABLE:
        if typ.startswith("Int"):
            return pd.array(col, dtype=_NULLABLE[typ])
        return col.astype(_NULLABLE[typ])
    if typ == "Bool":
        return pd.array(col, dtype="boolean")
    if typ == "String":
        return col.astype(object).where(col.notna(), None)
    return col


def typed_column(
    values: list | pd.Series, typ: str, zero_fill: bool, fill: float | None = None
) -> Any:
    """One online column as ``_finish`` types it, built straight from a list of values."""
    if isinstance(values, pd.Series):
        return _typed_series(values, typ, zero_fill, fill)
    if fill is not None:
        return np.array([fill if v is None or v != v else v for v in values], dtype="float64")
    if zero_fill:
        if typ in ("Int32", "Int64"):
            return np.array([0 if v is None else v for v in values], dtype=_ZERO[typ])
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


def feature_refs(views: list[ViewFeatures]) -> list[str]:
    """Feast feature references (``view:feature``) of the resolved features."""
    return [f"{vf.view.name}:{n}" for vf in views for n in vf.features]
