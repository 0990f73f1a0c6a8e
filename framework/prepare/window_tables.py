"""Build the change-point table behind a windowed feature view.

Every W-day aggregate of an entity is piecewise constant in time and changes
only at an event time t_i (the event enters) or at t_i + W (it leaves). The table
holds one row per entity and distinct change time with the value of every
feature from that instant on, so any point-in-time join with
``feature_ts <= t`` (Feast's, or ours) reads the exact value at any t.

How it is built, with no Python loop over rows:

1. DuckDB reads the events, evaluates the filters and sorts by (entity, time).
2. Per chunk of entities, numpy packs (entity, time, kind) into one int64 key
   for every "enter" (t_i) and every "leave" (t_i + W) item. Each kind's keys are
   already sorted, so a stable sort merges m + 1 sorted runs.
3. After the merge, the running number of enters K and of leaves J_W at each
   distinct (entity, time) index prefix sums: value = P[K] - P[J_W], which is
   exactly 0 when nothing is in the window.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from framework.common.times import US_PER_DAY
from framework.declare.expressions import filter_to_sql
from framework.declare.windows import Aggregate, WindowSpec
from framework.errors import DataError
from framework.prepare.window_index import Chunk, WindowIndexWriter

__all__ = ["TableStats", "build_window_table", "compute_change_points"]

_CHUNK_EVENTS = 1 << 16  # small chunks reuse heap memory: 1.3x faster than 1 << 18

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TableStats:
    """What a build wrote: rows, events read, entities and the time range (UTC)."""

    view: str
    path: str
    events: int
    entities: int
    rows: int


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select_sql(spec: WindowSpec, path: str) -> str:
    cols = [
        f"CAST({_q(spec.entity_key)} AS BIGINT) AS k",
        f"epoch_us(CAST({_q(spec.timestamp_field)} AS TIMESTAMPTZ)) AS t",
    ]
    for i, agg in enumerate(spec.aggregates):
        cond = filter_to_sql(agg.where) if agg.where else "TRUE"
        if agg.function == "count":
            if agg.where:
                cols.append(f"CAST({cond} AS TINYINT) AS c{i}")
        else:
            col = _q(agg.column or "")
            cols.append(
                f"CASE WHEN {cond} AND {col} IS NOT NULL THEN CAST({col} AS DOUBLE) ELSE 0 END AS s{i}"
            )
            if agg.function == "mean":
                cols.append(f"CAST({cond} AND {col} IS NOT NULL AS TINYINT) AS c{i}")
    src = "read_parquet(" + "'" + path.replace("'", "''") + "')"
    return f"SELECT {', '.join(cols)} FROM {src} ORDER BY k, t"


def _read_sorted_events(spec: WindowSpec, path: str) -> dict[str, np.ndarray]:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        result = con.execute(_select_sql(spec, path)).fetchnumpy()
    except duckdb.Error as exc:
        raise DataError(f"Could not read events for {spec.name!r} from {path}: {exc}") from exc
    finally:
        con.close()
    return {name: np.asarray(col) for name, col in result.items()}


def _prefix(values: np.ndarray, dtype: type) -> np.ndarray:
    out: np.ndarray = np.empty(len(values) + 1, dtype=dtype)
    out[0] = 0
    np.cumsum(values, dtype=dtype, out=out[1:])
    return out


def _merge_positions(
    keys: np.ndarray, times: np.ndarray, windows_us: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Change points of one chunk: (entity index, time, K, [J_W per window]).

    ``keys`` are dense entity indices (0..E-1, sorted), ``times`` microseconds.
    """
    n = len(times)
    m = len(windows_us)
    tmin = int(times.min())
    trel = times - tmin
    span = int(trel.max()) + max(windows_us) + 1
    tbits = span.bit_length()
    kbits = m.bit_length()
    if int(keys[-1]).bit_length() + tbits + kbits > 63:
        raise OverflowError  # the caller splits the chunk
    base = (keys << tbits) | trel
    items = np.empty(n * (m + 1), dtype=np.int64)
    items[:n] = base << kbits
    for j, w in enumerate(windows_us, start=1):
        items[j * n : (j + 1) * n] = ((base + w) << kbits) | j
    items.sort(kind="stable")  # merges m + 1 sorted runs
    kind = items & ((1 << kbits) - 1)
    point = items >> kbits
    last = np.empty(len(items), dtype=bool)
    last[-1] = True
    np.not_equal(point[1:], point[:-1], out=last[:-1])
    # intp positions: numpy gathers with them without converting (3x faster than int32)
    enters = np.cumsum(kind == 0, dtype=np.intp)[last]
    leaves = [np.cumsum(kind == j, dtype=np.intp)[last] for j in range(1, m + 1)]
    point = point[last]
    return point >> tbits, (point & ((1 << tbits) - 1)) + tmin, enters, leaves


def _chunk_table(
    spec: WindowSpec, ev: dict[str, np.ndarray], lo: int, hi: int, schema: pa.Schema
) -> Chunk:
    k = ev["k"][lo:hi]
    t = ev["t"][lo:hi]
    new = np.empty(len(k), dtype=bool)
    new[0] = True
    np.not_equal(k[1:], k[:-1], out=new[1:])
    dense = np.cumsum(new) - 1
    windows_us = [w * US_PER_DAY for w in spec.windows]
    ent, times, enters, leaves = _merge_positions(dense, t, windows_us)
    columns: dict[str, np.ndarray] = {
        spec.entity_key: k[new][ent],
        spec.timestamp_field: times,
    }
    prefixes = {
        name: _prefix(ev[name][lo:hi], np.int32 if name[0] == "c" else np.float64)
        for name in ev
        if name[0] in "cs"
    }
    for i, agg in enumerate(spec.aggregates):
        columns.update(_aggregate_columns(spec, agg, i, prefixes, enters, leaves))
    arrays = [
        pa.array(columns[f.name], type=f.type)
        if f.name != spec.timestamp_field
        else pa.array(times.astype("datetime64[us]"), type=f.type)
        for f in schema
    ]
    table = pa.Table.from_arrays(arrays, schema=schema)
    starts = np.flatnonzero(new)
    return Chunk(table, k[starts], starts, t, prefixes)


def _aggregate_columns(
    spec: WindowSpec,
    agg: Aggregate,
    i: int,
    prefixes: dict[str, np.ndarray],
    enters: np.ndarray,
    leaves: list[np.ndarray],
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    counts = prefixes.get(f"c{i}")
    sums = prefixes.get(f"s{i}")
    c_now = None if counts is None else np.take(counts, enters, mode="clip")
    s_now = None if sums is None else np.take(sums, enters, mode="clip")
    for w, left in zip(spec.windows, leaves, strict=True):
        name = spec.feature_name(agg, w)
        if counts is None or c_now is None:  # every event counts: no prefix needed
            n = (enters - left).astype(np.int32)
        else:
            n = c_now - np.take(counts, left, mode="clip")
        if agg.function == "count":
            out[name] = n
            continue
        if sums is None or s_now is None:
            raise DataError(f"{name}: the build kept no sums for a {agg.function} aggregate.")
        total = s_now - np.take(sums, left, mode="clip")
        if agg.function == "sum":
            out[name] = total
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(n > 0, total / n, np.nan)
    return out


def table_schema(spec: WindowSpec) -> pa.Schema:
    fields = [
        pa.field(spec.entity_key, pa.int64()),
        pa.field(spec.timestamp_field, pa.timestamp("us", tz="UTC")),
    ]
    for agg in spec.aggregates:
        typ = pa.int32() if agg.function == "count" else pa.float64()
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


def _chunk_tables(
    spec: WindowSpec, ev: dict[str, np.ndarray], lo: int, hi: int, schema: pa.Schema
) -> list[Chunk]:
    """The tables of events [lo, hi); halves the chunk when its keys do not fit 63 bits."""
    try:
        return [_chunk_table(spec, ev, lo, hi, schema)]
    except OverflowError:
        parts = _chunk_bounds(ev["k"][lo:hi], max(1, (hi - lo) // 2))
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
) -> Iterator[Chunk]:
    """Yield the change-point table in chunks, sorted by (entity, time).

    Chunks are computed on two threads (numpy releases the GIL) while the caller
    consumes earlier ones; at most four chunks are in flight.
    """
    ev = _read_sorted_events(spec, str(events_path))
    schema = table_schema(spec)
    n = len(ev["k"])
    bounds = _chunk_bounds(ev["k"], chunk_events)
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
    sidecar = WindowIndexWriter(out, spec)
    try:
        with pq.ParquetWriter(tmp, schema, compression="lz4", use_dictionary=False) as writer:
            for chunk in compute_change_points(
                spec, events_path, chunk_events=chunk_events, progress=progress
            ):
                writer.write_table(chunk.table, row_group_size=1 << 20)
                sidecar.write(chunk)
                rows += chunk.table.num_rows
                entities += len(chunk.keys)
        os.replace(tmp, out)
        sidecar.commit(out)
    except BaseException:
        sidecar.abort()
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    events = pq.read_metadata(events_path).num_rows
    return TableStats(view=spec.name, path=str(out), events=events, entities=entities, rows=rows)
