"""Our online writer stores exactly what Feast's own ingestion stores."""

from __future__ import annotations

import sqlite3

import pandas as pd

from framework.features.materialize import latest_rows
from framework.features.online_write import rows_to_write, write_rows
from tests.helpers import clone_repo, sqlite_yaml

T = pd.Timestamp("2025-08-01T00:00:00Z")


def _dump(db, table):
    con = sqlite3.connect(db)
    try:
        return sorted(
            con.execute(
                f'SELECT entity_key, feature_name, value, value_text, event_ts, created_ts FROM "{table}"'
            ).fetchall()
        )
    finally:
        con.close()


def test_rows_match_feasts_conversion(applied_repo):
    from feast.infra.passthrough_provider import PassthroughProvider

    for view in applied_repo.feature_views:
        frame = latest_rows(view, None, T.to_pydatetime())
        ours = rows_to_write(view, frame)
        theirs = PassthroughProvider._prep_rows_to_write_for_ingestion(view, frame)
        assert len(ours) == len(theirs) > 0
        for a, b in zip(ours, theirs, strict=True):
            assert a[0] == b[0] and a[2] == b[2] and a[3] == b[3]
            assert {k: v.SerializeToString() for k, v in a[1].items()} == {
                k: v.SerializeToString() for k, v in b[1].items()
            }


def _table(repo, view) -> str:
    return f"{repo.store.config.project}_{view.name}"


def test_sqlite_rows_are_byte_identical_to_feasts_writer(applied_repo, tmp_path):
    ours, feast = (
        clone_repo(applied_repo, tmp_path / name, fs_yaml=sqlite_yaml) for name in ("ours", "feast")
    )
    for view in ours.feature_views:
        frame = latest_rows(view, None, T.to_pydatetime())
        frame.loc[frame.index[:3], frame.columns[-1]] = None  # nulls take the same path too
        write_rows(ours.store, view, frame)
        feast.store._get_provider().ingest_df(view, frame)
        a = _dump(ours.path / "data" / "online_store.db", _table(ours, view))
        b = _dump(feast.path / "data" / "online_store.db", _table(feast, view))
        assert len(a) == len(frame) * len(view.features)
        assert a == b
    # and a second write (an upsert over existing rows) stays identical
    view = ours.feature_views[0]
    frame = latest_rows(view, None, (T + pd.Timedelta(days=20)).to_pydatetime())
    write_rows(ours.store, view, frame)
    feast.store._get_provider().ingest_df(view, frame)
    assert _dump(ours.path / "data" / "online_store.db", _table(ours, view)) == _dump(
        feast.path / "data" / "online_store.db", _table(feast, view)
    )


def test_key_order_is_the_byte_order_of_feasts_serialized_keys(applied_repo):
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from framework.features.online_write import in_key_order

    view = next(v for v in applied_repo.feature_views if v.name == "user_activity")
    ids = [1, 255, 256, 65536, -1, 2**40 + 7, 0, 17]
    frame = pd.DataFrame({"user_id": pd.array(ids, dtype="int64")})
    ordered = in_key_order(view, frame).user_id.tolist()
    keys = {
        i: serialize_entity_key(
            EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=i)]), 3
        )
        for i in ids
    }
    assert ordered == sorted(ids, key=keys.__getitem__)
