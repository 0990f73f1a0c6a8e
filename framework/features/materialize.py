"""Materialize: load the online store with each entity's latest values.

For every online feature view, the row an entity has at ``end`` (its latest row
with timestamp <= end, found with the same point-in-time index the offline
engine uses) is written in Feast's own format (:mod:`framework.features.online_write`),
in batches. Events appended since the last run (:mod:`framework.collect.ingest`) are
merged into the event log and the window tables rebuilt first. Rows older than ``start`` are skipped, as in Feast, so
``--from`` makes an incremental run. The registry records the interval.

After ``materialize(end=T)`` the online value of every feature for every entity
equals its historical value at T.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from framework.common.times import to_utc
from framework.declare.repo import FeatureRepo
from framework.errors import ConfigError, FeatureRepoError, StoreError
from framework.features.online_write import (
    SqliteWriter,
    in_key_order,
    prepare_sqlite,
    uses_sqlite_fast_path,
    write_rows,
)
from framework.features.pit import load_index

if TYPE_CHECKING:
    from feast import FeatureView, FileSource

    from framework.prepare.window_index import WindowIndex

__all__ = ["MaterializeResult", "latest_rows", "materialize"]

Progress = Callable[[str, int, int], None]
BATCH_ROWS = 20_000


@dataclass(frozen=True)
class MaterializeResult:
    """Rows written per feature view, and the interval."""

    start: datetime | None
    end: datetime
    rows: dict[str, int] = field(default_factory=dict)
    merged_events: int = 0  # appended events merged into the log (windows rebuilt) first
    states: dict[str, int] = field(default_factory=dict)  # online window states per view


def _utc(ts: datetime | str | None) -> datetime | None:
    if ts is None:
        return None
    return to_utc(ts, "materialization time").to_pydatetime()


def _us(ts: datetime) -> int:
    return int(pd.Timestamp(ts).value // 1000)


def _latest_windowed(
    view: FeatureView, index: WindowIndex, start: datetime | None, end: datetime
) -> pd.DataFrame:
    keys = np.asarray(index.keys)
    values, changed = index.at(keys, np.full(len(keys), _us(end), dtype=np.int64))
    keep = changed >= 0
    if start is not None:
        keep &= changed >= _us(start)
    src = _file_source(view)
    frame = pd.DataFrame(index.key_columns(keys[keep]))
    frame[src.timestamp_field] = pd.to_datetime(changed[keep], unit="us", utc=True)
    for f in view.features:
        frame[f.name] = values[f.name][keep]
    return frame


def _file_source(view: FeatureView) -> FileSource:
    from feast import FileSource

    src = view.batch_source
    if not isinstance(src, FileSource):
        raise FeatureRepoError(
            f"Feature view {view.name!r} reads {type(src).__name__}; materialize reads "
            "FileSource views (parquet files)."
        )
    return src


def latest_rows(view: FeatureView, start: datetime | None, end: datetime) -> pd.DataFrame:
    """Each entity's latest row of ``view`` with start <= timestamp <= end."""
    from framework.declare.windows import WindowSpec
    from framework.prepare.window_index import load_window_index

    spec = WindowSpec.from_feature_view(view)
    windows = load_window_index(spec) if spec else None
    if windows is not None:
        return _latest_windowed(view, windows, start, end)
    src = _file_source(view)
    keys_ = [c.name for c in view.entity_columns]
    features = [f.name for f in view.features]
    index = load_index(src.path, keys_, src.timestamp_field, features, presorted=spec is not None)
    keys = np.asarray(index.keys)
    rows = index.lookup(keys, np.full(len(keys), _us(end), dtype=np.int64))
    keep = rows >= 0
    if start is not None:
        keep &= np.asarray(index.times)[np.maximum(rows, 0)] >= _us(start)
    rows = rows[keep]
    frame = pd.DataFrame(index.key_columns(keys[keep]))
    frame[src.timestamp_field] = pd.to_datetime(np.asarray(index.times)[rows], unit="us", utc=True)
    for name, values in index.take(rows, features).items():
        frame[name] = values.to_pandas()
    return frame


def write_window_states(
    repo: FeatureRepo,
    end: datetime,
    merged: tuple[str, ...] = (),
    progress: Progress | None = None,
) -> dict[str, int]:
    """Write every online windowed view's state for reads at t >= ``end`` (a new
    generation per view), publish it, replay the inbox (events accepted since the
    merge), then drop older generations. ``merged``: the inbox files this run merged
    into the log (their frames are in the base now). Returns the states per view."""
    from pathlib import Path

    from framework.features.push import online_specs, replay_inbox
    from framework.features.window_state import (
        base_time,
        file_token,
        materialized_states,
        spec_digest,
    )
    from framework.features.window_store import Meta, window_store

    states = window_store(repo.store)
    if states is None:
        return {}
    t0 = _us(end)
    tokens = [file_token(n) for n in merged]
    published: dict[str, int] = {}
    written: dict[str, int] = {}
    spark = repo.spark
    for spec in online_specs(repo):
        if not Path(spec.source_path).exists():
            continue
        gen = states.new_generation(spec.name)
        if spark:
            from framework.features.materialize_spark import spark_window_states

            batches = spark_window_states(repo, spec, t0)
        else:
            batches = iter([materialized_states(spec, spec.source_path, t0)])
        count = 0
        for by_key in batches:
            states.write_states(spec.name, gen, by_key)
            count += len(by_key)
        meta = Meta(gen, t0, base_time(spec, t0), spec_digest(spec))
        states.publish(spec.name, meta, tokens)
        published[spec.name] = gen
        written[spec.name] = count
        if progress:
            progress(f"{spec.name} (online state)", count, count)
    if published:
        replay_inbox(repo, states)
    for view, gen in published.items():
        states.drop_old(view, gen)
    return written


def materialize(
    repo: FeatureRepo,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    progress: Progress | None = None,
) -> MaterializeResult:
    """Write each entity's latest values (as of ``end``, default now) to the online store."""
    start_ts = _utc(start)
    end_ts = _utc(end) or datetime.now(UTC)
    if start_ts is not None and start_ts > end_ts:
        raise ConfigError(f"--from {start_ts} is after --to {end_ts}.")
    from framework.collect.ingest import compact, inbox_files
    from framework.prepare.apply import build_tables

    store = repo.store
    with repo.lock():
        names: tuple[str, ...] = ()
        merged = 0
        if repo.event_sources and inbox_files(repo):
            compacted = compact(repo, locked=True)
            merged, names = compacted.added, compacted.names
        if merged:  # appended events count in the windows from this run on
            build_tables(repo, lambda _msg: None)
        result = MaterializeResult(start=start_ts, end=end_ts, merged_events=merged)
        if repo.spark:  # Feast's Spark engine writes the values (and records the interval)
            from framework.features.materialize_spark import spark_online_rows

            result.rows.update(spark_online_rows(repo, start_ts, end_ts, progress))
            result.states.update(write_window_states(repo, end_ts, names, progress))
            return result
        sqlite = None
        try:
            for view in repo.feature_views:
                if not view.online:
                    continue
                frame = latest_rows(view, start_ts, end_ts)
                if uses_sqlite_fast_path(store, view):
                    frame = in_key_order(view, frame)
                    sqlite = sqlite or SqliteWriter(store)
                total = len(frame)
                for lo in range(0, total, BATCH_ROWS):
                    batch = frame.iloc[lo : lo + BATCH_ROWS]
                    try:
                        if sqlite is not None and uses_sqlite_fast_path(store, view):
                            sqlite.write(*prepare_sqlite(store, view, batch))
                        else:
                            write_rows(store, view, batch)
                    except Exception as exc:
                        raise StoreError(
                            f"Writing {view.name!r} to the online store failed: {exc}"
                        ) from exc
                    if progress:
                        progress(view.name, min(lo + BATCH_ROWS, total), total)
                result.rows[view.name] = total
        finally:
            if sqlite is not None:
                try:
                    sqlite.close()
                except Exception as exc:
                    raise StoreError(f"Writing to the online store failed: {exc}") from exc
        result.states.update(write_window_states(repo, end_ts, names, progress))
        for view in repo.feature_views:
            if view.online:
                store.registry.apply_materialization(
                    view, store.config.project, start_ts or datetime(1970, 1, 1, tzinfo=UTC), end_ts
                )
    return result
