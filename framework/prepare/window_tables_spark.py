"""Build a window table on Spark: the same change-point kernel, per entity partition.

Spark reads the events (a parquet file or a directory: a partitioned log), keeps
the columns the view reads plus each row's place in the log (file, row index),
hashes the rows to partitions by entity and sorts each partition by (entity, time,
place). Every partition then streams through ``mapInArrow``: its batches are cut
at entity boundaries into chunks of about ``chunk_events`` events, and each chunk
runs the single-machine build (:func:`framework.prepare.window_tables.read_sorted_events`
and the numpy kernel). No event crosses to the driver, and an executor holds one
chunk at a time (at least one whole entity): its memory is bounded by the largest
entity, not by the log.

The rows and values are those of the DuckDB build on the same events (the place
in the log breaks ties in time for ``last`` the same way); the table is a
directory of parquet files, written beside the target and moved into place when
complete.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from framework.common.spark import move_output, spark_errors
from framework.declare.windows import WindowSpec
from framework.errors import DataError
from framework.prepare.window_index import remove_window_index
from framework.prepare.window_tables import (
    _CHUNK_EVENTS,
    TableStats,
    compute_change_points,
    read_sorted_events,
    table_schema,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["build_window_table_spark", "sorted_event_partitions"]

FILE, ROW = "__lifecycle_file", "__lifecycle_row"


def sorted_event_partitions(
    session: SparkSession,
    spec: WindowSpec,
    path: str,
    columns: list[str],
    partitions: int | None = None,
) -> DataFrame:
    """The events' ``columns`` plus their place in the log, partitioned by entity and
    sorted by (entity, time, place) within each partition."""
    from pyspark.sql import functions as F

    with spark_errors(f"reading the events of {spec.name!r} ({path})"):
        df = session.read.parquet(path)
    missing = sorted(set(columns) - set(df.columns))
    if missing:
        raise DataError(
            f"The events of {spec.name!r} ({path}) lack column(s) {missing}; they have "
            f"{sorted(df.columns)}."
        )
    keys = list(spec.entity_keys)
    n = partitions or max(2, session.sparkContext.defaultParallelism * 2)
    return (
        df.select(
            *[F.col(c) for c in columns],
            F.col("_metadata.file_path").alias(FILE),
            F.col("_metadata.row_index").alias(ROW),
        )
        .repartition(n, *keys)
        .sortWithinPartitions(*keys, spec.timestamp_field, FILE, ROW)
    )


def _last_entity_start(table: pa.Table, keys: tuple[str, ...]) -> int:
    """Where the rows of the table's last entity start (rows are grouped by entity)."""
    n = table.num_rows
    same = None
    for key in keys:
        col = table.column(key)
        eq = pc.fill_null(pc.equal(col, col[n - 1]), False)
        if col[n - 1].as_py() is None:
            eq = pc.is_null(col)
        same = eq if same is None else pc.and_(same, eq)
    assert same is not None
    return n - int(pc.sum(same.cast(pa.int64())).as_py() or 0)


def entity_chunks(
    batches: Iterator[pa.RecordBatch], keys: tuple[str, ...], chunk_events: int
) -> Iterator[pa.Table]:
    """Cut sorted batches into tables of whole entities, about ``chunk_events`` rows each;
    each table gets ``file_row_number``, the row's place in the partition's log order."""
    pending: list[pa.RecordBatch] = []
    held = 0
    position = 0

    def numbered(table: pa.Table) -> pa.Table:
        nonlocal position
        rows = pa.array(np.arange(position, position + table.num_rows, dtype=np.int64))
        position += table.num_rows
        return table.drop_columns([FILE, ROW]).append_column("file_row_number", rows)

    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        if held < chunk_events:
            continue
        table = pa.Table.from_batches(pending)
        cut = _last_entity_start(table, keys)
        if cut == 0:  # one entity so far: keep reading
            continue
        yield numbered(table.slice(0, cut))
        rest = table.slice(cut).combine_chunks()
        pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield numbered(pa.Table.from_batches(pending))


def _partition_tables(
    spec_json: str, chunk_events: int, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    spec = WindowSpec.from_json(spec_json)
    for chunk in entity_chunks(batches, spec.entity_keys, chunk_events):
        ev = read_sorted_events(spec, spec.source_path, events=chunk)
        for part in compute_change_points(spec, "", chunk_events=chunk_events, events=ev):
            yield from part.table.to_batches()


def build_window_table_spark(
    spec: WindowSpec,
    session: SparkSession,
    events_path: str | Path | None = None,
    out_path: str | Path | None = None,
    *,
    chunk_events: int = _CHUNK_EVENTS,
    partitions: int | None = None,
) -> TableStats:
    """Write the change-point table of ``spec`` with Spark (a directory of parquet files)."""
    from functools import partial

    from pyspark.sql.pandas.types import from_arrow_schema

    path = str(events_path or spec.source_path)
    out = str(out_path or spec.table_path)
    columns = sorted(spec.source_columns)
    events = sorted_event_partitions(session, spec, path, columns, partitions)
    schema = table_schema(spec)
    tables = events.mapInArrow(
        partial(_partition_tables, spec.to_json(), chunk_events), from_arrow_schema(schema)
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = str(Path(out).with_name(f".{Path(out).name}.{uuid.uuid4().hex}.tmp"))
    with spark_errors(f"building the window table of {spec.name!r}"):
        tables.write.mode("error").parquet(tmp)
        # what was built, from the files' footers and the key columns
        written = session.read.parquet(tmp)
        rows = written.count()
        entities = written.select(*spec.entity_keys).distinct().count()
        n_events = session.read.parquet(path).count()
    move_output(session, tmp, out)
    remove_window_index(out)  # the index of an earlier single-machine build is stale
    return TableStats(view=spec.name, path=out, events=n_events, entities=entities, rows=rows)
