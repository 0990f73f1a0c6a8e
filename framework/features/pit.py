"""A vectorised point-in-time index over one file-backed feature view.

Feast's rule, which this module reproduces exactly: for an entity row (k, t) a
feature view contributes the row of entity k with the greatest timestamp
``ts <= t``, and only if ``ts >= t - ttl`` when the view has a ttl; otherwise
null. The index keeps the table sorted by (entity, time) and answers a whole
batch of entity rows with numpy: a ``searchsorted`` for the entity, then a
binary search within each entity's rows, run for all rows at once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["PitIndex", "load_index"]


@dataclass
class PitIndex:
    """Rows of one table sorted by (key, time); ``offsets[i]:offsets[i+1]`` are key i's rows."""

    keys: np.ndarray
    offsets: np.ndarray
    times: np.ndarray  # int64 microseconds since the epoch, UTC
    table: pa.Table  # the feature columns, in the same row order

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
    path: str, key: str, timestamp_field: str, columns: list[str], presorted: bool = False
) -> PitIndex:
    """The index of a parquet file, cached in the process while the file is unchanged."""
    st = os.stat(path)
    cache_key = (path, st.st_mtime_ns, st.st_size, key, timestamp_field, tuple(columns))
    with _LOCK:
        hit = _CACHE.get(cache_key)
    if hit is not None:
        return hit
    table = pq.read_table(path, columns=[key, timestamp_field, *columns])
    if not presorted:
        table = table.sort_by([(key, "ascending"), (timestamp_field, "ascending")])
    keys = table.column(key).to_numpy()
    times = _timestamps_us(table.column(timestamp_field))
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.array([], int)
    index = PitIndex(
        keys=keys[starts],
        offsets=np.r_[starts, len(keys)].astype(np.int64),
        times=times,
        table=table.select(columns).combine_chunks(),
    )
    with _LOCK:
        for stale in [k for k in _CACHE if k[0] == path]:
            del _CACHE[stale]
        _CACHE[cache_key] = index
    return index
