"""Daily demand a year ahead, end to end: the example's ``demand`` (string product keys,
365 days) and the payments example's ``merchant_payments`` (7 days) trained against
seasonal naive, forecast into the database, and checked against hand-built rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from framework.common.database import engine_url
from framework.declare.repo import FeatureRepo
from framework.deploy.forecast import predict_forecast
from framework.features.historical import get_historical_features
from framework.models.registry import registry_of
from framework.prepare.apply import apply
from framework.training.run import run_training
from tests.helpers import cli, copy_example_repo, copy_payments_repo

# touches a store, a registry or a database (see conftest); trains models: slow
pytestmark = [pytest.mark.stores, pytest.mark.slow]

AS_OF = pd.Timestamp("2025-12-31T00:00:00Z")


@pytest.fixture(scope="module")
def demand(tmp_path_factory):
    repo = FeatureRepo(
        copy_example_repo(tmp_path_factory.mktemp("fc") / "feature_repo", catalogue=True)
    )
    apply(repo)
    run = run_training(repo, "demand")
    registry_of(repo).promote("demand", run.artifact.version)
    return repo, run


def _rows(url: str, table: str = "forecasts") -> pd.DataFrame:
    engine = sa.create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(f"SELECT * FROM {table}"), conn)
    finally:
        engine.dispose()


def test_the_forecast_beats_seasonal_naive_and_reports_by_horizon(demand):
    _, run = demand
    result, meta = run.result, run.artifact.meta
    assert meta.task == "forecast" and "horizon_days" in meta.features
    assert result.winner.name != "baseline"
    baseline = result.candidates[0]
    assert result.winner.validation["mae"] < baseline.validation["mae"]
    test = result.test
    buckets = [k for k in test if k.startswith("rows[")]
    assert sum(test[k] for k in buckets) == len(result.split.test)
    # MASE is MAE over the seasonal-naive MAE of the training rows: the same scale for all
    assert test["mase"] / test["mae"] == pytest.approx(
        result.baseline_test["mase"] / result.baseline_test["mae"]
    )
    page = (run.artifact.path / "card.html").read_text()
    assert "Forecast by horizon (test)" in page and 'alt="Actual vs forecast"' in page


def test_a_year_ahead_is_written_in_one_run_and_replaced_on_rerun(demand, prediction_db):
    repo, _ = demand
    first = cli(
        repo,
        "predict",
        "demand",
        "--at",
        AS_OF.isoformat(),
        "--horizon",
        "365d",
        "--db",
        prediction_db,
    )
    assert first.exit_code == 0, first.output
    rows = _rows(prediction_db)
    products = pd.read_parquet(repo.data_dir / "products.parquet").product_id
    assert len(rows) == 365 * rows.product_id.nunique() and rows.product_id.isin(products).all()
    per_product = rows.groupby("product_id")
    assert (per_product.horizon_days.apply(lambda h: sorted(h) == list(range(1, 366)))).all()
    one = rows[rows.product_id == rows.product_id.iloc[0]].sort_values("horizon_days")
    dates = pd.to_datetime(one.target_date)
    assert dates.iloc[0] == pd.Timestamp("2026-01-01") and dates.iloc[-1] == pd.Timestamp(
        "2026-12-31"
    )
    assert (rows.entity_id == rows.product_id).all() and (rows.forecast >= -0.5).all()
    # the output says which days were forecast (the rows' own first and last), and that
    # the day beginning at a midnight --at is not among them
    said = f"Target days: {dates.iloc[0].date()} to {dates.iloc[-1].date()} (UTC)"
    assert said in first.output, first.output
    assert "2025-12-31 begins at --at and is not forecast" in first.output
    again = cli(repo, "predict", "demand", "--at", AS_OF.isoformat(), "--db", prediction_db)
    assert again.exit_code == 0 and f"replacing {len(rows):,} rows" in again.output
    assert len(_rows(prediction_db)) == len(rows)
    assert (
        cli(repo, "predict", "churn", "--at", AS_OF.isoformat(), "--horizon", "7d").exit_code == 2
    )
    too_far = cli(repo, "predict", "demand", "--at", AS_OF.isoformat(), "--horizon", "400d")
    assert too_far.exit_code == 1 and "forecasts 1 to 365 days ahead" in too_far.output


def test_a_forecast_row_equals_the_model_on_features_built_by_hand(demand, tmp_path):
    """The oracle: the product's features at T, its purchases counted per day in pandas,
    the target day's calendar from datetime: the model's answer must equal the run's."""
    repo, run = demand
    url = f"sqlite:///{tmp_path / 'p.db'}"
    predict_forecast(repo, "demand", AS_OF, horizon_days=60, db=url)
    rows = _rows(url)
    product = rows.product_id.iloc[0]
    events = pd.read_parquet(repo.data_dir / "product_events.parquet")
    bought = events[(events.product_id == product) & (events.event_type == "purchase")]
    per_day = bought.event_timestamp.dt.floor("D").value_counts()
    fetched = get_historical_features(
        repo, pd.DataFrame({"product_id": [product], "event_timestamp": [AS_OF]}), "demand_model_v1"
    )
    hand = []
    for h in (1, 6, 7, 8, 30, 60):
        target = AS_OF.floor("D") + pd.Timedelta(days=h)
        k = 1
        while target - pd.Timedelta(days=7 * k) > AS_OF - pd.Timedelta(days=1):
            k += 1
        week = float(per_day.get(target - pd.Timedelta(days=7 * k), 0))
        year = float(per_day.get(target - pd.Timedelta(days=364), 0))
        hand.append(
            {
                **fetched.iloc[0].to_dict(),
                "horizon_days": h,
                "target_month": target.month,
                "target_day": target.day,
                "target_day_of_week": target.dayofweek,
                "target_is_weekend": int(target.dayofweek >= 5),
                "naive_week": week,
                "naive_year": year,
            }
        )
    frame = pd.DataFrame(hand)
    from framework.declare.dates import expand_dates

    cal = expand_dates(
        pd.DataFrame({"d": AS_OF.floor("D") + pd.to_timedelta(frame.horizon_days, unit="D")}),
        timestamp_field="d",
        prefix="target_",
    )
    for name in ("target_days_since_holiday", "target_days_until_holiday"):
        frame[name] = cal[name].to_numpy()
    from framework.models.scoring import to_model_frame

    model = run.artifact.load_model()
    expected = model.predict(to_model_frame(frame, run.artifact.meta.features))
    mine = rows[rows.product_id == product].set_index("horizon_days").forecast
    assert np.allclose(mine.loc[frame.horizon_days].to_numpy(), expected, atol=1e-9)
    assert len(set(np.round(expected, 6))) > 1  # the horizons are told apart


@pytest.mark.slow
def test_merchant_payments_forecast_on_the_payments_example(tmp_path):
    """Another domain: payments per merchant per day, 7 days ahead, string keys."""
    path = copy_payments_repo(tmp_path / "feature_repo", cards=80, days=30, seed=5)
    repo = FeatureRepo(path)
    apply(repo)
    run = run_training(repo, "merchant_payments")
    assert run.artifact.meta.entity == "merchant_id" and run.result.test["rows[1-7]"] > 0
    registry_of(repo).promote("merchant_payments", run.artifact.version)
    pay = pd.read_parquet(path / "data" / "payments.parquet")
    at = pay.ts.max().floor("D")
    url = f"sqlite:///{tmp_path / 'p.db'}"
    written = predict_forecast(repo, "merchant_payments", at, db=url)
    rows = _rows(url)
    active = pay[(pay.ts > at - pd.Timedelta(days=7)) & (pay.ts <= at)].merchant_id.nunique()
    assert written.rows == len(rows) == 7 * active
    assert sorted(rows.horizon_days.unique()) == list(range(1, 8))
    # the declared nightly job at 03:00 writes what the command writes at that time
    from framework.schedule.runner import run_at

    tick = at + pd.Timedelta(hours=3)
    scheduled = run_at(repo, "forecast_merchants", tick, db=f"sqlite:///{tmp_path / 'j.db'}")
    assert scheduled.status == "succeeded" and scheduled.scheduled_for == tick
    predict_forecast(repo, "merchant_payments", tick, horizon_days=7, db=url)
    columns = ["merchant_id", "target_date", "horizon_days", "forecast"]
    by_job = _rows(f"sqlite:///{tmp_path / 'j.db'}")[columns].sort_values(columns[:2])
    by_hand = _rows(url)
    by_hand = by_hand[pd.to_datetime(by_hand.as_of, utc=True) == tick][columns]
    assert len(by_job) == scheduled.produced["rows"] > 0
    pd.testing.assert_frame_equal(
        by_job.reset_index(drop=True), by_hand.sort_values(columns[:2]).reset_index(drop=True)
    )


def test_rows_of_one_entity_read_its_views_in_a_repo_of_two(demand):
    """Without a feature service, rows keyed by user read the user views, rows keyed by
    product the product views (and the key-less date expansions either way)."""
    repo, _ = demand
    at = pd.Timestamp("2025-06-01T00:00:00Z")
    users = get_historical_features(repo, pd.DataFrame({"user_id": [1, 2], "event_timestamp": at}))
    assert "user_events_count_7d" in users and "event_day" in users
    assert "product_units_count_7d" not in users
    products = get_historical_features(
        repo, pd.DataFrame({"product_id": ["sku_0001"], "event_timestamp": at})
    )
    assert "product_units_count_7d" in products and "category" in products
    assert "user_events_count_7d" not in products
    online = cli(repo, "features", "online", "--entity", "product_id=sku_0001", "--json")
    assert online.exit_code == 0 and "product_units_count_28d" in online.output


def test_assess_a_forecast(demand):
    repo, _ = demand
    result = cli(repo, "assess", "demand", "--json")
    assert result.exit_code == 0, result.output
    import json

    out = json.loads(result.output)
    assert out["task"] == "forecast" and out["label"]["zero_share"] < 1
    assert out["learning_curve"]["metric"] == "mase" and len(out["learning_curve"]["points"]) == 4
    features = {f["feature"] for f in out["features"]}
    assert {"naive_week", "horizon_days", "product_units_count_28d"} <= features


def test_an_experiment_reads_outcomes_from_its_problems_source_in_a_repo_of_two(demand):
    from framework.monitor.experiment_report import _problem_source

    repo, _ = demand
    assert sorted(repo.event_sources) == ["events_source", "product_events_source"]
    assert _problem_source(repo, repo.problem("churn")) == "events_source"
    assert _problem_source(repo, repo.problem("demand")) == "product_events_source"


def test_the_retrain_gate_judges_a_forecast_champion_on_the_same_rows(demand):
    """Champion and challenger are trained on the same data: the same test MASE, kept."""
    from framework.monitor.retrain import retrain

    repo, run = demand
    decision = retrain(repo, "demand")
    assert decision.champion == run.artifact.version and decision.metric == "mase"
    assert decision.champion_score == pytest.approx(run.result.test["mase"], rel=1e-9)
    assert decision.challenger_score == pytest.approx(decision.champion_score, rel=1e-6)
    assert not decision.promoted


def test_the_service_refuses_a_forecast_with_a_4xx_naming_the_problem(demand):
    import requests

    from framework.deploy.service import create_app
    from tests.helpers import serve_app

    repo, _ = demand
    server, thread, url = serve_app(create_app(repo))
    try:
        answer = requests.post(
            f"{url}/predict",
            json={"problem": "demand", "entities": [{"product_id": "sku_0001"}]},
            timeout=30,
        )
        assert answer.status_code == 422, answer.text
        assert "problem" in answer.text
        schemas = requests.get(f"{url}/openapi.json", timeout=30).json()["components"]["schemas"]
        assert not any(name.startswith("Demand") for name in schemas)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
