"""Window tables built on Spark are identical to the DuckDB build (same rows, same bits).

A second domain (sensor readings, the declarations of tests/features/test_online_exact.py):
an int key, a string key and a composite key; every aggregate function (filtered counts,
sums, means, min/max of floats and strings, distinct counts, last with ties in time);
second, minute, hour, day and lifetime windows. Logs are drawn at random with repeated
instants, nulls and a few heavy entities, as one parquet file or as a hive-partitioned
directory of several files. Spark runs in local[2] with small chunks, so entities are
cut across Arrow batches and carried over.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.features.test_online_exact import REPO_PY, SCHEMA, START
from tests.helpers import EXAMPLE_REPO, set_project, spark_yaml

pytestmark = pytest.mark.usefixtures("spark_runtime")


def _log(seed: int, n: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    heavy = rng.random(n) < 0.3  # a few entities hold many events
    site = np.where(heavy, 1, rng.integers(2, 40, n))
    sensor = np.where(heavy, "s0", np.array([f"s{i}" for i in rng.integers(1, 15, n)]))
    seconds = np.sort(rng.integers(0, 3 * 86_400, n))
    seconds[rng.random(n) < 0.2] = seconds[0] + 600  # the same instant, many times
    kinds = np.array(["ok", "alarm", "warn"])[rng.integers(0, 3, n)]
    value = np.round(rng.normal(10, 5, n), 3)
    value_null = rng.random(n) < 0.1
    level = rng.integers(-5, 50, n)
    frame = pd.DataFrame(
        {
            "site_id": site.astype("int64"),
            "sensor": sensor,
            "ts": START + pd.to_timedelta(seconds, unit="s"),
            "kind": kinds,
            "value": np.where(value_null, np.nan, value),
            "level": level.astype("int64"),
        }
    ).sample(frac=1.0, random_state=seed)  # log order is not time order
    return pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)


def _write(dest: Path, table: pa.Table, directory: bool) -> None:
    (dest / "data").mkdir(parents=True)
    text = set_project((EXAMPLE_REPO / "feature_store.yaml").read_text())
    (dest / "feature_store.yaml").write_text(text)
    target = dest / "data" / "readings.parquet"
    if not directory:
        pq.write_table(table, target)
    else:  # a partitioned log: one folder per part, several files in each
        parts = np.array_split(np.arange(table.num_rows), 5)
        for j, rows in enumerate(parts):
            folder = target / f"part={j % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.take(pa.array(rows)).drop_columns([]), folder / f"f{j}.parquet")
    (dest / "repo.py").write_text(REPO_PY)


def _sorted(path: str, spec) -> pd.DataFrame:
    frame = pq.read_table(path).to_pandas()
    by = [*spec.entity_keys, spec.timestamp_field]
    return frame.sort_values(by, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize(
    ("seed", "n", "directory"), [(0, 3000, False), (1, 2500, True), (2, 400, True)]
)
def test_spark_build_equals_duckdb_build(tmp_path, seed, n, directory):
    from framework.common.spark import spark_session
    from framework.declare.repo import FeatureRepo
    from framework.prepare.window_tables import build_window_table
    from framework.prepare.window_tables_spark import build_window_table_spark

    path = tmp_path / "repo"
    _write(path, _log(seed, n), directory)
    repo = FeatureRepo(path, spark_yaml(path))
    session = spark_session(repo.store.config)
    specs = repo.declared_window_specs
    assert {len(s.entity_keys) for s in specs} == {1, 2}
    assert {s.key_kinds[k] for s in specs for k in s.entity_keys} == {"int", "string"}
    for spec in specs:
        a = build_window_table(spec, out_path=tmp_path / f"{spec.name}.duckdb.parquet")
        b = build_window_table_spark(
            spec, session, out_path=tmp_path / f"{spec.name}.spark", chunk_events=97, partitions=3
        )
        assert (a.rows, a.events, a.entities) == (b.rows, b.events, b.entities)
        assert a.events == n
        left, right = _sorted(a.path, spec), _sorted(b.path, spec)
        assert list(left.columns) == list(right.columns)
        # exact: same rows, same bits (NaN only where both are NaN)
        pd.testing.assert_frame_equal(left, right, check_exact=True)
        if spec.name == "site_readings":  # the comparison sees a one-ulp change
            bumped = right.copy()
            col = "site_value_sum_lifetime"
            bumped.loc[5, col] = np.nextafter(bumped.loc[5, col], np.inf)
            with pytest.raises(AssertionError):
                pd.testing.assert_frame_equal(left, bumped, check_exact=True)


def test_entity_chunks_hold_whole_entities_and_every_row_once():
    from framework.prepare.window_tables_spark import FILE, ROW, entity_chunks

    rng = np.random.default_rng(4)
    keys = np.sort(rng.integers(0, 30, 2000))
    keys[500:900] = 7  # one entity larger than a chunk
    keys = np.sort(keys)
    table = pa.table(
        {
            "k": keys,
            "t": np.arange(len(keys)),
            FILE: ["f"] * len(keys),
            ROW: np.arange(len(keys)),
        }
    )
    batches = table.to_batches(max_chunksize=37)
    chunks = list(entity_chunks(iter(batches), ("k",), 100))
    seen = np.concatenate([c.column("k").to_numpy() for c in chunks])
    np.testing.assert_array_equal(seen, keys)  # every row once, in order
    order = np.concatenate([c.column("file_row_number").to_numpy() for c in chunks])
    np.testing.assert_array_equal(order, np.arange(len(keys)))
    owner: dict[int, int] = {}
    for j, chunk in enumerate(chunks):
        for k in set(chunk.column("k").to_pylist()):
            assert owner.setdefault(k, j) == j, f"entity {k} is cut across chunks"
        biggest = max(np.unique(chunk.column("k").to_numpy(), return_counts=True)[1])
        assert chunk.num_rows <= 100 + biggest + 37  # bounded by a chunk plus an entity
    assert len(chunks) > 5
