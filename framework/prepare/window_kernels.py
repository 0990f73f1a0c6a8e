"""The numeric kernels of a window table: per change point, the events in its window
are the sorted positions [J_W, K), and each aggregate is read from them without a loop
over rows (see :mod:`framework.prepare.window_tables` for the whole method).

- count, sum, mean: prefix sums, P[K] - P[J_W], summed left to right within each
  entity so every build gives the same bits;
- min, max: a sparse table (range-minimum query) over the positions;
- last: the latest matching position before K, if it is >= J_W;
- count_distinct: open value intervals counted at each change point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.declare.windows import Aggregate, WindowSpec

__all__ = [
    "US",
    "Points",
    "Valued",
    "distinct_columns",
    "entity_prefix",
    "extreme_columns",
    "last_columns",
    "merge_positions",
    "prefix",
    "prefix_at",
    "range_extreme",
    "segment_cumsum",
]

US = 1_000_000


def prefix(values: np.ndarray, dtype: type) -> np.ndarray:
    out: np.ndarray = np.empty(len(values) + 1, dtype=dtype)
    out[0] = 0
    np.cumsum(values, dtype=dtype, out=out[1:])
    return out


def entity_prefix(
    values: np.ndarray, dense: np.ndarray, starts: np.ndarray, dtype: type
) -> np.ndarray:
    """Q (n + 1): Q[x] is the sum of the entity's events from its first up to x - 1, for
    x past the entity's first event (read with :func:`prefix_at`).

    Entity-local, so a float sum depends only on the entity's own events in log order,
    not on which other entities share its chunk: every build of the table (DuckDB or
    Spark, any chunking) gives the same bits. Integers: one cumulative sum minus each
    entity's offset (exact); floats: :func:`segment_cumsum`, the plain left-to-right
    sum per entity (monotone for non-negative summands, so a window of non-negative
    values never comes out below 0)."""
    out: np.ndarray = np.empty(len(values) + 1, dtype=dtype)
    out[0] = 0
    if np.issubdtype(dtype, np.integer):
        total: np.ndarray = np.cumsum(values, dtype=dtype)
        before: np.ndarray = np.concatenate([[0], total[starts[1:] - 1]]).astype(dtype)
        out[1:] = total - before[dense]
    else:
        out[1:] = segment_cumsum(np.asarray(values, dtype=dtype), starts)
    return out


_SHORT = 32  # entities up to this long are summed in vectorized rounds


def segment_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
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


def prefix_at(prefix: np.ndarray, x: np.ndarray, first: np.ndarray) -> np.ndarray:
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


def merge_positions(ent_of: np.ndarray, times: np.ndarray, windows_us: list[int]) -> Points:
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


def range_extreme(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, fn: Any) -> np.ndarray:
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


def extreme_columns(
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
    matches = prefix(match, np.int64)
    out: Valued = {}
    for w, lo in zip(spec.windows, pts.lows, strict=True):
        hi = pts.enters
        any_ = matches[hi] - matches[lo] > 0
        best = range_extreme(masked, lo, hi, fn)
        out[spec.feature_name(agg, w)] = (best, any_)
    return out


def last_columns(
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


def distinct_columns(
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
