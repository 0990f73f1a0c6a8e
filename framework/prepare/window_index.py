"""A compact, memory-mapped index for windowed views: event times and prefix sums.

The change-point table (parquet) is what Feast reads. Beside it, the build
writes the sorted events' times and the very prefix sums it computed the table
from (about 40 bytes per event instead of about 4 table rows of every feature).
From them, the value of a count, sum or mean over a window W at any t is

    P[#events <= t] - P[#events <= t - W]

for the entity (the entity's first event for the lifetime window): the same subtraction of the same numbers as the table's row at
its last change point <= t, so the answer is bit-identical to the table's.

Files under ``<table>.parquet.win/``: ``keys.i64`` (entity key codes, sorted;
``keys.parquet`` maps codes to keys other than one integer column),
``offsets.i64`` (first event of each entity, plus the total), ``times.i64``
(microseconds, UTC), per prefix column ``<col>.inc`` (inclusive entity-local
prefix at each event) and ``<col>.base`` (the prefix before each entity's first
event: 0), and ``manifest.json``, which ties them to the parquet file's size and
mtime: a stale or missing index is never used.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from framework.common.keys import KeyMap
from framework.declare.windows import WindowSpec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "Chunk",
    "WindowIndex",
    "WindowIndexWriter",
    "load_window_index",
    "remove_window_index",
]

_DTYPES = {"c": np.int32, "s": np.float64}


def index_path(table_path: str | Path) -> Path:
    table_path = Path(table_path)
    return table_path.with_name(table_path.name + ".win")


def remove_window_index(table_path: str | Path) -> None:
    """Drop the index of a table that has none any more (a view with min, max, ...)."""
    shutil.rmtree(index_path(table_path), ignore_errors=True)


@dataclass(frozen=True)
class Chunk:
    """One chunk of entities: its table rows, and the event prefix sums that made them."""

    table: pa.Table
    keys: np.ndarray  # the chunk's entity keys, sorted
    starts: np.ndarray  # first event of each entity, chunk-local
    times: np.ndarray  # event times (us), sorted by (entity, time)
    prefixes: dict[str, np.ndarray]  # column -> entity-local prefix sum (n + 1)


class WindowIndexWriter:
    """Streams chunks of a build into a temporary folder; ``commit`` moves it into place."""

    def __init__(self, table_path: str | Path, spec: WindowSpec, keymap: KeyMap) -> None:
        self.final = index_path(table_path)
        self.tmp = self.final.with_name(f".{self.final.name}.{os.getpid()}.tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.spec = spec
        self.keymap = keymap
        self.events = 0
        self.entities = 0
        self._files: dict[str, BinaryIO] = {}

    def _out(self, name: str) -> BinaryIO:
        if name not in self._files:
            self._files[name] = open(self.tmp / name, "wb")  # noqa: SIM115 - closed in _close
        return self._files[name]

    def write(self, chunk: Chunk) -> None:
        self._out("keys.i64").write(chunk.keys.astype(np.int64).tobytes())
        self._out("offsets.i64").write((chunk.starts + self.events).astype(np.int64).tobytes())
        self._out("times.i64").write(chunk.times.astype(np.int64).tobytes())
        for col, prefix in chunk.prefixes.items():
            self._out(f"{col}.inc").write(prefix[1:].tobytes())
            # entity-local prefixes: 0 before each entity's first event
            self._out(f"{col}.base").write(np.zeros(len(chunk.starts), prefix.dtype).tobytes())
        self.events += len(chunk.times)
        self.entities += len(chunk.keys)

    def _close(self) -> None:
        for handle in self._files.values():
            handle.close()

    def commit(self, table_path: str | Path) -> None:
        self._out("offsets.i64").write(np.array([self.events], dtype=np.int64).tobytes())
        self._close()
        if not self.keymap.identity:
            import pyarrow as pa
            import pyarrow.parquet as pq

            keys = pa.table(dict(zip(self.keymap.names, self.keymap.columns, strict=True)))
            pq.write_table(keys, self.tmp / "keys.parquet")
        st = os.stat(table_path)
        manifest = {
            "events": self.events,
            "entities": self.entities,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "spec": self.spec.to_json(),
        }
        (self.tmp / "manifest.json").write_text(json.dumps(manifest))
        trash = self.final.with_name(f".{self.final.name}.{os.getpid()}.old")
        if self.final.exists():
            os.replace(self.final, trash)
        os.replace(self.tmp, self.final)
        shutil.rmtree(trash, ignore_errors=True)

    def abort(self) -> None:
        self._close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _upper(times: np.ndarray, lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For each query, the first position in [lo, hi) whose time is > t (hi if none)."""
    lo = lo.copy()
    hi = hi.copy()
    last = len(times) - 1
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) >> 1
        right = np.take(times, np.minimum(mid, last)) <= t
        lo = np.where(active & right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)


@dataclass
class WindowIndex:
    """The index of one windowed view (see the module docstring)."""

    spec: WindowSpec
    keys: np.ndarray
    offsets: np.ndarray
    times: np.ndarray
    inc: dict[str, np.ndarray]
    base: dict[str, np.ndarray]
    keymap: KeyMap

    def codes(self, frame: Any) -> np.ndarray:
        """The key code of each row of ``frame`` (its join-key columns); -1 if unknown."""
        if self.keymap.identity:
            return np.asarray(frame[self.spec.entity_keys[0]], dtype=np.int64)
        return self.keymap.codes(frame)

    def key_columns(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """The join-key columns of ``codes`` (codes of this index)."""
        if self.keymap.identity:
            return {self.spec.entity_keys[0]: np.asarray(codes)}
        return self.keymap.decode(np.asarray(codes))

    def _locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n_keys = len(self.keys)
        i = np.searchsorted(self.keys, keys)
        ic = np.minimum(i, max(n_keys - 1, 0))
        found = (self.keys[ic] == keys) if n_keys else np.zeros(len(keys), dtype=bool)
        lo = np.where(found, np.take(self.offsets, ic), 0).astype(np.intp)
        hi = np.where(found, np.take(self.offsets, ic + 1), 0).astype(np.intp)
        return ic, found, lo, hi

    def _value(self, col: str, x: np.ndarray, lo: np.ndarray, ent: np.ndarray) -> np.ndarray:
        inc = np.take(self.inc[col], np.maximum(x - 1, 0), mode="clip")
        return np.where(x > lo, inc, np.take(self.base[col], ent, mode="clip"))

    def at(
        self, keys: np.ndarray, times_us: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every feature at (key code, time); and the time of the last change point (-1 if none)."""
        ent, found, lo, hi = self._locate(np.asarray(keys, dtype=np.int64))
        t = np.asarray(times_us, dtype=np.int64)
        k_now = _upper(self.times, lo, hi, t)
        windows_us = [w * 1_000_000 for w in self.spec.windows]
        k_then = [_upper(self.times, lo, hi, t - w) if w else lo for w in windows_us]
        out: dict[str, np.ndarray] = {}
        for i, agg in enumerate(self.spec.aggregates):
            c, s = f"c{i}", f"s{i}"
            c_now = self._value(c, k_now, lo, ent) if c in self.inc else None
            s_now = self._value(s, k_now, lo, ent) if s in self.inc else None
            for w, then in zip(self.spec.windows, k_then, strict=True):
                name = self.spec.feature_name(agg, w)
                if agg.function == "count":
                    if c_now is None:
                        n = (k_now - then).astype(np.int32)
                    else:
                        n = c_now - self._value(c, then, lo, ent)
                    out[name] = np.where(found, n, 0).astype(np.int32)
                elif agg.function == "sum":
                    total = np.where(found, s_now - self._value(s, then, lo, ent), 0.0)
                    is_int = self.spec.output_kind(agg) == "int"
                    out[name] = total.astype(np.int64) if is_int else total
                else:
                    n = c_now - self._value(c, then, lo, ent)
                    total = s_now - self._value(s, then, lo, ent)
                    valid = found
                    if agg.function == "ratio":
                        total, n = total + agg.prior[0], n + agg.prior[1]
                        valid = found & (k_now > lo)  # before any event: null, as the table
                    with np.errstate(invalid="ignore", divide="ignore"):
                        mean = total / n
                    out[name] = np.where(valid & (n > 0), mean, np.nan)
        last = np.where(k_now > lo, np.take(self.times, np.maximum(k_now - 1, 0), mode="clip"), -1)
        for w, then in zip(windows_us, k_then, strict=True):
            if not w:
                continue
            leave = np.take(self.times, np.maximum(then - 1, 0), mode="clip") + w
            last = np.maximum(last, np.where(then > lo, leave, -1))
        return out, np.where(found, last, -1)


_CACHE: dict[tuple, WindowIndex] = {}
_LOCK = threading.Lock()


def load_window_index(spec: WindowSpec) -> WindowIndex | None:
    """The memory-mapped index of ``spec``'s table, or None when it is missing or stale."""
    if not spec.prefix_only:
        return None
    folder = index_path(spec.table_path)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        st = os.stat(spec.table_path)
    except (OSError, ValueError):
        return None
    if (manifest.get("size"), manifest.get("mtime_ns")) != (st.st_size, st.st_mtime_ns):
        return None
    if manifest.get("spec") != spec.to_json():
        return None
    cache_key = (str(folder), st.st_mtime_ns, st.st_size)
    with _LOCK:
        hit = _CACHE.get(cache_key)
    if hit is not None:
        return hit

    def raw(name: str, dtype: Any) -> np.ndarray:
        path = folder / name
        if path.stat().st_size == 0:
            return np.empty(0, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r")

    cols = sorted({p.stem for p in folder.glob("*.inc")})
    keymap = KeyMap((), ())
    if (folder / "keys.parquet").exists():
        import pyarrow.parquet as pq

        keys = pq.read_table(folder / "keys.parquet")
        keymap = KeyMap(
            tuple(keys.column_names),
            tuple(np.asarray(c.to_numpy(zero_copy_only=False)) for c in keys.columns),
        )
    index = WindowIndex(
        spec=spec,
        keys=raw("keys.i64", np.int64),
        offsets=raw("offsets.i64", np.int64),
        times=raw("times.i64", np.int64),
        inc={c: raw(f"{c}.inc", _DTYPES[c[0]]) for c in cols},
        base={c: raw(f"{c}.base", _DTYPES[c[0]]) for c in cols},
        keymap=keymap,
    )
    with _LOCK:
        _CACHE[cache_key] = index
    return index
