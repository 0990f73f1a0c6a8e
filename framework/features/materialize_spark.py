"""Materialize on Spark: Feast's Spark engine loads the online store, and the online
window states are computed per entity partition.

- Feature values: ``FeatureStore.materialize`` with the repo's ``batch_engine: type:
  spark.engine``. Feast's engine reads each view's latest row per entity in Spark and
  writes the online store from the executors; the registry records the interval.
- Window states (exact windowed reads at t >= end, :mod:`framework.features.window_state`):
  the events are partitioned by entity and sorted as for the window tables; each
  partition computes the states of its entities in chunks with the single-machine code,
  and the driver streams them (``toLocalIterator``, one partition at a time) into the
  window store. No partition's events reach the driver, only one state per entity.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from framework.common.spark import spark_errors, spark_session
from framework.declare.repo import FeatureRepo
from framework.declare.windows import WindowSpec

if TYPE_CHECKING:
    from feast import FeatureView
    from pyspark.sql import SparkSession

__all__ = ["spark_online_rows", "spark_window_states"]

Progress = Callable[[str, int, int], None]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATE_BATCH = 5_000


def _entities_written(
    session: SparkSession, view: FeatureView, start: datetime | None, end: datetime
) -> int:
    """The entities with a row of ``view`` in [start, end] (what the engine wrote)."""
    from pyspark.sql import functions as F

    src: Any = view.batch_source
    ts = F.col(src.timestamp_field)
    rows = session.read.parquet(src.path).filter(ts <= F.lit(end))
    if start is not None:
        rows = rows.filter(ts >= F.lit(start))
    return int(rows.select(*[c.name for c in view.entity_columns]).distinct().count())


def spark_online_rows(
    repo: FeatureRepo,
    start: datetime | None,
    end: datetime,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Load every online view's values as of ``end`` with Feast's Spark engine; return
    the entities written per view."""
    session = spark_session(repo.store.config)
    store = repo.store
    views = [v for v in repo.feature_views if v.online]
    written: dict[str, int] = {}
    for view in views:
        with spark_errors(f"materializing {view.name!r}"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # Feast's "experimental" notes
            store.materialize(start_date=start or EPOCH, end_date=end, feature_views=[view.name])
            written[view.name] = _entities_written(session, view, start, end)
        if progress:
            progress(view.name, written[view.name], written[view.name])
    return written


def _partition_states(
    spec_json: str, t0_us: int, chunk_events: int, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    from framework.features.window_state import materialized_states
    from framework.prepare.window_tables_spark import entity_chunks

    spec = WindowSpec.from_json(spec_json)
    for chunk in entity_chunks(batches, spec.entity_keys, chunk_events):
        states = materialized_states(spec, "", t0_us, table=chunk)
        if states:
            yield pa.RecordBatch.from_pydict(
                {"key": list(states), "state": list(states.values())},
                schema=pa.schema([("key", pa.string()), ("state", pa.binary())]),
            )


def spark_window_states(
    repo: FeatureRepo, spec: WindowSpec, t0_us: int, *, chunk_events: int = 1 << 16
) -> Iterator[dict[str, bytes]]:
    """The window states of ``spec``'s entities at ``t0_us``, in batches (entity text ->
    state), computed on Spark."""
    from framework.prepare.window_tables_spark import sorted_event_partitions

    session = spark_session(repo.store.config)
    columns = sorted(spec.source_columns)
    events = sorted_event_partitions(session, spec, spec.source_path, columns)
    states = events.mapInArrow(
        partial(_partition_states, spec.to_json(), t0_us, chunk_events), "key string, state binary"
    )
    batch: dict[str, bytes] = {}
    with spark_errors(f"computing the online window states of {spec.name!r}"):
        for row in states.toLocalIterator(prefetchPartitions=True):
            batch[row["key"]] = bytes(row["state"])
            if len(batch) >= _STATE_BATCH:
                yield batch
                batch = {}
    if batch:
        yield batch
