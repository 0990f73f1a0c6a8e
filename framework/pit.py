"""A vectorised point-in-time index over one file-backed feature view.

Feast's rule, which this module reproduces exactly: for an entity row (k, t) a
feature view contributes the row of entity k with the greatest timestamp
``ts <= t``, and only if ``ts >= t - ttl`` when the view has a ttl; otherwise
null. The index keeps the table sorted by (entity, time) and answers a whole
batch of entity rows with numpy: a ``searchsorted`` for the entity, then a
binary search within each entity's rows, run for all rows at once.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

__all__ = ["PitIndex", "SidecarWriter", "load_index", "sidecar_path"]


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


def sidecar_path(parquet: str | Path) -> Path:
    """Where the memory-mappable copy of a sorted parquet table lives."""
    parquet = Path(parquet)
    return parquet.with_name(parquet.name + ".pit")


class SidecarWriter:
    """Writes a sorted table's index as raw arrays plus an uncompressed Arrow IPC file.

    The parquet file stays the source of truth (Feast reads it); the sidecar is a
    memory-mappable copy, valid only while the parquet's size and mtime match the
    manifest, so a reader never pairs a sidecar with another table.
    """

    def __init__(self, parquet: str | Path, key: str, timestamp_field: str, schema: pa.Schema):
        self.final = sidecar_path(parquet)
        self.tmp = self.final.with_name(f".{self.final.name}.{os.getpid()}.tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.key, self.timestamp_field = key, timestamp_field
        feature_schema = pa.schema([f for f in schema if f.name not in (key, timestamp_field)])
        self._times = open(self.tmp / "times.i64", "wb")  # noqa: SIM115 - closed in commit
        self._keys = open(self.tmp / "keys.i64", "wb")  # noqa: SIM115
        self._offsets = open(self.tmp / "offsets.i64", "wb")  # noqa: SIM115
        self._features = ipc.new_file(str(self.tmp / "features.arrow"), feature_schema)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        keys = table.column(self.key).to_numpy()
        times = table.column(self.timestamp_field).cast(pa.int64()).to_numpy()
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        self._keys.write(keys[starts].astype(np.int64).tobytes())
        self._offsets.write((starts + self.rows).astype(np.int64).tobytes())
        self._times.write(times.astype(np.int64).tobytes())
        self._features.write_table(table.drop_columns([self.key, self.timestamp_field]))
        self.rows += table.num_rows

    def _close(self) -> None:
        for handle in (self._times, self._keys, self._offsets):
            if not handle.closed:
                handle.close()
        self._features.close()

    def commit(self, parquet: str | Path) -> None:
        """Seal the sidecar for the parquet file now in place, then move it into place."""
        self._offsets.write(np.array([self.rows], dtype=np.int64).tobytes())
        self._close()
        st = os.stat(parquet)
        manifest = {"rows": self.rows, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        (self.tmp / "manifest.json").write_text(json.dumps(manifest))
        trash = self.final.with_name(f".{self.final.name}.{os.getpid()}.old")
        if self.final.exists():
            os.replace(self.final, trash)
        os.replace(self.tmp, self.final)
        shutil.rmtree(trash, ignore_errors=True)

    def abort(self) -> None:
        self._close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _load_sidecar(path: str, columns: list[str]) -> PitIndex | None:
    side = sidecar_path(path)
    try:
        manifest = json.loads((side / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    st = os.stat(path)
    if manifest.get("size") != st.st_size or manifest.get("mtime_ns") != st.st_mtime_ns:
        return None
    table = ipc.open_file(pa.memory_map(str(side / "features.arrow"))).read_all()
    if not set(columns) <= set(table.column_names):
        return None

    def raw(name: str) -> np.ndarray:
        size = (side / name).stat().st_size
        if size == 0:
            return np.empty(0, dtype=np.int64)
        return np.memmap(side / name, dtype=np.int64, mode="r")

    return PitIndex(
        keys=raw("keys.i64"), offsets=raw("offsets.i64"), times=raw("times.i64"), table=table
    )


def load_index(
    path: str, key: str, timestamp_field: str, columns: list[str], presorted: bool = False
) -> PitIndex:
    """The index of a parquet file, cached in the process while the file is unchanged.

    A valid sidecar (see ``SidecarWriter``) is memory-mapped; otherwise the
    parquet file is read and sorted.
    """
    st = os.stat(path)
    cache_key = (path, st.st_mtime_ns, st.st_size, key, timestamp_field, tuple(columns))
    with _LOCK:
        hit = _CACHE.get(cache_key)
    if hit is not None:
        return hit
    index = _load_sidecar(path, columns)
    if index is not None:
        with _LOCK:
            _CACHE[cache_key] = index
        return index
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
