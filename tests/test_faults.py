"""Faults survived: the online store goes away under traffic, then comes back.

The test runs its own redis-server on a free port and stops it by itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pandas as pd
import pandas.testing as pdt
import pytest
import requests

from framework.materialize import materialize
from framework.repo import FeatureRepo
from framework.serving import background_server, create_app

from .conftest import T, clone_repo, set_online_store, set_project

TIMEOUT_S = 2.0  # the service's declared store timeout (lifecycle serve --store-timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_redis(port: int) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("LIFECYCLE_REQUIRE_REDIS"):
            pytest.fail("LIFECYCLE_REQUIRE_REDIS is set but redis-server is not installed")
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"redis-server did not start on port {port}")


def _predict(url: str, users: list[int]) -> requests.Response:
    body = {
        "problem": "churn",
        "entities": [{"user_id": u, "event_timestamp": int(T.timestamp())} for u in users],
    }
    return requests.post(f"{url}/predict", json=body, timeout=30)


def test_online_store_outage_gives_503_within_the_timeout_and_the_service_recovers(
    served, tmp_path, prediction_db
):
    port = _free_port()
    redis = _start_redis(port)
    try:

        def yaml(repo_path):
            text = set_online_store(
                (repo_path / "feature_store.yaml").read_text(),
                f'  type: redis\n  connection_string: "127.0.0.1:{port},db=0,'
                'socket_timeout=1,socket_connect_timeout=1"',
            )
            path = repo_path / "feature_store.fault.yaml"
            path.write_text(set_project(text))
            return path

        repo = clone_repo(served[0], tmp_path / "repo", fs_yaml=yaml)
        repo = FeatureRepo(repo.path, repo.fs_yaml)
        materialize(repo, end=T)
        users = [1, 2, 3, 10_000_000]
        app = create_app(repo, log_url=prediction_db, store_timeout=TIMEOUT_S)
        with background_server(app) as url:
            before = _predict(url, users)
            assert before.status_code == 200
            # 1. The store hangs (stopped process): 503 with a reason, within the timeout.
            redis.send_signal(signal.SIGSTOP)
            t0 = time.monotonic()
            hung = _predict(url, users)
            assert hung.status_code == 503, hung.text
            assert "online store" in hung.json()["detail"]["error"]
            assert time.monotonic() - t0 < TIMEOUT_S + 1.5  # not the driver's ~12 s of retries
            health = requests.get(f"{url}/health", timeout=30)
            assert health.status_code == 503
            assert health.json()["checks"]["online_store"].startswith("unavailable")
            # 2. It comes back: same answers, no restart of the service.
            redis.send_signal(signal.SIGCONT)
            again = _predict(url, users)
            assert again.status_code == 200 and again.json() == before.json()
            # 3. The store dies: 503 at once; a new, empty one is loaded again: recovered.
            redis.terminate()
            redis.wait(timeout=10)
            gone = _predict(url, users)
            assert gone.status_code == 503 and gone.json()["detail"]["error"]
            redis = _start_redis(port)
            materialize(repo, end=T)
            back = _predict(url, users)
            assert back.status_code == 200 and back.json() == before.json()
            assert requests.get(f"{url}/health", timeout=30).status_code == 200
    finally:
        redis.send_signal(signal.SIGCONT)
        redis.kill()
        redis.wait(timeout=10)


def _lifecycle(repo_path, *args) -> subprocess.Popen:
    import sys

    from .conftest import ROOT

    return subprocess.Popen(
        [sys.executable, "-m", "framework.cli", "--repo", str(repo_path), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_applies_and_materializes_at_once_leave_a_valid_registry(fresh_repo):
    from framework.retrieval import get_historical_features, get_online_features

    first = [_lifecycle(fresh_repo, "apply"), _lifecycle(fresh_repo, "apply")]
    for proc in first:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    both = [
        _lifecycle(fresh_repo, "materialize", "--end", T.isoformat()),
        _lifecycle(fresh_repo, "materialize", "--end", T.isoformat()),
    ]
    for proc in both:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    repo = FeatureRepo(fresh_repo)
    assert {v.name for v in repo.feature_views} == {"user_activity", "user_profile"}
    assert {s.name for s in repo.store.list_feature_services()} == {
        "churn_model_v1",
        "spend_model_v1",
    }
    users = pd.read_parquet(fresh_repo / "data" / "users.parquet").user_id.tolist()
    online = get_online_features(repo, [{"user_id": u, "event_timestamp": T} for u in users])
    offline = get_historical_features(repo, pd.DataFrame({"user_id": users, "event_timestamp": T}))
    pdt.assert_frame_equal(online[offline.columns], offline, check_exact=True)


_KILLED_MATERIALIZE = """
import sys, time, pathlib
import framework.materialize as m
from framework.repo import FeatureRepo

repo, marker, end = sys.argv[1:4]
m.BATCH_ROWS = 40  # many batches, so that the kill lands between two of them
calls = []

def slow(original):  # the batch writer of either store (SQLite fast path, or Feast's)
    def write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # two batches written, the third never is
            pathlib.Path(marker).write_text("midway")
            time.sleep(300)
        return original(*args, **kwargs)
    return write

m.prepare_sqlite = slow(m.prepare_sqlite)
m.write_rows = slow(m.write_rows)
m.materialize(FeatureRepo(repo), end=end)
"""


def test_a_materialization_killed_midway_and_rerun_equals_a_clean_run(applied_repo, tmp_path):
    import sys

    from framework.retrieval import get_historical_features, get_online_features

    from .conftest import ROOT

    repo = clone_repo(applied_repo, tmp_path / "repo")
    marker = tmp_path / "midway"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_MATERIALIZE, str(repo.path), str(marker), T.isoformat()],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert child.poll() is None, "the materialization ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    users = pd.read_parquet(repo.data_dir / "users.parquet").user_id.tolist()
    rows = [{"user_id": u, "event_timestamp": T} for u in users]
    partial = get_online_features(repo, rows, "churn_model_v1")
    assert (partial.feature_status != "ok").any()  # the kill left it half loaded
    materialize(repo, end=T)  # the rerun
    online = get_online_features(repo, rows, "churn_model_v1")
    offline = get_historical_features(
        repo, pd.DataFrame({"user_id": users, "event_timestamp": T}), "churn_model_v1"
    )
    pdt.assert_frame_equal(online[offline.columns], offline, check_exact=True)
