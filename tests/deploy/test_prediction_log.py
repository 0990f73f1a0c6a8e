"""The prediction log: batched off the request path, nothing lost on a clean shutdown."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest
import requests
import sqlalchemy as sa

from framework.deploy.prediction_log import PredictionLog, engine_url
from framework.deploy.service import create_app
from framework.errors import ConfigError
from tests.helpers import serve_app

pytestmark = pytest.mark.stores  # touches a store, a registry or a database (see conftest)


def _rows(problem: str, n: int) -> list[dict]:
    return [
        {
            "problem": problem,
            "model_version": "v1",
            "entity_key": "user_id",
            "entity_id": str(i),
            "request_ts": pd.Timestamp("2025-06-01T00:00:00Z").to_pydatetime(),
            "features": {"user_events_count_7d": i % 7, "plan": None},
            "feature_status": "ok",
            "score": i / n,
            "label": i % 2,
            "arm": None,
        }
        for i in range(n)
    ]


def _check_round_trip(url: str) -> None:
    problem = f"t_{uuid.uuid4().hex[:8]}"
    log = PredictionLog(url, batch=300, interval=0.01)  # many batches, without the pacing
    rows = _rows(problem, 2_500)
    for start in range(0, 2_500, 100):
        log.log(rows[start : start + 100])
    assert log.close() == 2_500
    engine = sa.create_engine(engine_url(url))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT entity_id, score, features FROM prediction_log WHERE problem = :p ORDER BY id"
            ),
            {"p": problem},
        ).fetchall()
        typed = conn.execute(
            sa.select(log.table.c.request_ts, log.table.c.logged_at)
            .where(log.table.c.problem == problem)
            .limit(1)
        ).one()
    engine.dispose()
    assert pd.Timestamp(typed[0]).tz_localize(None) == pd.Timestamp("2025-06-01T00:00:00")
    assert abs(
        pd.Timestamp(typed[1]).tz_localize(None) - pd.Timestamp.utcnow().tz_localize(None)
    ) < pd.Timedelta(minutes=5)
    assert [r[0] for r in rows] == [str(i) for i in range(2_500)]  # entity texts
    assert rows[10][1] == pytest.approx(10 / 2_500)
    assert json.loads(rows[10][2]) == {"user_events_count_7d": 3, "plan": None}


def test_sqlite_round_trip(tmp_path):
    _check_round_trip(f"sqlite:///{tmp_path / 'log.db'}")


def test_postgres_round_trip(postgres_url):
    _check_round_trip(postgres_url)


def test_bad_urls():
    assert engine_url("postgresql://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    with pytest.raises(ConfigError, match="Unsupported database URL"):
        engine_url("mysql://root@localhost/test")


def test_every_served_prediction_is_logged_by_a_clean_shutdown(served, tmp_path):
    repo, _ = served
    db = tmp_path / "predictions.db"
    server, thread, url = serve_app(create_app(repo, log_url=f"sqlite:///{db}"))
    answered = []
    try:
        for start in range(1, 151, 5):
            body = {
                "problem": "churn",
                "entities": [{"user_id": u} for u in range(start, start + 5)],
            }
            answered += requests.post(f"{url}/predict", json=body, timeout=30).json()["predictions"]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        logged = conn.execute(
            sa.text(
                "SELECT entity_id, score, model_version, features FROM prediction_log ORDER BY id"
            )
        ).fetchall()
    assert len(logged) == len(answered) == 150
    assert [(r[0], r[1]) for r in logged] == [(str(p["user_id"]), p["score"]) for p in answered]
    assert "user_events_count_30d" in json.loads(logged[0][3])


HOSTILE = ["churn' OR '1'='1", "x'; DROP TABLE prediction_log; --", 'a" OR 1=1 --', "v1' --"]


def test_reads_bind_hostile_names_as_values(prediction_db):
    """Names reach SQL only as bound parameters: a quote in them matches nothing and
    runs nothing."""
    from framework.deploy.prediction_log import read_exposures
    from framework.monitor.drift import logged_predictions
    from framework.monitor.performance import predictions_of

    log = PredictionLog(prediction_db)
    log.log(_rows("churn", 50))
    assert log.close() == 50
    for name in HOSTILE:
        assert logged_predictions(prediction_db, name, "v1", None, None).empty
        assert logged_predictions(prediction_db, "churn", name, None, None).empty
        assert predictions_of(prediction_db, name).empty
        assert read_exposures(prediction_db, name).empty
    assert len(logged_predictions(prediction_db, "churn", "v1", None, None)) == 50


def test_the_api_key_is_compared_in_constant_time_and_never_logged(served, caplog, monkeypatch):
    import hmac
    import logging

    from framework.deploy.service import background_server

    repo, _ = served
    key = "s3cret-" + uuid.uuid4().hex
    compared = []
    original = hmac.compare_digest

    def counted(a, b):  # the API key's checks (model signatures are compared this way too)
        if key.encode() in (a, b):
            compared.append(1)
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counted)
    caplog.set_level(logging.DEBUG)
    body = {"problem": "churn", "entities": [{"user_id": 1}]}
    with background_server(create_app(repo, api_key=key)) as url:
        wrong = requests.post(
            f"{url}/predict", json=body, headers={"X-API-Key": "nope"}, timeout=30
        )
        none = requests.post(f"{url}/predict", json=body, timeout=30)
        right = requests.post(f"{url}/predict", json=body, headers={"X-API-Key": key}, timeout=30)
    assert (wrong.status_code, none.status_code, right.status_code) == (401, 401, 200)
    assert len(compared) == 3  # every check went through hmac.compare_digest
    assert key not in caplog.text and key not in wrong.text + none.text + right.text
