"""The Spark profile gives the single-machine answers, on a second domain (card payments:
string keys, a composite card x merchant key, sums, means, max, last, distinct counts,
lifetime windows).

Two copies of the same repo and data: one on the test profile (DuckDB, and SQLite or
Redis/PostgreSQL), one on Spark (Feast's Spark offline store and engine, local[2], with
the same online store and registry kind). Each command runs on both and the answers
are compared exactly: window tables, historical features, training sets, online values
after materialization (ours and stock Feast's), and batch scores in the database and in
a parquet output.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from tests.helpers import cli, copy_payments_repo, spark_yaml

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("spark_runtime")]


@pytest.fixture(scope="module")
def twins(tmp_path_factory, spark_runtime):
    from framework.declare.repo import FeatureRepo
    from framework.models.registry import registry_of
    from framework.prepare.apply import apply
    from framework.training.run import run_training

    root = tmp_path_factory.mktemp("spark")
    one = copy_payments_repo(root / "single" / "feature_repo", cards=80, days=30, seed=5)
    two = copy_payments_repo(root / "spark" / "feature_repo", cards=80, days=30, seed=5)
    for name in ("payments.parquet", "chargebacks.parquet", "payment_reviews.parquet"):
        a, b = pq.read_table(one / "data" / name), pq.read_table(two / "data" / name)
        assert a.equals(b), name  # the same data in both
    single = FeatureRepo(one)
    spark = FeatureRepo(two, spark_yaml(two))
    assert spark.spark and not single.spark
    apply(single)
    apply(spark)
    for name in ("dispute", "payment_review"):  # one model, used by both
        version = run_training(single, name).artifact.version
        registry_of(single).promote(name, version)
    shutil.copytree(one / "data" / "models", two / "data" / "models")
    events = pd.read_parquet(one / "data" / "payments.parquet")
    return single, spark, events


def _by_keys(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def test_window_tables_are_identical(twins):
    single, spark, _ = twins
    specs = single.declared_window_specs
    assert {len(s.entity_keys) for s in specs} == {1, 2}
    for spec in specs:
        keys = [*spec.entity_keys, spec.timestamp_field]
        a = _by_keys(pq.read_table(spec.table_path).to_pandas(), keys)
        other = next(s for s in spark.declared_window_specs if s.name == spec.name)
        b = _by_keys(pq.read_table(other.table_path).to_pandas(), keys)
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_historical_features_and_training_sets_are_identical(twins):
    from framework.features.historical import get_historical_features
    from framework.training.dataset import build_training_set

    single, spark, events = twins
    rng = np.random.default_rng(7)
    rows = events.sample(250, random_state=3)[["card_id", "merchant_id", "ts"]]
    shift = pd.to_timedelta(rng.integers(-86_400, 86_400, len(rows)), unit="s")
    rows = rows.assign(event_timestamp=rows.pop("ts") + shift).reset_index(drop=True)
    for service in ("fraud_v1", "dispute_v1"):
        a = get_historical_features(single, rows, service)
        b = get_historical_features(spark, rows, service)
        assert a.shape[1] > 30
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    a = build_training_set(single, "payment_review")
    b = build_training_set(spark, "payment_review")
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True)
    assert a.hash == b.hash


def test_materialized_online_values_are_identical(twins):
    from framework.features.materialize import materialize
    from framework.features.online import get_online_features

    single, spark, events = twins
    end = events.ts.max() - pd.Timedelta(hours=6)
    a = materialize(single, end=end)
    b = materialize(spark, end=end)
    assert a.rows == b.rows and a.states == b.states
    assert min(a.rows.values()) > 0
    pairs = events[["card_id", "merchant_id"]].drop_duplicates().head(60)
    for service in ("fraud_v1", "dispute_v1"):
        for at in (end, end + pd.Timedelta(hours=5)):
            rows = pairs.assign(event_timestamp=at).to_dict("records")
            x = get_online_features(single, rows, service)
            y = get_online_features(spark, rows, service)
            pd.testing.assert_frame_equal(x, y, check_exact=True)
        plain = [{"card_id": r["card_id"], "merchant_id": r["merchant_id"]} for r in rows]
        if service == "dispute_v1":
            plain = [{"card_id": r["card_id"]} for r in plain]
        fs = single.store.get_feature_service(service)
        x = single.store.get_online_features(features=fs, entity_rows=plain).to_df()
        y = spark.store.get_online_features(features=fs, entity_rows=plain).to_df()
        pd.testing.assert_frame_equal(x, y, check_exact=True)  # stock Feast reads agree


def _run(db: str, problem: str) -> pd.DataFrame:
    engine = sa.create_engine(db)
    try:
        frame = pd.read_sql(
            sa.text("SELECT * FROM predictions WHERE problem = :p ORDER BY entity_id"),
            engine,
            params={"p": problem},
        )
    finally:
        engine.dispose()
    return frame.drop(columns=["run_id", "created_at"]).reset_index(drop=True)


def test_batch_scores_are_identical_in_the_database_and_in_parquet(twins, tmp_path):
    from framework.deploy.batch import predict_batch

    single, spark, events = twins
    at = events.ts.max() - pd.Timedelta(days=1)
    a_db, b_db = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    for problem in ("dispute", "payment_review"):
        a = predict_batch(single, problem, at, db=a_db)
        b = predict_batch(spark, problem, at, db=b_db)
        assert a.rows == b.rows > 0
        left, right = _run(a_db, problem), _run(b_db, problem)
        pd.testing.assert_frame_equal(left, right, check_exact=True)
        again = predict_batch(spark, problem, at, db=b_db)  # a rerun replaces the run
        assert again.replaced == b.rows
        assert len(_run(b_db, problem)) == b.rows
        out = predict_batch(spark, problem, at, output=tmp_path / "scores")
        assert out.rows == a.rows and out.replaced == 0
        parquet = pd.read_parquet(tmp_path / "scores" / f"problem={problem}")
        parquet = parquet.sort_values("entity_id").reset_index(drop=True)
        np.testing.assert_array_equal(parquet.score.to_numpy(), left.score.to_numpy())
        assert parquet.entity_id.tolist() == left.entity_id.tolist()
        assert set(parquet.run_id) == {out.run_id}
        rerun = predict_batch(spark, problem, at, output=tmp_path / "scores")
        assert rerun.replaced == out.rows  # the folder of the run is replaced whole


def test_cli_runs_the_same_commands_on_spark(twins, tmp_path):
    _, spark, events = twins
    at = (events.ts.max() - pd.Timedelta(days=2)).isoformat()
    yaml = str(spark.fs_yaml)
    out = tmp_path / "scores"
    result = cli(spark, "--fs-yaml", yaml, "predict", "dispute", "--at", at, "--out", out)
    assert result.exit_code == 0, result.output
    assert "Wrote 80 predictions of dispute v1" in result.output
    assert pq.read_table(out).num_rows == 80
    result = cli(spark, "--fs-yaml", yaml, "materialize", "--to", at)
    assert result.exit_code == 0, result.output


def test_bad_events_are_refused_on_the_executors_with_the_contract_error(twins, tmp_path):
    from framework.errors import DataError
    from framework.prepare.checks_spark import check_source_spark

    _, spark, events = twins
    source = spark.event_source("payments")
    broken = events.copy()
    broken.loc[17, "card_id"] = None
    broken.loc[30, "amount"] = -5.0
    path = tmp_path / "payments.parquet"
    broken.to_parquet(path)
    with pytest.raises(DataError, match=r"card_id is missing: 1 row") as caught:
        check_source_spark(spark, dataclasses.replace(source, path=str(path)))
    assert "amount below" in str(caught.value)
    events.to_parquet(path)  # and the clean log passes
    contract = check_source_spark(spark, dataclasses.replace(source, path=str(path)))
    assert contract.columns and "amount" in contract.columns


def test_a_parquet_output_needs_the_spark_profile(twins, tmp_path):
    from framework.deploy.batch import predict_batch
    from framework.errors import ConfigError

    single, _, events = twins
    with pytest.raises(ConfigError, match="Spark profile"):
        predict_batch(single, "dispute", events.ts.max(), output=tmp_path / "x")


def test_the_example_repos_spark_profile_gives_the_same_features(tmp_path):
    """feature_repo/feature_store.spark.yaml, as shipped: apply, historical retrieval and
    materialization on Spark equal the embedded profile's on the same data."""
    from framework.declare.repo import FeatureRepo
    from framework.features.historical import get_historical_features
    from framework.features.materialize import materialize
    from framework.features.online import get_online_features
    from framework.prepare.apply import apply
    from tests.helpers import EXAMPLE_REPO, copy_example_repo, set_project

    one = copy_example_repo(tmp_path / "single" / "feature_repo", users=150, seed=11)
    two = copy_example_repo(tmp_path / "spark" / "feature_repo", users=150, seed=11)
    shipped = (EXAMPLE_REPO / "feature_store.spark.yaml").read_text()
    assert "type: spark" in shipped and "type: spark.engine" in shipped
    (two / "feature_store.spark.yaml").write_text(set_project(shipped))
    single, spark = FeatureRepo(one), FeatureRepo(two, two / "feature_store.spark.yaml")
    apply(single)
    apply(spark)
    events = pd.read_parquet(one / "data" / "events.parquet")
    rows = events.sample(200, random_state=2)[["user_id", "event_timestamp"]]
    rows = rows.assign(event_timestamp=rows.event_timestamp + pd.Timedelta(hours=3))
    a = get_historical_features(single, rows, "churn_model_v1")
    b = get_historical_features(spark, rows, "churn_model_v1")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    end = events.event_timestamp.max()
    assert materialize(single, end=end).rows == materialize(spark, end=end).rows
    users = [{"user_id": int(u), "event_timestamp": end} for u in events.user_id.unique()[:40]]
    pd.testing.assert_frame_equal(
        get_online_features(single, users, "churn_model_v1"),
        get_online_features(spark, users, "churn_model_v1"),
        check_exact=True,
    )
