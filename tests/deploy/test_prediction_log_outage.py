"""Nothing lost when the prediction log's database is down: spool, retry, replay once."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from framework.deploy.prediction_log import PredictionLog, engine_url
from framework.deploy.service import background_server, create_app
from tests.helpers import T, TcpSwitch, new_pg_schema, scrape


def _rows(problem: str, start: int, n: int) -> list[dict]:
    return [
        {
            "problem": problem,
            "model_version": "v1",
            "entity_key": "user_id",
            "entity_id": str(i),
            "feature_status": "ok",
            "score": i / 1000,
            "label": i % 2,
            "experiment": None,
            "arm": None,
        }
        for i in range(start, start + n)
    ]


def _logged(url: str, problem: str) -> Counter:
    engine = sa.create_engine(engine_url(url))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT entity_id, score FROM prediction_log WHERE problem = :p"),
            {"p": problem},
        ).fetchall()
    engine.dispose()
    return Counter((int(e), round(float(s), 9)) for e, s in rows)


def _wait(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def switch(postgres_url):
    parts = urlsplit(postgres_url)
    proxy = TcpSwitch((parts.hostname, parts.port or 5432))
    yield proxy
    proxy.off()


def test_an_outage_spools_and_the_replay_writes_every_row_once(switch, postgres_url, tmp_path):
    problem = f"t_{uuid.uuid4().hex[:8]}"
    log = PredictionLog(switch.url(postgres_url), interval=0.01, spool=tmp_path / "log.spool")
    log.log(_rows(problem, 0, 100))
    _wait(lambda: log.written == 100)
    switch.off()
    for start in range(100, 1_100, 100):  # ten batches while the database is away
        log.log(_rows(problem, start, 100))
    _wait(lambda: log.spool.rows == 1_000)
    assert log.queue.qsize() == 0  # taken off the queue into the spool: memory bounded
    assert log.status().startswith("degraded: 1,000 rows spooled")
    assert log.spool.path.stat().st_size > 0 and log.spool.path.parent == tmp_path
    switch.on()
    log._retry_at = 0.0  # no need to wait out the backoff in a test
    log.log(_rows(problem, 1_100, 100))
    _wait(lambda: log.status() == "ok")
    assert log.close() == 1_200
    assert list(tmp_path.glob("log.spool.*")) == []
    expected = Counter((i, round(i / 1000, 9)) for i in range(1_200))
    assert _logged(postgres_url, problem) == expected  # every row, each once


def test_a_shutdown_during_the_outage_leaves_the_spool_for_the_next_start(
    switch, postgres_url, tmp_path
):
    problem = f"t_{uuid.uuid4().hex[:8]}"
    spool = tmp_path / "log.spool"
    switch.off()
    first = PredictionLog(switch.url(postgres_url), interval=0.01, spool=spool)  # starts down
    first.log(_rows(problem, 0, 300))
    assert first.close() == 0 and first.spool.rows == 300 and first.spool.path.exists()
    switch.on()
    second = PredictionLog(switch.url(postgres_url), interval=0.01, spool=spool)
    _wait(lambda: second.status() == "ok")
    second.log(_rows(problem, 300, 50))
    assert second.close() == 350 and list(tmp_path.glob("log.spool.*")) == []
    assert _logged(postgres_url, problem) == Counter((i, round(i / 1000, 9)) for i in range(350))


def test_a_replayed_batch_that_had_committed_is_not_written_twice(postgres_url, tmp_path):
    """The database took a batch but the answer was lost, so it was spooled too: the
    replay (here by the next start, adopting the spool) finds its id and skips it."""
    from framework.deploy.spool import Spool

    problem = f"t_{uuid.uuid4().hex[:8]}"
    first = PredictionLog(postgres_url, interval=0.01, spool=tmp_path / "first")
    params = first._insert.params(
        [
            {**r, "logged_at": T.to_pydatetime(), "request_ts": None, "features": "{}"}
            for r in _rows(problem, 0, 40)
        ]
    )
    a, b = uuid.uuid4().hex, uuid.uuid4().hex  # batch ids: new in the shared database
    assert first._write(a, params)  # committed (the writer thread is idle: no race)
    assert first.close() == 40
    left = Spool(tmp_path / "left")  # what a process that lost the answer left behind
    left.append(a, params)  # ... the committed batch, spooled all the same
    left.append(b, params[:10])  # ... and one that really is missing
    left.close()
    (orphan,) = tmp_path.glob("left.*")
    orphan.rename(tmp_path / "log.spool.999999-0000beef")
    second = PredictionLog(postgres_url, interval=0.01, spool=tmp_path / "log.spool")
    _wait(lambda: second.status() == "ok")
    assert second.close() == 10  # only "b" was written
    counts = _logged(postgres_url, problem)
    assert sum(counts.values()) == 50 and max(counts.values()) == 2  # the ten of "b" twice
    assert sum(1 for c in counts.values() if c == 1) == 30


def test_the_service_spools_under_traffic_and_across_a_restart(served, switch, postgres_url):
    """/predict keeps answering while the log's database is away (and after a restart in
    the middle of the outage); every answered prediction ends up logged exactly once."""
    repo, _ = served
    schema = new_pg_schema("outage_")  # this test's rows only
    url = switch.url(schema)
    answered: Counter = Counter()

    def traffic(base: str, first: int, n: int) -> None:
        for u in range(first, first + n):
            body = {"problem": "churn", "entities": [{"user_id": u % 300 + 1}]}
            response = requests.post(f"{base}/predict", json=body, timeout=30)
            assert response.status_code == 200, response.text
            (p,) = response.json()["predictions"]
            answered[(p["user_id"], round(p["score"], 9))] += 1

    with background_server(create_app(repo, log_url=url)) as base:
        traffic(base, 0, 40)
        switch.off()
        traffic(base, 40, 60)
        _wait(lambda: "rows spooled" in requests.get(f"{base}/health", timeout=30).text)
        health = requests.get(f"{base}/health", timeout=30)
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        metrics = scrape(base)
        assert metrics["lifecycle_prediction_log_spooled_rows"][()] > 0
        assert metrics["lifecycle_prediction_log_write_failures_total"][()] >= 1
    # stopped during the outage: the spool stays; restarted while it lasts: more spooled
    spool = repo.prediction_spool(url)
    assert list(spool.parent.glob(f"{spool.name}.*"))
    with background_server(create_app(repo, log_url=url)) as base:
        traffic(base, 100, 30)
        switch.on()  # the database is back: everything is replayed, in order, once
        traffic(base, 130, 20)
        _wait(lambda: requests.get(f"{base}/health", timeout=30).json()["status"] == "ok")
    assert list(spool.parent.glob(f"{spool.name}.*")) == []
    assert _logged(schema, "churn") == answered and sum(answered.values()) == 150


def test_a_spool_takes_over_the_files_of_gone_processes_only(tmp_path):
    """Service workers spool to a file each; a new one adopts what dead ones left."""
    import fcntl
    import json

    from framework.deploy.spool import Spool

    prefix = tmp_path / "log.spool"
    row = [1, "churn", {"$dt": "2025-09-17T13:45:10+00:00"}]
    (tmp_path / "log.spool.999999-0000beef").write_text(  # a process that is gone
        json.dumps({"batch": "a" * 32, "rows": [row, row]}) + "\n" + '{"batch": "torn'
    )
    live = tmp_path / "log.spool.888888-0000cafe"  # a process that holds its file
    live.write_text(json.dumps({"batch": "b" * 32, "rows": [row]}) + "\n")
    with open(live, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        spool = Spool(prefix)
        assert spool.rows == 2 and spool.batches == 1  # the gone one's, without its torn line
        assert not (tmp_path / "log.spool.999999-0000beef").exists() and live.exists()
        ((batch, rows),) = list(spool.replay())
        assert batch == "a" * 32 and rows[0][2].year == 2025  # times come back as datetimes
        spool.clear()
        spool.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.spool.888888-0000cafe"]
