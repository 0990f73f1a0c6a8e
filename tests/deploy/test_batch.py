"""Batch prediction: same scores as online, one transaction per run, reruns replace."""

from __future__ import annotations

import pandas as pd
import pytest
import requests
from click.testing import CliRunner

from framework.cli import main
from framework.deploy.batch import predict_batch
from framework.errors import StoreError
from tests.helpers import T, batch_runs


def test_batch_scores_equal_online_scores_at_the_same_time(served, prediction_db):
    repo, url = served
    users = pd.read_parquet(repo.data_dir / "users.parquet").user_id.head(25).tolist()
    run = predict_batch(repo, "churn", T, entities=users, db=prediction_db)
    batch = batch_runs(prediction_db, T)
    body = {
        "problem": "churn",
        "entities": [{"user_id": u, "event_timestamp": int(T.timestamp())} for u in users],
    }
    online = requests.post(f"{url}/predict", json=body, timeout=30).json()["predictions"]
    assert run.rows == 25 and sorted(batch.user_id.tolist()) == sorted(users)
    assert set(batch.entity_key) == {"user_id"}
    assert sorted(batch.entity_id) == sorted(str(u) for u in users)
    by_user = {p["user_id"]: p for p in online}
    for row in batch.itertuples():
        assert row.score == pytest.approx(by_user[row.user_id]["score"], abs=1e-12)
        assert row.label == by_user[row.user_id]["label"]


def _check_idempotent_and_atomic(repo, url, monkeypatch, as_of):
    first = predict_batch(repo, "spend", as_of, db=url)
    second = predict_batch(repo, "spend", as_of, db=url)
    rows = batch_runs(url, as_of)
    assert second.replaced == first.rows and len(rows) == first.rows
    assert set(rows.run_id) == {second.run_id}
    # A run that fails halfway (a row breaks NOT NULL) leaves the earlier run untouched.
    from framework.deploy.bulk import BulkInsert

    original = BulkInsert.columnar

    def broken(self, values, n):
        params = original(self, values, n)
        row = list(params[n // 2])
        row[self.names.index("score")] = None
        params[n // 2] = tuple(row)
        return params

    monkeypatch.setattr(BulkInsert, "columnar", broken)
    with pytest.raises(StoreError, match="failed"):
        predict_batch(repo, "spend", as_of, db=url)
    monkeypatch.setattr(BulkInsert, "columnar", original)
    after = batch_runs(url, as_of)
    assert set(after.run_id) == {second.run_id} and len(after) == len(rows)


def test_sqlite_reruns_replace_and_failures_leave_nothing(served, tmp_path, monkeypatch):
    repo, _ = served
    _check_idempotent_and_atomic(repo, f"sqlite:///{tmp_path / 'p.db'}", monkeypatch, T)


def test_postgres_reruns_replace_and_failures_leave_nothing(served, postgres_url, monkeypatch):
    repo, _ = served
    as_of = T + pd.Timedelta(
        microseconds=pd.Timestamp.now().value % 1_000_000
    )  # this run's own key
    _check_idempotent_and_atomic(repo, postgres_url, monkeypatch, as_of)


def test_cli_predict(served, tmp_path, prediction_db):
    repo, _ = served
    (tmp_path / "e.csv").write_text("user_id\n1\n2\n3\n")
    db = prediction_db
    args = [
        "--repo",
        str(repo.path),
        "predict",
        "churn",
        "--at",
        "2025-09-01T00:00:00Z",
        "--db",
        db,
    ]
    result = CliRunner().invoke(main, [*args, "--entities", str(tmp_path / "e.csv")])
    assert result.exit_code == 0 and "Wrote 3 predictions" in result.output, result.output
    naive = CliRunner().invoke(
        main, ["--repo", str(repo.path), "predict", "churn", "--at", "2025-09-01"]
    )
    assert naive.exit_code == 2 and "no time zone" in naive.output


_KILLED_RUN = """
import sys, time, pathlib
from framework.deploy.batch import predict_batch
from framework.deploy.bulk import BulkInsert
from framework.declare.repo import FeatureRepo

repo, db, marker, as_of = sys.argv[1:5]
write = BulkInsert.write

def stall_after_insert(self, conn, params):
    write(self, conn, params)  # rows written, transaction still open
    pathlib.Path(marker).write_text("inserted")
    time.sleep(300)

BulkInsert.write = stall_after_insert
predict_batch(FeatureRepo(repo), "churn", as_of, db=db)
"""


@pytest.mark.slow  # over 8 s: left out of the fast subset
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_run_killed_with_sigkill_leaves_the_earlier_run_and_the_rerun_is_exact(
    served, tmp_path, request, store
):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    repo, _ = served
    if store == "postgres":
        url = request.getfixturevalue("postgres_url")
        as_of = T + pd.Timedelta(microseconds=pd.Timestamp.now().value % 1_000_000 + 1)
    else:
        url, as_of = f"sqlite:///{tmp_path / 'k.db'}", T
    first = predict_batch(repo, "churn", as_of, db=url)
    marker = tmp_path / "inserted"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(repo.path), url, str(marker), as_of.isoformat()],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert child.poll() is None, "the batch run ended before it was killed"
            assert time.monotonic() < deadline, "the batch run never reached its insert"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    rows = batch_runs(url, as_of)
    assert set(rows.run_id) == {first.run_id} and len(rows) == first.rows  # nothing of the kill
    rerun = predict_batch(repo, "churn", as_of, db=url)
    rows = batch_runs(url, as_of)
    assert set(rows.run_id) == {rerun.run_id}
    assert rows.entity_id.is_unique and len(rows) == rerun.rows == first.rows


@pytest.mark.parametrize(
    ("corrupt", "expectation"),
    [
        (lambda f, c: f.assign(**{c: f[c].where(f.index != 2, -4)}), "to_be_between"),
        (lambda f, c: f.assign(**{c: f[c].where(f.index != 1, None)}), "to_not_be_null"),
    ],
    ids=["negative count", "missing count"],
)
def test_inputs_failing_the_models_suite_are_refused_before_writing(
    served, prediction_db, monkeypatch, corrupt, expectation
):
    import framework.features.historical
    from framework.errors import ValidationError

    repo, _ = served
    users = pd.read_parquet(repo.data_dir / "users.parquet").user_id.head(20).tolist()
    clean = predict_batch(repo, "churn", T, entities=users, db=prediction_db)
    column = "user_page_views_count_7d"
    original = framework.features.historical.get_historical_features
    monkeypatch.setattr(
        framework.features.historical,
        "get_historical_features",
        lambda *a, **k: corrupt(original(*a, **k), column),
    )
    later = T + pd.Timedelta(days=1)
    with pytest.raises(ValidationError) as info:
        predict_batch(repo, "churn", later, entities=users, db=prediction_db)
    message = str(info.value)
    assert "nothing was written" in message and column in message and expectation in message
    assert batch_runs(prediction_db, later).empty  # nothing of the refused run
    assert len(batch_runs(prediction_db, T)) == clean.rows  # the earlier run untouched


@pytest.mark.slow  # over 8 s: left out of the fast subset
def test_the_fast_check_never_passes_what_great_expectations_fails(served):
    """Batch inputs pass through a vectorized check first, and GX judges (and reports)
    only what it cannot settle: on clean and corrupted frames, nothing the fast check
    passes fails in GX, and every corruption reaches GX."""
    import numpy as np

    from framework.features.historical import get_historical_features
    from framework.models.registry import registry_of
    from framework.training.validation import _feature_expectations, _run, _surely_met

    repo, _ = served
    meta = registry_of(repo).get("churn").meta
    spec = {"feature_dtypes": meta.feature_dtypes, **meta.validation}
    users = pd.read_parquet(repo.data_dir / "users.parquet").user_id.head(200).tolist()
    clean = get_historical_features(
        repo, pd.DataFrame({"user_id": users, "event_timestamp": T}), meta.feature_service
    )
    count = spec["zero_fill"][0]
    short, long = spec["window_groups"][0][:2]
    category = next(iter(meta.categories))
    corrupted = {
        "negative": clean.assign(**{count: clean[count].where(clean.index != 5, -1)}),
        "null": clean.assign(**{count: clean[count].astype("float64").where(clean.index != 7)}),
        "window order": clean.assign(**{short: clean[long] + 1}),
        "dtype": clean.assign(**{count: clean[count].astype("float64")}),
        "category": clean.assign(**{category: clean[category].where(clean.index != 3, "gold")}),
        "object ints": clean.assign(
            **{category: clean[category].astype(object).where(clean.index != 4, 7)}
        ),
    }

    def key(kind, kw):
        column = kw.get("column") or f"{kw['column_A']} >= {kw['column_B']}"
        return kind, column

    for name, frame in {"clean": clean, **corrupted}.items():
        expectations = _feature_expectations(frame, meta.features, spec, meta.categories)
        fast = {key(*e) for e in expectations if _surely_met(frame, e, spec["feature_dtypes"])}
        judged = _run("churn", frame, expectations, "check", meta.features)
        failed = {(f.expectation, f.column) for f in judged.failures}
        failed = {(k.replace("_", ""), c) for k, c in failed}
        fast_norm = {(k.lower(), c) for k, c in fast}
        assert not fast_norm & failed, name  # sound: the fast check never passes a failure
        if name == "clean":
            assert len(fast) == len(expectations) and not failed
        else:
            assert len(fast) < len(expectations) and failed, name  # GX gets it, and fails it
    assert np.isfinite(clean[count]).all()
