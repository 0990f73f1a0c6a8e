"""Write feature rows to the online store, fast, in exactly Feast's format.

Feast's ingestion converts every value of every row to a ValueProto with
``python_values_to_proto_values`` and its SQLite store then runs one INSERT per
(entity, feature): about 20 statements per entity. Here:

- each column's *distinct* values are converted once, with Feast's own
  converter, and the protos are shared by the rows that hold them (a count
  column has a few hundred distinct values for 100k rows);
- for the SQLite online store, the same upsert Feast runs is sent as one
  ``executemany`` in one transaction, with the same bytes in every column.
  Other stores (Redis, ...) get the rows through Feast's ``online_write_batch``.

``tests/test_online_write.py`` checks that the stored rows are byte-identical to
what Feast's own ingestion writes.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["rows_to_write", "write_rows"]


def _column_protos(values: np.ndarray, value_type: Any) -> list:
    """ValueProtos for ``values``, as Feast's converter makes them, one per distinct value."""
    from feast.type_map import python_values_to_proto_values

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) == 0:
        return python_values_to_proto_values(values, value_type)
    distinct = python_values_to_proto_values(np.asarray(uniques, dtype=values.dtype), value_type)
    nulls = np.flatnonzero(codes < 0)
    if len(nulls):
        null_proto = python_values_to_proto_values(values[nulls[:1]], value_type)[0]
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


def _write_sqlite(store: Any, view: Any, rows: list[tuple]) -> None:
    """Feast's SQLite upsert (see SqliteOnlineStore.online_write_batch), as one executemany."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _to_naive_utc, extract_text_and_num
    from feast.infra.online_stores.sqlite import _quote_id, _table_id

    config = store.config
    online = store._get_provider().online_store
    conn = online._get_conn(config)
    table_name = _table_id(
        config.project, view, config.registry.enable_online_feature_view_versioning
    )
    sql = (
        f"INSERT INTO {_quote_id(table_name)} "
        "(entity_key, feature_name, value, value_text, event_ts, created_ts) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
        "value = excluded.value, value_text = excluded.value_text, "
        "event_ts = excluded.event_ts, created_ts = excluded.created_ts;"
    )
    encoded: dict[int, tuple[bytes, str | None]] = {}

    def encode(val: Any) -> tuple[bytes, str | None]:
        hit = encoded.get(id(val))
        if hit is None:
            hit = (val.SerializeToString(), extract_text_and_num(val, False)[0])
            encoded[id(val)] = hit
        return hit

    version = config.entity_key_serialization_version
    adapt = sqlite3.adapters.get((datetime, sqlite3.PrepareProtocol), lambda v: v)
    keyed = sorted(
        (serialize_entity_key(row[0], entity_key_serialization_version=version), row)
        for row in rows
    )  # primary-key order: the B-tree fills from left to right

    def params():
        for key, (_, values, ts, created) in keyed:
            # the value sqlite3 would store for these datetimes, computed once per entity
            ts = adapt(_to_naive_utc(ts))
            created = adapt(_to_naive_utc(created)) if created is not None else None
            for name in sorted(values):
                blob, text = encode(values[name])
                yield (key, name, blob, text, ts, created)

    with conn:
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB for this connection
        conn.executemany(sql, params())


def write_rows(store: Any, view: Any, frame: pd.DataFrame) -> int:
    """Write ``frame`` (keys, timestamp, features of ``view``) to the online store."""
    rows = rows_to_write(view, frame)
    if not rows:
        return 0
    if _sqlite_fast_path_applies(store):
        _write_sqlite(store, view, rows)
    else:
        provider = store._get_provider()
        provider.online_write_batch(store.config, view, rows, progress=None)
    return len(rows)
