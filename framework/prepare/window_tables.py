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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from framework.common.keys import KeyMap, dense_codes
from framework.declare.expressions import filter_to_sql
from framework.declare.windows import PREFIX_FUNCTIONS, Aggregate, WindowSpec
from framework.errors import DataError
from framework.prepare.window_index import Chunk, WindowIndexWriter, remove_window_index

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


@dataclass
class Events:
    """The sorted events of one view: codes, times and the per-aggregate columns."""

    k: np.ndarray  # int64 entity codes, sorted
    t: np.ndarray  # int64 microseconds, sorted within an entity
    cols: dict[str, np.ndarray]  # c{i} (int8 match), s{i} (float sums), m{i}, v{i}
    keymap: KeyMap  # distinct keys by code (identity for one integer key)
    values: dict[int, np.ndarray] = field(default_factory=dict)  # aggregate -> decode table


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_SQL_KIND = {"int": "BIGINT", "string": "VARCHAR"}


def parquet_sql(path: str) -> tuple[str, list[str]]:
    """DuckDB's reader of a parquet file or a directory of them (a partitioned log, hive
    partitions as columns), and the columns that order its rows as written."""
    quoted = "'" + path.replace("'", "''") + "'"
    if os.path.isdir(path):
        glob = "'" + os.path.join(path, "**", "*.parquet").replace("'", "''") + "'"
        return (
            f"read_parquet({glob}, filename = true, file_row_number = true, "
            "hive_partitioning = true, union_by_name = true)",
            ["filename", "file_row_number"],
        )
    return f"read_parquet({quoted}, file_row_number = true)", ["file_row_number"]


def _select_sql(spec: WindowSpec, path: str | None) -> str:
    """The events query; ``path=None`` reads the registered arrow table ``events`` (in
    log order by its ``file_row_number`` column)."""
    keys = [
        f"CAST({_q(k)} AS {_SQL_KIND[spec.key_kinds.get(k, 'int')]}) AS {_q('key_' + k)}"
        for k in spec.entity_keys
    ]
    cols = [*keys, f"epoch_us(CAST({_q(spec.timestamp_field)} AS TIMESTAMPTZ)) AS t"]
    for i, agg in enumerate(spec.aggregates):
        cond = filter_to_sql(agg.where) if agg.where else "TRUE"
        col = _q(agg.column or "")
        if agg.function == "count":
            if agg.where:
                cols.append(f"CAST({cond} AS TINYINT) AS c{i}")
            continue
        if agg.function in ("sum", "mean"):
            cols.append(
                f"CASE WHEN {cond} AND {col} IS NOT NULL THEN CAST({col} AS DOUBLE) ELSE 0 END AS s{i}"
            )
            if agg.function == "mean":
                cols.append(f"CAST({cond} AND {col} IS NOT NULL AS TINYINT) AS c{i}")
            continue
        kind = spec.column_kinds.get(agg.column or "")
        value = f"epoch_us(CAST({col} AS TIMESTAMPTZ))" if kind == "timestamp" else col
        cols.append(f"COALESCE({cond} AND {col} IS NOT NULL, FALSE) AS m{i}")
        cols.append(f"{value} AS v{i}")
    order = [_q("key_" + k) for k in spec.entity_keys] + ["t"]
    src, row_order = parquet_sql(path) if path is not None else ("events", ["file_row_number"])
    if any(a.function == "last" for a in spec.aggregates):
        order += row_order  # ties in time: the later row of the log is last
    return f"SELECT {', '.join(cols)} FROM {src} ORDER BY {', '.join(order)}"


def _numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.asarray(col.to_numpy(zero_copy_only=False))


def _value_column(
    spec: WindowSpec, i: int, agg: Aggregate, raw: pa.ChunkedArray, match: np.ndarray, ev: Events
) -> None:
    """v{i}: an int64 or float64 array the kernels can compare; decode tables beside it.

    Strings stay in Arrow (no Python object per event): distinct counts and string
    extremes compare dictionary codes (ranked in code-point order for min/max); ``last``
    keeps positions into the raw column.
    """
    kind = spec.column_kinds.get(agg.column or "")
    column = raw.combine_chunks()
    if agg.function == "last":
        ev.cols[f"v{i}"] = np.arange(len(column), dtype=np.int64)
        ev.values[i] = column
        return
    if agg.function == "count_distinct" or kind == "string":
        encoded = pc.dictionary_encode(column)
        codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(), dtype=np.int64)
        if agg.function != "count_distinct":  # rank the codes in code-point order
            dictionary = encoded.dictionary
            order = np.asarray(pc.array_sort_indices(dictionary).to_numpy(), dtype=np.int64)
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1)
            ev.values[i] = dictionary.take(pa.array(order))
        ev.cols[f"v{i}"] = np.where(match, codes, -1)
        return
    filled = column.fill_null(0)
    if kind == "float":
        ev.cols[f"v{i}"] = np.asarray(filled.cast(pa.float64()).to_numpy(), dtype=np.float64)
    else:
        ev.cols[f"v{i}"] = np.asarray(filled.cast(pa.int64()).to_numpy(), dtype=np.int64)


def read_sorted_events(spec: WindowSpec, path: str, events: pa.Table | None = None) -> Events:
    """The events of ``path`` (or of the arrow table ``events``, which has the raw
    columns and ``file_row_number``), filtered, typed and sorted by (key, time)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if events is not None:
            con.register("events", events)
        table = con.sql(_select_sql(spec, None if events is not None else path)).to_arrow_table()
    except duckdb.Error as exc:
        raise DataError(f"Could not read events for {spec.name!r} from {path}: {exc}") from exc
    finally:
        con.close()
    key_cols = [table.column("key_" + k).combine_chunks() for k in spec.entity_keys]
    for name, col in zip(spec.entity_keys, key_cols, strict=True):
        if col.null_count:
            raise DataError(
                f"Events of {spec.name!r} ({path}) have null values in join key {name!r}; "
                "every event needs its entity."
            )
    if spec.int_key:
        codes = _numpy(key_cols[0]).astype(np.int64)
        keymap = KeyMap((), ())
    else:
        codes, starts = dense_codes(key_cols)
        distinct = tuple(_numpy(c.take(pa.array(starts))) for c in key_cols)
        keymap = KeyMap(tuple(spec.entity_keys), distinct)
    times = table.column("t")
    if times.null_count:
        raise DataError(
            f"Events of {spec.name!r} ({path}) have null values in {spec.timestamp_field!r}."
        )
    ev = Events(k=codes, t=_numpy(times).astype(np.int64), cols={}, keymap=keymap)
    for i, agg in enumerate(spec.aggregates):
        for prefix in ("c", "s"):
            name = f"{prefix}{i}"
            if name in table.column_names:
                ev.cols[name] = _numpy(table.column(name))
        if agg.function not in PREFIX_FUNCTIONS:
            match = _numpy(table.column(f"m{i}")).astype(bool)
            ev.cols[f"m{i}"] = match
            _value_column(spec, i, agg, table.column(f"v{i}"), match, ev)
    return ev


def _prefix(values: np.ndarray, dtype: type) -> np.ndarray:
    out: np.ndarray = np.empty(len(values) + 1, dtype=dtype)
    out[0] = 0
    np.cumsum(values, dtype=dtype, out=out[1:])
    return out


def _entity_prefix(
    values: np.ndarray, dense: np.ndarray, starts: np.ndarray, dtype: type
) -> np.ndarray:
    """Q (n + 1): Q[x] is the sum of the entity's events from its first up to x - 1, for
    x past the entity's first event (read with :func:`_prefix_at`).

    Entity-local, so a float sum depends only on the entity's own events in log order,
    not on which other entities share its chunk: every build of the table (DuckDB or
    Spark, any chunking) gives the same bits. Integers: one cumulative sum minus each
    entity's offset (exact); floats: :func:`_segment_cumsum`, the plain left-to-right
    sum per entity (monotone for non-negative summands, so a window of non-negative
    values never comes out below 0)."""
    out: np.ndarray = np.empty(len(values) + 1, dtype=dtype)
    out[0] = 0
    if np.issubdtype(dtype, np.integer):
        total: np.ndarray = np.cumsum(values, dtype=dtype)
        before: np.ndarray = np.concatenate([[0], total[starts[1:] - 1]]).astype(dtype)
        out[1:] = total - before[dense]
    else:
        out[1:] = _segment_cumsum(np.asarray(values, dtype=dtype), starts)
    return out


_SHORT = 32  # entities up to this long are summed in vectorized rounds


def _segment_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The inclusive cumulative sum of ``values`` restarting at each of ``starts``, added
    left to right as ``np.cumsum`` does (the same bits): round j adds every entity's
    j-th value at once; entities longer than ``_SHORT`` finish with one cumsum each."""
    out = values.copy()
    n = len(values)
    lengths = np.diff(np.append(starts, n))
    first = starts[lengths > 1]
    lens = lengths[lengths > 1]
    for j in range(1, min(_SHORT, int(lens.max(initial=0)))):
        live = lens > j
        first, lens = first[live], lens[live]
        pos = first + j
        out[pos] = out[pos - 1] + values[pos]
    for s, length in zip(first.tolist(), lens.tolist(), strict=True):
        if length > _SHORT:  # continue from the sum after _SHORT values
            lo = s + _SHORT - 1
            tail = values[lo : s + length].copy()
            tail[0] = out[lo]
            np.cumsum(tail, out=out[lo : s + length])
    return out


def _prefix_at(prefix: np.ndarray, x: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The entity-local prefix at positions ``x`` (0 at the entity's ``first`` event)."""
    return np.where(x > first, np.take(prefix, x, mode="clip"), 0)


@dataclass(frozen=True)
class Points:
    """The change points of one chunk and the event positions around each."""

    ent: np.ndarray  # chunk entity index of each point
    times: np.ndarray  # time of each point (us)
    packed: np.ndarray  # (entity << tbits) | (time - tmin)
    tbits: int
    tmin: int
    enters: np.ndarray  # K: events (chunk-local) with time <= point
    lows: list[np.ndarray]  # J per window: first event (chunk-local) inside the window
    starts: np.ndarray  # first event of each chunk entity


def _merge_positions(ent_of: np.ndarray, times: np.ndarray, windows_us: list[int]) -> Points:
    """Change points of one chunk. ``ent_of`` are dense chunk entity indices (sorted)."""
    n = len(times)
    finite = [w for w in windows_us if w]
    m = len(finite)
    tmin = int(times.min())
    trel = times - tmin
    span = int(trel.max()) + max(finite, default=0) + 1
    tbits = span.bit_length()
    kbits = m.bit_length()
    if int(ent_of[-1]).bit_length() + tbits + kbits > 63:
        raise OverflowError  # the caller splits the chunk
    base = (ent_of << tbits) | trel
    items = np.empty(n * (m + 1), dtype=np.int64)
    items[:n] = base << kbits
    for j, w in enumerate(finite, start=1):
        items[j * n : (j + 1) * n] = ((base + w) << kbits) | j
    items.sort(kind="stable")  # merges m + 1 sorted runs
    kind = items & ((1 << kbits) - 1)
    point = items >> kbits
    last = np.empty(len(items), dtype=bool)
    last[-1] = True
    np.not_equal(point[1:], point[:-1], out=last[:-1])
    # intp positions: numpy gathers with them without converting (3x faster than int32)
    enters = np.cumsum(kind == 0, dtype=np.intp)[last]
    leaves = iter([np.cumsum(kind == j, dtype=np.intp)[last] for j in range(1, m + 1)])
    point = point[last]
    ent = point >> tbits
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(ent_of[1:], ent_of[:-1], out=new[1:])
    starts = np.flatnonzero(new).astype(np.intp)
    lows = [next(leaves) if w else starts[ent] for w in windows_us]
    return Points(
        ent, (point & ((1 << tbits) - 1)) + tmin, point, tbits, tmin, enters, lows, starts
    )


def _range_extreme(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, fn: Any) -> np.ndarray:
    """fn (np.minimum or np.maximum) over values[lo:hi] per query (hi > lo), by sparse table."""
    levels = [values]
    width = 1
    while width * 2 <= len(values):
        prev = levels[-1]
        levels.append(fn(prev[: len(prev) - width], prev[width:]))
        width *= 2
    out = np.zeros(len(lo), dtype=values.dtype)
    some = hi > lo
    level = np.zeros(len(lo), dtype=np.intp)
    level[some] = np.floor(np.log2(hi[some] - lo[some])).astype(np.intp)
    for j in np.unique(level[some]):
        sel = some & (level == j)
        table = levels[j]
        out[sel] = fn(table[lo[sel]], table[hi[sel] - (1 << int(j))])
    return out


Valued = dict[str, tuple[np.ndarray, np.ndarray | None]]  # feature -> (values, valid)


def _extreme_columns(
    spec: WindowSpec, agg: Aggregate, i: int, cols: dict[str, np.ndarray], pts: Points
) -> Valued:
    match = cols[f"m{i}"]
    values = cols[f"v{i}"]
    fn = np.minimum if agg.function == "min" else np.maximum
    if values.dtype == np.float64:
        sentinel: Any = np.inf if agg.function == "min" else -np.inf
    else:
        info = np.iinfo(np.int64)
        sentinel = info.max if agg.function == "min" else info.min
    masked = np.where(match, values, sentinel)
    matches = _prefix(match, np.int64)
    out: Valued = {}
    for w, lo in zip(spec.windows, pts.lows, strict=True):
        hi = pts.enters
        any_ = matches[hi] - matches[lo] > 0
        best = _range_extreme(masked, lo, hi, fn)
        out[spec.feature_name(agg, w)] = (best, any_)
    return out


def _last_columns(
    spec: WindowSpec, agg: Aggregate, i: int, cols: dict[str, np.ndarray], pts: Points
) -> Valued:
    match = cols[f"m{i}"]
    latest = np.maximum.accumulate(np.where(match, np.arange(len(match)), -1))
    pos = latest[np.maximum(pts.enters - 1, 0)]
    pos = np.where(pts.enters > 0, pos, -1)
    out: Valued = {}
    for w, lo in zip(spec.windows, pts.lows, strict=True):
        valid = pos >= lo
        out[spec.feature_name(agg, w)] = (cols[f"v{i}"][np.maximum(pos, 0)], valid)
    return out


def _distinct_columns(
    spec: WindowSpec,
    agg: Aggregate,
    i: int,
    cols: dict[str, np.ndarray],
    ent_of: np.ndarray,
    t: np.ndarray,
    pts: Points,
) -> Valued:
    codes = cols[f"v{i}"]
    idx = np.flatnonzero(codes >= 0)
    e, v, ti = ent_of[idx], codes[idx], t[idx] - pts.tmin
    order = np.lexsort((idx, v, e))  # by entity, value, then time (positions are time-sorted)
    e, v, ti = e[order], v[order], ti[order]
    same_next = np.zeros(len(idx), dtype=bool)
    if len(idx) > 1:
        same_next[:-1] = (e[1:] == e[:-1]) & (v[1:] == v[:-1])
    nxt = np.empty(len(idx), dtype=np.int64)
    if len(idx):
        nxt[:-1] = ti[1:]
        nxt[-1] = 0
    base = e << pts.tbits
    enters = np.sort(base | ti)
    ent_lo = pts.ent << pts.tbits  # the first packed value of each point's entity
    opened = np.searchsorted(enters, pts.packed, side="right") - np.searchsorted(
        enters, ent_lo, side="left"
    )
    out: Valued = {}
    for w in spec.windows:
        if w:
            end = np.where(same_next, np.minimum(ti + w * US, nxt), ti + w * US)
            leaves = np.sort(base | end)
        else:
            leaves = np.sort((base | nxt)[same_next])
        closed = np.searchsorted(leaves, pts.packed, side="right") - np.searchsorted(
            leaves, ent_lo, side="left"
        )
        out[spec.feature_name(agg, w)] = ((opened - closed).astype(np.int32), None)
    return out


def _chunk_table(spec: WindowSpec, ev: Events, lo: int, hi: int, schema: pa.Schema) -> Chunk:
    k = ev.k[lo:hi]
    t = ev.t[lo:hi]
    new = np.empty(len(k), dtype=bool)
    new[0] = True
    np.not_equal(k[1:], k[:-1], out=new[1:])
    dense = np.cumsum(new) - 1
    pts = _merge_positions(dense, t, [w * US for w in spec.windows])
    codes = k[new][pts.ent]
    columns: dict[str, Any] = {spec.timestamp_field: pts.times}
    if ev.keymap.identity:
        columns[spec.entity_keys[0]] = codes
    else:
        columns.update(ev.keymap.decode(codes))
    cols = {name: col[lo:hi] for name, col in ev.cols.items()}
    prefixes = {
        name: _entity_prefix(
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
            parts = _extreme_columns(spec, agg, i, cols, pts)
        elif agg.function == "last":
            parts = _last_columns(spec, agg, i, cols, pts)
        else:
            parts = _distinct_columns(spec, agg, i, cols, dense, t, pts)
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
    c_now = None if counts is None else _prefix_at(counts, enters, first)
    s_now = None if sums is None else _prefix_at(sums, enters, first)
    for w, left in zip(spec.windows, leaves, strict=True):
        name = spec.feature_name(agg, w)
        if counts is None or c_now is None:  # every event counts: no prefix needed
            n = (enters - left).astype(np.int32)
        else:
            n = (c_now - _prefix_at(counts, left, first)).astype(np.int32)
        if agg.function == "count":
            out[name] = n
            continue
        if sums is None or s_now is None:
            raise DataError(f"{name}: the build kept no sums for a {agg.function} aggregate.")
        total = s_now - _prefix_at(sums, left, first)
        if agg.function == "sum":
            out[name] = total.astype(np.int64) if spec.output_kind(agg) == "int" else total
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(n > 0, total / n, np.nan)
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
