"""The example's declared jobs on its trained models: daily batch predictions with
catch-up, a 30-day backfill against 30 plain batch runs, and what the service shows
(``/ui/jobs`` in headless Chromium, ``/metrics``)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import requests
import sqlalchemy as sa

from framework.common.database import engine_url
from framework.deploy.batch import predict_batch
from framework.schedule.job_runs import RunStore
from framework.schedule.runner import backfill, run_due
from tests.deploy.test_ui import _chromium, _screenshot
from tests.helpers import T, cli, scrape


def day(n: int, hour: int = 6, minute: int = 0) -> datetime:
    """Day n of the September before the served time T (2025-09-17)."""
    return datetime(2025, 8, 1, hour, minute, tzinfo=UTC) + timedelta(days=n - 1)


def predictions(db: str) -> pd.DataFrame:
    engine = sa.create_engine(engine_url(db))
    try:
        with engine.connect() as conn:
            frame = pd.read_sql(sa.text("SELECT * FROM predictions"), conn)
    finally:
        engine.dispose()
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
    return frame


def runs(db: str, job: str) -> list:
    store = RunStore(db)
    try:
        return sorted(store.runs(job, limit=None), key=lambda r: r.scheduled_for)
    finally:
        store.close()


def test_a_daily_prediction_with_catch_up_writes_one_run_per_day(trained_copy, prediction_db):
    repo = trained_copy
    first = run_due(repo, day(1, 6, 10), db=prediction_db, only="predict_churn")
    assert [(r.job, r.status) for r in first] == [
        ("materialize", "succeeded"),
        ("predict_churn", "succeeded"),
    ]
    # no scheduler on day 2; on day 3 the missed day is scored as of its own 06:00
    later = run_due(repo, day(3, 6, 10), db=prediction_db, only="predict_churn")
    assert [(r.job, r.scheduled_for, r.trigger, r.status) for r in later] == [
        ("materialize", day(2), "catch_up", "succeeded"),
        ("predict_churn", day(2), "catch_up", "succeeded"),
        ("materialize", day(3), "schedule", "succeeded"),
        ("predict_churn", day(3), "schedule", "succeeded"),
    ]
    assert run_due(repo, day(3, 23), db=prediction_db, only="predict_churn") == []
    frame = predictions(prediction_db)
    per_day = frame.groupby("as_of").run_id.nunique()
    assert per_day.to_dict() == {pd.Timestamp(day(n)): 1 for n in (1, 2, 3)}
    for record in runs(prediction_db, "predict_churn"):  # what each run made is recorded
        rows = frame[frame.run_id == record.produced["run_id"]]
        assert len(rows) == record.produced["rows"] > 0
        assert set(rows.as_of) == {pd.Timestamp(record.scheduled_for)}
    # its upstream job loaded the online store once per tick, first
    loads = runs(prediction_db, "materialize")
    assert [(r.scheduled_for, r.status) for r in loads] == [
        (day(n), "succeeded") for n in (1, 2, 3)
    ]
    assert all(
        load.ended_at <= score.started_at
        for load, score in zip(loads, runs(prediction_db, "predict_churn"), strict=True)
    )


@pytest.mark.slow  # over 8 s: left out of the fast subset
def test_a_30_day_backfill_equals_30_single_batch_runs(trained_copy, prediction_db, tmp_path):
    repo = trained_copy
    filled = backfill(repo, "predict_churn", day(1, 0), day(30, 23), db=prediction_db)
    assert len(filled) == 30 and {r.status for r in filled} == {"succeeded"}
    single_db = f"sqlite:///{tmp_path / 'single.db'}"
    for n in range(1, 31):
        predict_batch(repo, "churn", day(n), db=single_db)
    keys = ["as_of", "user_id"]
    columns = [*keys, "model_version", "score", "label"]
    a = predictions(prediction_db)[columns].sort_values(keys).reset_index(drop=True)
    b = predictions(single_db)[columns].sort_values(keys).reset_index(drop=True)
    assert a["as_of"].nunique() == 30 and len(a) > 30
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    # again over three days: those runs are replaced, nothing is duplicated
    again = backfill(repo, "predict_churn", day(10, 0), day(12, 23), db=prediction_db)
    assert [r.produced["replaced"] for r in again] == [
        len(a[a.as_of == pd.Timestamp(day(n))]) for n in (10, 11, 12)
    ]
    after = predictions(prediction_db)
    assert len(after) == len(a) and after.groupby("as_of").run_id.nunique().max() == 1
    assert len(runs(prediction_db, "predict_churn")) == 30


def test_the_service_shows_the_jobs_and_their_last_success(served, tmp_path):
    repo, url = served
    done = run_due(repo, day(1, 6, 5), only="monitor_churn")  # the service's own database
    assert [(r.job, r.status) for r in done] == [
        ("materialize", "succeeded"),
        ("predict_churn", "succeeded"),
        ("monitor_churn", "succeeded"),
    ], done
    monitor = done[-1]
    page = requests.get(f"{url}/ui/jobs", timeout=30)
    assert page.status_code == 200
    for name in repo.jobs:
        assert f"<td style='text-align:left'>{name}</td>" in page.text
    report = monitor.produced["report"]
    assert f"href='/ui/reports/{report}'" in page.text
    assert requests.get(f"{url}/ui/reports/{report}", timeout=30).status_code == 200
    assert page.text.count("class='run succeeded'") == 3  # materialize, predict, monitor
    assert "href='/ui/jobs'" in requests.get(f"{url}/ui", timeout=30).text
    metrics = scrape(url)["lifecycle_job_last_success_timestamp_seconds"]
    for record in (monitor, *runs(repo.prediction_db, "predict_churn")):
        assert metrics[(("job", record.job),)] == record.ended_at.timestamp()
    assert ("job", "retrain_churn") not in {k[0] for k in metrics}  # never succeeded
    # in a browser: the page renders, with the runs' statuses
    browser = _chromium()
    dom = subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            f"{url}/ui/jobs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert dom.count('class="run succeeded"') == 3 and "monitor_churn" in dom
    image = _screenshot(browser, f"{url}/ui/jobs", tmp_path / "jobs.png")
    rgb = image[..., :3]
    assert (rgb.mean(axis=2) < 0.9).mean() > 0.01, "the jobs page looks blank"
    green = (rgb[..., 1] > 0.4) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.4)
    assert green.mean() > 0.0001, "no status shown in green"


def test_cli_once_and_runs(trained_copy, prediction_db):
    result = cli(
        trained_copy,
        "schedule",
        "once",
        "predict_churn",
        "--at",
        T.isoformat(),
        "--db",
        prediction_db,
    )
    assert result.exit_code == 0, result.output
    assert "predict_churn" in result.output and "succeeded" in result.output
    result = cli(trained_copy, "schedule", "runs", "--db", prediction_db)
    assert result.exit_code == 0 and result.output.count("succeeded") == 2  # and materialize
    listed = cli(trained_copy, "schedule", "list", "--db", prediction_db, "--json")
    jobs = {j["job"]: j for j in __import__("json").loads(listed.output)["jobs"]}
    assert jobs["predict_churn"]["last_run"]["status"] == "succeeded"
    assert jobs["retrain_churn"]["last_run"] is None


def test_jobs_run_at_the_datas_present_when_asked(trained_copy, prediction_db):
    """The repo's data ends in the past: a monitor run at the wall clock finds no
    predictions; `--at data` runs the day's jobs at the latest event time instead."""
    from framework.collect.ingest import latest_event_time

    now = cli(trained_copy, "schedule", "once", "monitor_churn", "--db", prediction_db)
    assert now.exit_code == 1 and "No logged or batch predictions" in now.output, now.output
    assert "--at data" in now.output
    for job in ("predict_churn", "monitor_churn"):
        result = cli(trained_copy, "schedule", "once", job, "--at", "data", "--db", prediction_db)
        assert result.exit_code == 0, result.output
    latest = latest_event_time(trained_copy)
    done = [r for r in runs(prediction_db, "monitor_churn") if r.status == "succeeded"]
    assert len(done) == 1
    tick = done[0].scheduled_for
    tick = pd.Timestamp(tick).tz_localize("UTC") if pd.Timestamp(tick).tzinfo is None else tick
    assert latest - timedelta(days=1) < pd.Timestamp(tick) <= latest
