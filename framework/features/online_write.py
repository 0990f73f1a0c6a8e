"""Write feature rows to the online store, fast, in exactly Feast's format.

Feast's ingestion converts every value of every row to a ValueProto with
``python_values_to_proto_values`` and its SQLite store then runs one INSERT per
(entity, feature): about 20 statements per entity. Here:

- each column's *distinct* values are converted once, with Feast's own
  converter, and the protos are shared by the rows that hold them (a count
  column has a few hundred distinct values for 100k rows);
- for the SQLite online store, the same upsert Feast runs is sent with 166 rows
  per statement, in primary-key order, one transaction per batch, on a writer
  thread of its own (sqlite3 releases the GIL while it works, so the next batch
  is prepared meanwhile), with the same bytes in every column. Other stores
  (Redis, ...) get the rows through Feast's ``online_write_batch``, which keeps
  their own rules (Redis skips rows older than what it holds).

``tests/test_online_write.py`` checks that the stored rows are byte-identical to
what Feast's own ingestion writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "SqliteWriter",
    "in_key_order",
    "prepare_sqlite",
    "rows_to_write",
    "uses_sqlite_fast_path",
    "write_rows",
]


def _column_protos(values: np.ndarray, value_type: Any) -> list:
    """ValueProtos for ``values``, as Feast's converter makes them, one per distinct value."""
    from feast.type_map import python_values_to_proto_values

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) == 0:
        return python_values_to_proto_values(values, value_type)  # type: ignore[arg-type]
    distinct = python_values_to_proto_values(  # Feast's hint says list; arrays work too
        np.asarray(uniques, dtype=values.dtype),  # type: ignore[arg-type]
        value_type,
    )
    nulls = np.flatnonzero(codes < 0)
    if len(nulls):
        null_proto = python_values_to_proto_values(values[nulls[:1]], value_type)[0]  # type: ignore[arg-type]
        distinct = [*distinct, null_proto]  # code -1 picks the last item
    return [distinct[c] for c in codes.tolist()]


def rows_to_write(view: Any, frame: pd.DataFrame) -> list[tuple]:
    """The (entity key, {feature: value}, event ts, created ts) rows Feast's ingestion would make."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.utils import _coerce_datetime

    table = pa.Table.from_pandas(frame, preserve_index=False)
    batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
    if batch is None:
        return []
    join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    key_protos = {
        k: _column_protos(batch.column(k).to_numpy(zero_copy_only=False), t)
        for k, t in join_keys.items()
    }
    names = [f.name for f in view.features]
    columns = [
        _column_protos(batch.column(f.name).to_numpy(zero_copy_only=False), f.dtype.to_value_type())
        for f in view.features
    ]
    keys = list(join_keys)
    entity_keys = [
        EntityKeyProto(join_keys=keys, entity_values=[key_protos[k][i] for k in keys])
        for i in range(batch.num_rows)
    ]
    stamps = pd.to_datetime(
        batch.column(view.batch_source.timestamp_field).to_numpy(zero_copy_only=False)
    )
    event_ts = [_coerce_datetime(v) for v in stamps]
    features = [dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)]
    return list(zip(entity_keys, features, event_ts, [None] * len(event_ts), strict=True))


def _sqlite_fast_path_applies(store: Any) -> bool:
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    online = store._get_provider().online_store
    cfg = store.config.online_store
    return (
        type(online) is SqliteOnlineStore
        and not getattr(cfg, "vector_enabled", False)
        and not getattr(cfg, "enable_openai_compatible_store", False)
    )


def _entity_keys(batch: pa.RecordBatch, view: Any, version: int) -> list[bytes]:
    """Feast's serialized entity keys, one per row.

    For a single int64 join key the serialization is a fixed header followed by
    the value's 8 bytes: the header is taken from Feast's own serialization of
    the first key and checked on the last one; anything else goes through Feast.
    """
    import struct

    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto

    join = [(e.name, e.dtype.to_value_type()) for e in view.entity_columns]
    names = [k for k, _ in join]

    def feast_key(values: Iterable[Any]) -> bytes:
        proto = EntityKeyProto(join_keys=names, entity_values=list(values))
        return serialize_entity_key(proto, entity_key_serialization_version=version)

    raw = [batch.column(k).to_numpy(zero_copy_only=False) for k, _ in join]
    protos = [_column_protos(col, t) for col, (_, t) in zip(raw, join, strict=True)]
    if len(join) == 1 and raw[0].dtype == np.int64 and len(raw[0]):
        first, last = feast_key([protos[0][0]]), feast_key([protos[0][-1]])
        header = first[:-8]
        if first == header + struct.pack("<q", raw[0][0]) and last == header + struct.pack(
            "<q", raw[0][-1]
        ):
            body = raw[0].astype("<i8").tobytes()
            return [header + body[i : i + 8] for i in range(0, len(body), 8)]
    return [feast_key(vals) for vals in zip(*protos, strict=True)]


def prepare_sqlite(store: Any, view: Any, frame: pd.DataFrame) -> tuple[str, list[tuple]]:
    """The table and parameter rows of Feast's SQLite upsert (``online_write_batch``).

    Each distinct value is encoded once, and the rows come in primary-key order.
    """
    from feast.infra.online_stores.helpers import _to_naive_utc, extract_text_and_num
    from feast.infra.online_stores.sqlite import _table_id
    from feast.utils import _coerce_datetime

    config = store.config
    table_name = _table_id(
        config.project, view, config.registry.enable_online_feature_view_versioning
    )
    batch = pa.Table.from_pandas(frame, preserve_index=False).combine_chunks().to_batches()[0]
    keys = _entity_keys(batch, view, config.entity_key_serialization_version)
    adapt = sqlite3.adapters.get((datetime, sqlite3.PrepareProtocol), lambda v: v)
    stamps = pd.to_datetime(
        batch.column(view.batch_source.timestamp_field).to_numpy(zero_copy_only=False)
    )
    event_ts = [adapt(_to_naive_utc(_coerce_datetime(v))) for v in stamps]
    columns = {}
    for f in sorted(view.features, key=lambda f: f.name):
        protos = _column_protos(
            batch.column(f.name).to_numpy(zero_copy_only=False), f.dtype.to_value_type()
        )
        encoded = {
            id(p): (p.SerializeToString(), extract_text_and_num(p, False)[0])
            for p in {id(p): p for p in protos}.values()
        }
        columns[f.name] = [encoded[id(p)] for p in protos]
    order = sorted(range(len(keys)), key=keys.__getitem__)  # primary-key order
    params = [
        (keys[i], name, *col[i], event_ts[i], None) for i in order for name, col in columns.items()
    ]
    return table_name, params


_ROWS_PER_STATEMENT = 166  # 996 parameters: under SQLite's default limit of 999


def _upsert_sql(table_name: str, rows: int) -> str:
    from feast.infra.online_stores.sqlite import _quote_id

    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO {_quote_id(table_name)} "
        f"(entity_key, feature_name, value, value_text, event_ts, created_ts) VALUES {values} "
        "ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
        "value = excluded.value, value_text = excluded.value_text, "
        "event_ts = excluded.event_ts, created_ts = excluded.created_ts;"
    )


def _execute_upserts(conn: sqlite3.Connection, table_name: str, params: list[tuple]) -> None:
    """Feast's upsert for ``params``, 166 rows per statement (fewer statement steps)."""
    n = _ROWS_PER_STATEMENT
    full = len(params) - len(params) % n
    if full:
        flat = [tuple(v for row in params[i : i + n] for v in row) for i in range(0, full, n)]
        conn.executemany(_upsert_sql(table_name, n), flat)
    if full < len(params):
        conn.executemany(_upsert_sql(table_name, 1), params[full:])


def in_key_order(view: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted as SQLite will index it: by the bytes of the serialized entity key.

    The serialized int64 key ends with the value's little-endian bytes; their
    lexicographic order is the order of the same 8 bytes read as a big-endian
    unsigned integer. Batches written in this order append to the B-tree.
    """
    cols = [e.name for e in view.entity_columns]
    if len(cols) != 1 or frame[cols[0]].dtype != np.int64:
        return frame
    order = np.argsort(frame[cols[0]].to_numpy().astype("<i8").view(">u8"), kind="stable")
    return frame.iloc[order]


class SqliteWriter:
    """Runs the upserts on a thread of its own, with its own connection.

    sqlite3 releases the GIL while it steps a statement, so the caller prepares
    the next batch while this one is written. Each batch is one transaction.
    ``close`` waits for the queue and re-raises the first error.
    """

    def __init__(self, store: Any) -> None:
        import queue
        import threading

        online = store._get_provider().online_store
        self.path = online._get_db_path(store.config)
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=60)
        try:
            conn.execute("PRAGMA cache_size = -262144")  # 256 MiB for this connection
            while (item := self.queue.get()) is not None:
                if self.error is None:
                    try:
                        with conn:
                            _execute_upserts(conn, *item)
                    except BaseException as exc:
                        self.error = exc
        finally:
            conn.close()

    def write(self, table_name: str, params: list[tuple]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((table_name, params))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def uses_sqlite_fast_path(store: Any, view: Any) -> bool:
    return _sqlite_fast_path_applies(store) and not view.batch_source.created_timestamp_column


def write_rows(store: Any, view: Any, frame: pd.DataFrame) -> int:
    """Write ``frame`` (keys, timestamp, features of ``view``) to the online store."""
    if len(frame) == 0:
        return 0
    if uses_sqlite_fast_path(store, view):
        writer = SqliteWriter(store)
        try:
            writer.write(*prepare_sqlite(store, view, frame))
        finally:
            writer.close()
        return len(frame)
    rows = rows_to_write(view, frame)
    store._get_provider().online_write_batch(store.config, view, rows, progress=None)
    return len(rows)
