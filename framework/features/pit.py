"""A vectorised point-in-time index over one file-backed feature view.

Feast's rule, which this module reproduces exactly: for an entity row (k, t) a
feature view contributes the row of entity k with the greatest timestamp
``ts <= t``, and only if ``ts >= t - ttl`` when the view has a ttl; otherwise
null. The index keeps the table sorted by (entity, time) and answers a whole
batch of entity rows with numpy: a ``searchsorted`` for the entity, then a
binary search within each entity's rows, run for all rows at once. Keys other
than one integer column are searched as dense codes (:mod:`framework.common.keys`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from framework.common.keys import KeyMap, dense_codes

__all__ = ["PitIndex", "load_index"]


@dataclass
class PitIndex:
    """Rows of one table sorted by (key, time); ``offsets[i]:offsets[i+1]`` are key i's rows."""

    keys: np.ndarray
    offsets: np.ndarray
    times: np.ndarray  # int64 microseconds since the epoch, UTC
    table: pa.Table  # the feature columns, in the same row order
    key_names: tuple[str, ...] = ()
    keymap: KeyMap | None = None  # None: one integer key, its own code

    def codes(self, frame: object) -> np.ndarray:
        """The key code of each row of ``frame`` (its join-key columns); -1 if unknown."""
        if self.keymap is None:
            return np.asarray(frame[self.key_names[0]], dtype=np.int64)  # type: ignore[index]
        return self.keymap.codes(frame)

    def key_columns(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        if self.keymap is None:
            return {self.key_names[0]: np.asarray(codes)}
        return self.keymap.decode(np.asarray(codes))

    def lookup(self, keys: np.ndarray, times_us: np.ndarray, ttl_us: int = 0) -> np.ndarray:
        """Row index per query (key, time), or -1 where the view has no valid row."""
        n = len(keys)
        if n == 0 or len(self.keys) == 0:
            return np.full(n, -1, dtype=np.int64)
        i = np.searchsorted(self.keys, keys)
        ic = np.minimum(i, len(self.keys) - 1)
        found = self.keys[ic] == keys
        lo = np.where(found, self.offsets[ic], 0)
        hi = np.where(found, self.offsets[ic + 1], 0)
        first = lo.copy()
        # Binary search, for all rows at once, of the first row with time > t.
        while True:
            active = lo < hi
            if not active.any():
                break
            mid = (lo + hi) // 2
            right = self.times[np.minimum(mid, len(self.times) - 1)] <= times_us
            lo = np.where(active & right, mid + 1, lo)
            hi = np.where(active & ~right, mid, hi)
        pos = lo - 1
        valid = found & (pos >= first)
        if ttl_us:
            valid &= self.times[np.maximum(pos, 0)] >= times_us - ttl_us
        return np.where(valid, pos, -1)

    def take(self, rows: np.ndarray, columns: list[str]) -> dict[str, pa.Array]:
        """The values of ``columns`` at ``rows`` (null where the row is -1)."""
        idx = pa.array(np.where(rows >= 0, rows, 0), mask=rows < 0)
        return {c: pc.take(self.table.column(c), idx) for c in columns}


_CACHE: dict[tuple, PitIndex] = {}
_LOCK = threading.Lock()


def _timestamps_us(col: pa.ChunkedArray) -> np.ndarray:
    col = col.cast(pa.timestamp("us", tz="UTC"))
    return col.to_numpy().astype("datetime64[us]").astype(np.int64)


def load_index(
    path: str,
    key: str | list[str] | tuple[str, ...],
    timestamp_field: str,
    columns: list[str],
    presorted: bool = False,
) -> PitIndex:
    """The index of a parquet file, cached in the process while the file is unchanged."""
    names = (key,) if isinstance(key, str) else tuple(key)
    st = os.stat(path)
    cache_key = (path, st.st_mtime_ns, st.st_size, names, timestamp_field, tuple(columns))
    with _LOCK:
        hit = _CACHE.get(cache_key)
    if hit is not None:
        return hit
    table = pq.read_table(path, columns=[*names, timestamp_field, *columns])
    int_key = len(names) == 1 and pa.types.is_integer(table.schema.field(names[0]).type)
    if not presorted:
        order = [(k, "ascending") for k in names] + [(timestamp_field, "ascending")]
        table = table.sort_by(order)
    times = _timestamps_us(table.column(timestamp_field))
    keymap = None
    if int_key:
        keys = table.column(names[0]).to_numpy().astype(np.int64)
        starts = (
            np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.array([], int)
        )
        distinct = keys[starts]
    else:
        cols = [np.asarray(table.column(k).to_numpy(zero_copy_only=False)) for k in names]
        _, starts = dense_codes(cols)
        distinct = np.arange(len(starts), dtype=np.int64)
        keymap = KeyMap(names, tuple(c[starts] for c in cols))
    index = PitIndex(
        keys=distinct,
        offsets=np.r_[starts, len(times)].astype(np.int64),
        times=times,
        table=table.select(columns).combine_chunks(),
        key_names=names,
        keymap=keymap,
    )
    with _LOCK:
        for stale in [k for k in _CACHE if k[0] == path]:
            del _CACHE[stale]
        _CACHE[cache_key] = index
    return index
