"""Features: point-in-time correct values for training sets (historical retrieval).

``get_historical_features(repo, entity_df, service)`` returns the entity rows
in their input order plus one column per feature, named as declared. Two
engines give the same answer:

- ``"feast"``: Feast's own ``get_historical_features`` on the same repo;
- ``"direct"`` (the default where it applies): the same point-in-time rule run
  with :mod:`framework.features.pit` over the views' parquet files, and on-demand views
  applied with their own transformation.

On the Spark profile the views read Spark sources, so ``"auto"`` is Feast's engine:
its Spark offline store joins on the process's session
(:mod:`framework.common.spark`).

After either engine: windowed counts and sums that come back null (no row at or
before t, an expired row, an unknown entity) are 0, because that is their value;
a windowed mean stays null. Types are those declared (integers of other views
are nullable integers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from framework.declare.repo import FeatureRepo
from framework.errors import DataError, FeatureRepoError, StoreError
from framework.features.resolve import (
    ENGINES,
    TIMESTAMP,
    ViewFeatures,
    check_entity_frame,
    feature_refs,
    features_for_columns,
    finish,
    key_kinds,
    resolve_features,
)

__all__ = ["get_historical_features"]


def _direct_supported(views: list[ViewFeatures]) -> bool:
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
            if not isinstance(src, FileSource) or src.field_mapping:
                return False
    return True


def _direct(df: pd.DataFrame, views: list[ViewFeatures]) -> dict[str, Any]:
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
        if spec is not None and windows is not None:
            values, _ = windows.at(windows.codes(df), times)
            out.update({n: values[n] for n in vf.features})
            continue
        src = vf.view.batch_source
        keys = [c.name for c in vf.view.entity_columns]
        index = load_index(
            src.path, keys, src.timestamp_field, vf.features, presorted=spec is not None
        )
        ttl = vf.view.ttl
        ttl_us = int(ttl.total_seconds() * 1_000_000) if ttl else 0
        rows = index.lookup(index.codes(df), times, ttl_us)
        for name, values in index.take(rows, vf.features).items():
            out[name] = values.to_pandas()
    return out


def _through_feast(
    repo: FeatureRepo, df: pd.DataFrame, views: list[ViewFeatures]
) -> dict[str, Any]:
    store = repo.store
    features = feature_refs(views)
    edf = df.copy()
    edf["__row"] = np.arange(len(edf))
    if repo.spark:  # Feast's Spark offline store joins on our session (UTC, Arrow)
        from framework.common.spark import spark_errors, spark_session

        spark_session(store.config)
        with spark_errors("joining the features point in time"):
            result = store.get_historical_features(entity_df=edf, features=features).to_df()
        return _in_order(result, views)
    try:
        result = store.get_historical_features(entity_df=edf, features=features).to_df()
    except Exception as exc:
        raise StoreError(f"Feast get_historical_features failed: {exc}") from exc
    return _in_order(result, views)


def _in_order(result: pd.DataFrame, views: list[ViewFeatures]) -> dict[str, Any]:
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
    if engine not in ENGINES:
        raise FeatureRepoError(f"engine must be one of {ENGINES}; got {engine!r}.")
    if service is None and features is None:
        features = features_for_columns(repo, entity_df.columns)
    views = resolve_features(repo, service, features)
    df = check_entity_frame(entity_df, key_kinds(views))
    taken = set(df.columns)
    clash = [n for vf in views for n in vf.features if n in taken]
    if clash:
        raise DataError(f"entity rows already have column(s) {clash} named like features.")
    direct = engine == "direct" or (engine == "auto" and _direct_supported(views))
    if engine == "direct" and not _direct_supported(views):
        raise FeatureRepoError("The direct engine supports file-backed single-key views only.")
    values = _direct(df, views) if direct else _through_feast(repo, df, views)
    names = features or [n for vf in views for n in vf.features]  # the order asked for
    frame = pd.DataFrame({n: values[n] for n in names}, index=df.index)
    return finish(pd.concat([df, frame], axis=1), views)
