"""Entity keys of any shape as dense int64 codes, for the numpy indexes.

One integer join key is its own code. Any other key (a string, or several
columns) gets the position of its value in a table of the distinct keys: the
indexes then search int64 codes whatever the key, and a lookup maps each
requested key to its code through a hash table (``-1`` for a key never seen).
The mapping is exact: no hashing of values into codes, so no collisions.

In the databases (prediction log, batch predictions) an entity is one text,
``entity_text``: the key's value for one key (``42``, ``c_17``), a JSON array of
the values for a composite key (``["u_1", "sku_9"]``); ``entity_frame`` reads it
back into typed key columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["KeyMap", "dense_codes", "entity_frame", "entity_text", "entity_texts"]


def _column(values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy"):
        try:
            return np.asarray(values.to_numpy(zero_copy_only=False))
        except TypeError:
            return np.asarray(values.to_numpy())
    return np.asarray(values)


def dense_codes(columns: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by the key columns (numpy or Arrow arrays): (code per row, position
    of each key's first row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(columns[0]) if columns else 0
    new = np.zeros(n, dtype=bool)
    if n:
        new[0] = True
        for col in columns:
            if isinstance(col, pa.Array | pa.ChunkedArray):
                differs = pc.not_equal(col.slice(1), col.slice(0, n - 1))
                new[1:] |= np.asarray(differs.to_numpy(zero_copy_only=False), dtype=bool)
            else:
                new[1:] |= col[1:] != col[:-1]
    starts = np.flatnonzero(new)
    return np.cumsum(new, dtype=np.int64) - 1, starts


@dataclass
class KeyMap:
    """Distinct keys (one array per key column, in code order) and their lookup."""

    names: tuple[str, ...]
    columns: tuple[np.ndarray, ...]
    _index: pd.Index | None = None

    @property
    def identity(self) -> bool:
        return not self.names

    def _lookup(self) -> pd.Index:
        if self._index is None:
            if len(self.columns) == 1:
                self._index = pd.Index(self.columns[0])
            else:
                self._index = pd.MultiIndex.from_arrays(list(self.columns))
        return self._index

    def codes(self, frame: Any) -> np.ndarray:
        """The code of each row's key in ``frame`` (anything indexable by column name)."""
        cols = [_column(frame[name]) for name in self.names]
        index = self._lookup()
        if len(cols) == 1:
            query: Any = pd.Index(cols[0])
            if index.dtype == object and query.dtype != object:
                query = pd.Index(cols[0].astype(object))
        else:
            query = pd.MultiIndex.from_arrays(cols)
        return np.asarray(index.get_indexer(query), dtype=np.int64)

    def decode(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        return {n: c[codes] for n, c in zip(self.names, self.columns, strict=True)}


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def entity_text(values: tuple[Any, ...] | list[Any]) -> str:
    """One entity's key values as the text stored in the databases."""
    import json

    if len(values) == 1:
        return str(_plain(values[0]))
    return json.dumps([_plain(v) for v in values], separators=(",", ":"))


def entity_texts(frame: Any, keys: list[str] | tuple[str, ...]) -> list[str]:
    """``entity_text`` of each row of ``frame``'s key columns."""
    columns = [_column(frame[k]).tolist() for k in keys]
    if len(columns) == 1:
        return [str(_plain(v)) for v in columns[0]]
    return [entity_text(row) for row in zip(*columns, strict=True)]


def entity_frame(texts: Any, kinds: dict[str, str]) -> pd.DataFrame:
    """Typed key columns (int64 for an ``int`` key, text otherwise) from entity texts."""
    import json

    keys = list(kinds)
    values = [str(t) for t in texts]
    rows = [[v] for v in values] if len(keys) == 1 else [json.loads(v) for v in values]
    out = {}
    for j, key in enumerate(keys):
        col = [r[j] for r in rows]
        out[key] = (
            np.asarray([int(v) for v in col], dtype=np.int64)
            if kinds[key] == "int"
            else np.asarray([str(v) for v in col], dtype=object)
        )
    return pd.DataFrame(out)
