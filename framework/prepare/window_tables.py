"""Build the change-point table behind a windowed feature view.

Every windowed aggregate of an entity is piecewise constant in time and changes
only at an event time t_i (the event enters) or at t_i + W (it leaves). The table
holds one row per entity and distinct change time with the value of every
feature from that instant on, so any point-in-time join with
``feature_ts <= t`` (Feast's, or ours) reads the exact value at any t.

How it is built, with no Python loop over rows:

1. DuckDB reads the events, evaluates the filters and sorts by (key, time); keys
   other than one integer column become dense codes (:mod:`framework.common.keys`).
2. Per chunk of entities, numpy packs (entity, time, kind) into one int64 key
   for every "enter" (t_i) and every "leave" (t_i + W) item. Each kind's keys are
   already sorted, so a stable sort merges m + 1 sorted runs.
3. After the merge, the events in the window of each change point are the
   positions [J_W, K) of the sorted events (J_W: the entity's first event for the
   lifetime window). Then
   - count, sum, mean: prefix sums, P[K] - P[J_W] (exactly 0 when empty);
   - min, max: a sparse table (range-minimum query) over the positions;
   - last: the latest matching position before K, if it is >= J_W;
   - count_distinct: each matching event stands for its value from t_i until the
     value's next event or t_i + W, whichever is first; the count at a change
     point is the number of such intervals open at it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from framework.declare.windows import PREFIX_FUNCTIONS, Aggregate, WindowSpec
from framework.errors import DataError
from framework.prepare.window_events import Events, parquet_sql, read_sorted_events
from framework.prepare.window_index import Chunk, WindowIndexWriter, remove_window_index
from framework.prepare.window_kernels import (
    distinct_columns,
    entity_prefix,
    extreme_columns,
    last_columns,
    merge_positions,
    prefix_at,
)

__all__ = [
    "TableStats",
    "build_window_table",
    "compute_change_points",
    "parquet_sql",
    "read_sorted_events",
    "table_schema",
]

_CHUNK_EVENTS = 1 << 16  # small chunks reuse heap memory: 1.3x faster than 1 << 18
US = 1_000_000

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TableStats:
    """What a build wrote: rows, events read, entities and the time range (UTC)."""

    view: str
    path: str
    events: int
    entities: int
    rows: int


def _chunk_table(spec: WindowSpec, ev: Events, lo: int, hi: int, schema: pa.Schema) -> Chunk:
    k = ev.k[lo:hi]
    t = ev.t[lo:hi]
    new = np.empty(len(k), dtype=bool)
    new[0] = True
    np.not_equal(k[1:], k[:-1], out=new[1:])
    dense = np.cumsum(new) - 1
    pts = merge_positions(dense, t, [w * US for w in spec.windows])
    codes = k[new][pts.ent]
    columns: dict[str, Any] = {spec.timestamp_field: pts.times}
    if ev.keymap.identity:
        columns[spec.entity_keys[0]] = codes
    else:
        columns.update(ev.keymap.decode(codes))
    cols = {name: col[lo:hi] for name, col in ev.cols.items()}
    prefixes = {
        name: entity_prefix(
            cols[name], dense, pts.starts, np.int32 if name[0] == "c" else np.float64
        )
        for name in cols
        if name[0] in "cs"
    }
    first = pts.starts[pts.ent]  # the first event of each point's entity
    for i, agg in enumerate(spec.aggregates):
        if agg.function in PREFIX_FUNCTIONS:
            columns.update(_aggregate_columns(spec, agg, i, prefixes, pts.enters, pts.lows, first))
            continue
        if agg.function in ("min", "max"):
            parts = extreme_columns(spec, agg, i, cols, pts)
        elif agg.function == "last":
            parts = last_columns(spec, agg, i, cols, pts)
        else:
            parts = distinct_columns(spec, agg, i, cols, dense, t, pts)
        for name, (values, valid) in parts.items():
            columns[name] = _typed(spec, agg, i, values, valid, ev)
    arrays = [
        pa.array(columns[f.name], type=f.type)
        if f.name != spec.timestamp_field
        else pa.array(pts.times.astype("datetime64[us]"), type=f.type)
        for f in schema
    ]
    table = pa.Table.from_arrays(arrays, schema=schema)
    starts = np.flatnonzero(new)
    return Chunk(table, k[starts], starts, t, prefixes)


def _typed(
    spec: WindowSpec,
    agg: Aggregate,
    i: int,
    values: np.ndarray,
    valid: np.ndarray | None,
    ev: Events,
) -> Any:
    """The feature column as an arrow array of the output kind, null where not valid."""
    if valid is None:
        return values
    kind = spec.output_kind(agg)
    mask = ~valid
    if i in ev.values:  # codes or positions into a decode table (Arrow)
        taken = ev.values[i].take(pa.array(np.where(valid, values, 0)))
        column = pc.if_else(pa.array(valid), taken, pa.nulls(len(taken), type=taken.type))
        if kind == "timestamp" and not pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        return column.cast(_ARROW[kind])
    if kind == "timestamp":
        return pa.array(np.asarray(values, dtype=np.int64), mask=mask).cast(
            pa.timestamp("us", tz="UTC")
        )
    if kind == "bool":
        return pa.array(np.asarray(values).astype(bool), mask=mask)
    if kind == "string":
        return pa.array(np.asarray(values, dtype=object), type=pa.string(), mask=mask)
    return pa.array(values, mask=mask)


def _aggregate_columns(
    spec: WindowSpec,
    agg: Aggregate,
    i: int,
    prefixes: dict[str, np.ndarray],
    enters: np.ndarray,
    leaves: list[np.ndarray],
    first: np.ndarray,
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    counts = prefixes.get(f"c{i}")
    sums = prefixes.get(f"s{i}")
    c_now = None if counts is None else prefix_at(counts, enters, first)
    s_now = None if sums is None else prefix_at(sums, enters, first)
    for w, left in zip(spec.windows, leaves, strict=True):
        name = spec.feature_name(agg, w)
        if counts is None or c_now is None:  # every event counts: no prefix needed
            n = (enters - left).astype(np.int32)
        else:
            n = (c_now - prefix_at(counts, left, first)).astype(np.int32)
        if agg.function == "count":
            out[name] = n
            continue
        if sums is None or s_now is None:
            raise DataError(f"{name}: the build kept no sums for a {agg.function} aggregate.")
        total = s_now - prefix_at(sums, left, first)
        if agg.function == "sum":
            out[name] = total.astype(np.int64) if spec.output_kind(agg) == "int" else total
        else:
            denominator = n.astype(np.float64)
            if agg.function == "ratio":  # the same float operations as the online reads
                total, denominator = total + agg.prior[0], denominator + agg.prior[1]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(denominator > 0, total / denominator, np.nan)
    return out


_ARROW = {
    "int32": pa.int32(),
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def table_schema(spec: WindowSpec) -> pa.Schema:
    fields = [
        pa.field(k, pa.string() if spec.key_kinds.get(k) == "string" else pa.int64())
        for k in spec.entity_keys
    ]
    fields.append(pa.field(spec.timestamp_field, pa.timestamp("us", tz="UTC")))
    for agg in spec.aggregates:
        typ = _ARROW[spec.output_kind(agg)]
        fields += [pa.field(spec.feature_name(agg, w), typ) for w in spec.windows]
    return pa.schema(fields)


def _chunk_bounds(keys: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Split [0, n) into chunks of about ``size`` events at entity boundaries."""
    n = len(keys)
    bounds, lo = [], 0
    while lo < n:
        hi = min(lo + size, n)
        if hi < n:
            # move hi back to the first event of the entity at hi
            hi = int(np.searchsorted(keys[lo:hi], keys[hi], side="left")) + lo
            if hi == lo:  # one entity larger than a chunk: take it whole
                hi = int(np.searchsorted(keys, keys[lo], side="right"))
        bounds.append((lo, hi))
        lo = hi
    return bounds


def _chunk_tables(spec: WindowSpec, ev: Events, lo: int, hi: int, schema: pa.Schema) -> list[Chunk]:
    """The tables of events [lo, hi); halves the chunk when its keys do not fit 63 bits."""
    try:
        return [_chunk_table(spec, ev, lo, hi, schema)]
    except OverflowError:
        parts = _chunk_bounds(ev.k[lo:hi], max(1, (hi - lo) // 2))
        if len(parts) == 1:
            raise DataError(
                f"The events of {spec.name!r} span too long a time to pack into 63 bits; "
                "check the event timestamps for far-past or far-future values."
            ) from None
        return [t for a, b in parts for t in _chunk_tables(spec, ev, lo + a, lo + b, schema)]


def compute_change_points(
    spec: WindowSpec,
    events_path: str | Path,
    *,
    chunk_events: int = _CHUNK_EVENTS,
    progress: Progress | None = None,
    events: Events | None = None,
) -> Iterator[Chunk]:
    """Yield the change-point table in chunks, sorted by (entity, time).

    Chunks are computed on two threads (numpy releases the GIL) while the caller
    consumes earlier ones; at most four chunks are in flight.
    """
    ev = events if events is not None else read_sorted_events(spec, str(events_path))
    schema = table_schema(spec)
    n = len(ev.k)
    bounds = _chunk_bounds(ev.k, chunk_events)
    with ThreadPoolExecutor(max_workers=2) as pool:
        inflight: deque = deque()
        for lo, hi in bounds:
            inflight.append((hi, pool.submit(_chunk_tables, spec, ev, lo, hi, schema)))
            if len(inflight) >= 4:
                yield from _drain(inflight, n, progress)
        while inflight:
            yield from _drain(inflight, n, progress)


def _drain(inflight: deque, n: int, progress: Progress | None) -> Iterator[Chunk]:
    hi, future = inflight.popleft()
    yield from future.result()
    if progress:
        progress(hi, n)


def build_window_table(
    spec: WindowSpec,
    events_path: str | Path | None = None,
    out_path: str | Path | None = None,
    *,
    chunk_events: int = _CHUNK_EVENTS,
    progress: Progress | None = None,
) -> TableStats:
    """Write the change-point table of ``spec`` atomically (temp file, then rename)."""
    events_path = Path(events_path or spec.source_path)
    out = Path(out_path or spec.table_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    rows = 0
    entities = 0
    events = 0
    schema = table_schema(spec)
    ev = read_sorted_events(spec, str(events_path))
    # The compact index answers counts, sums and means; other views are read from the table.
    sidecar = WindowIndexWriter(out, spec, ev.keymap) if spec.prefix_only else None
    try:
        with pq.ParquetWriter(tmp, schema, compression="lz4", use_dictionary=False) as writer:
            for chunk in compute_change_points(
                spec, events_path, chunk_events=chunk_events, progress=progress, events=ev
            ):
                writer.write_table(chunk.table, row_group_size=1 << 20)
                if sidecar is not None:
                    sidecar.write(chunk)
                rows += chunk.table.num_rows
                entities += len(chunk.keys)
        os.replace(tmp, out)
        if sidecar is not None:
            sidecar.commit(out)
        else:
            remove_window_index(out)
    except BaseException:
        if sidecar is not None:
            sidecar.abort()
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    events = len(ev.k)
    return TableStats(view=spec.name, path=str(out), events=events, entities=entities, rows=rows)
