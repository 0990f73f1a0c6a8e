"""Faults survived: the online store goes away under traffic, then comes back.

The test runs its own redis-server on a free port and stops it by itself.
"""

from __future__ import annotations

import contextlib
import itertools
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

from framework.declare.repo import FeatureRepo
from framework.deploy.service import background_server, create_app
from framework.features.materialize import materialize
from tests.helpers import T, clone_repo, post_predict, set_online_store, set_project

pytestmark = pytest.mark.slow  # processes started, killed and restarted

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


def _until_answered(url: str, users: list[int], seconds: float = 15.0) -> requests.Response:
    """The first 200 to a /predict repeated while it answers 503 (the store recovering)."""
    deadline = time.monotonic() + seconds
    while True:
        response = post_predict(url, users)
        if response.status_code != 503 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return response
        time.sleep(0.1)


class _Traffic:
    """``clients`` threads posting /predict in a loop until the block ends; every status
    code is kept in order of answer, and any exception other than a timeout."""

    def __init__(self, url: str, clients: int) -> None:
        import threading

        self.url, self.codes, self.errors = url, [], []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]

    def _run(self, seed: int) -> None:
        session = requests.Session()
        body = {"problem": "churn", "entities": [{"user_id": seed + 1}]}
        while not self.stop.is_set():
            try:
                response = session.post(f"{self.url}/predict", json=body, timeout=10)
                self.codes.append(response.status_code)
                if response.status_code not in (200, 503):
                    self.errors.append(f"{response.status_code}: {response.text[:300]}")
            except requests.Timeout:
                self.codes.append("timeout")
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
                return

    def seen(self) -> int:
        return len(self.codes)

    def __enter__(self) -> _Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


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
        with background_server(app) as url, _Traffic(url, clients=4) as traffic:
            before = post_predict(url, users)
            assert before.status_code == 200
            # 1. The store hangs (stopped process): 503 with a reason, within the timeout.
            redis.send_signal(signal.SIGSTOP)
            t0 = time.monotonic()
            hung = post_predict(url, users)
            assert hung.status_code == 503, hung.text
            assert "online store" in hung.json()["detail"]["error"]
            assert time.monotonic() - t0 < TIMEOUT_S + 1.5  # not the driver's ~12 s of retries
            health = requests.get(f"{url}/health", timeout=30)
            assert health.status_code == 503
            assert health.json()["checks"]["online_store"].startswith("unavailable")
            # 2. It comes back: same answers, no restart of the service.
            redis.send_signal(signal.SIGCONT)
            again = _until_answered(url, users)  # reads queued during the hang drain first
            assert again.json() == before.json()
            # 3. The store is killed (SIGKILL): 503; a new, empty one is loaded: recovered.
            redis.kill()
            redis.wait(timeout=10)
            gone = post_predict(url, users)
            assert gone.status_code == 503 and gone.json()["detail"]["error"]
            redis = _start_redis(port)
            materialize(repo, end=T)
            back = _until_answered(url, users)
            assert back.json() == before.json()
            assert requests.get(f"{url}/health", timeout=30).status_code == 200
            recovered = traffic.seen()
            time.sleep(0.5)
        # The traffic that ran beside all of it got answers, 200 or 503, and nothing else;
        # it saw the outage and, after it, answers again.
        codes = traffic.codes
        assert traffic.errors == [] and set(codes) <= {200, 503}, (set(codes), traffic.errors)
        assert 503 in codes and codes[recovered:].count(200) > 0, codes[recovered:]
    finally:
        redis.send_signal(signal.SIGCONT)
        redis.kill()
        redis.wait(timeout=10)


def _lifecycle(repo_path, *args) -> subprocess.Popen:
    import sys

    from tests.helpers import ROOT

    return subprocess.Popen(
        [sys.executable, "-m", "framework.cli", "--repo", str(repo_path), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


_TRACED_LOCK = """
import contextlib, os, pathlib, sys, time
from framework.declare import repo as module

trace, barrier, mode, *args = sys.argv[1:]
original = module.FeatureRepo.lock

@contextlib.contextmanager
def traced(self):
    pathlib.Path(barrier, str(os.getpid())).touch()  # both processes reach the lock ...
    while len(os.listdir(barrier)) < 2:  # ... before either takes it
        time.sleep(0.01)
    start = time.time()
    with original(self) if mode == "locked" else contextlib.nullcontext():
        got = time.time()
        time.sleep(0.5)  # hold it long enough for the other to be seen waiting
        try:
            yield
        finally:
            with open(trace, "a") as out:
                out.write(f"{os.getpid()} {start} {got} {time.time()}\\n")

module.FeatureRepo.lock = traced
from framework.cli import main
main(args)
"""


def _at_once(repo_path, folder, mode: str, *args) -> tuple[list[tuple[float, ...]], list[int]]:
    """Run the same command in two processes that reach the repo lock together (``mode``
    ``locked``: the real lock; ``unlocked``: none); each one's (wait start, acquired,
    released), and the exit codes."""
    import sys

    from tests.helpers import ROOT

    barrier = folder / f"{mode}-{args[0]}-barrier"
    barrier.mkdir()
    trace = folder / f"{mode}-{args[0]}.trace"
    command = [sys.executable, "-c", _TRACED_LOCK, str(trace), str(barrier), mode]
    procs = [
        subprocess.Popen(
            [*command, "--repo", str(repo_path), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    codes = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        codes.append(proc.returncode)
        assert mode == "unlocked" or proc.returncode == 0, err
    lines = trace.read_text().split("\n") if trace.exists() else []
    return [tuple(map(float, line.split()[1:])) for line in lines if line], codes


def _overlap(sections: list[tuple[float, ...]]) -> bool:
    held = sorted((got, done) for _, got, done in sections)
    return any(b[0] < a[1] for a, b in itertools.pairwise(held))


def test_two_applies_and_materializes_at_once_leave_a_valid_registry(fresh_repo, tmp_path):
    """Two applies, then two materializes, start together: the repo lock makes one wait
    (the sections it guards never overlap), and the end state is exact."""
    from framework.features.historical import get_historical_features
    from framework.features.online import get_online_features

    for args in (("apply",), ("materialize", "--to", T.isoformat())):
        sections, _ = _at_once(fresh_repo, tmp_path, "locked", *args)
        assert len(sections) >= 2 and not _overlap(sections), sections
        waited = max(got - start for start, got, _ in sections)
        assert waited >= 0.45, sections  # one of the two waited for the other's 0.5 s hold
    repo = FeatureRepo(fresh_repo)
    assert {v.name for v in repo.feature_views} == {"user_activity", "user_profile"}
    assert {s.name for s in repo.store.list_feature_services()} == {
        "churn_model_v1",
        "spend_model_v1",
    }
    users = pd.read_parquet(fresh_repo / "data" / "users.parquet").user_id.tolist()
    online = get_online_features(repo, [{"user_id": u, "event_timestamp": T} for u in users])
    offline = get_historical_features(repo, pd.DataFrame({"user_id": users, "event_timestamp": T}))
    pdt.assert_frame_equal(
        online[offline.columns], offline, check_exact=False, rtol=1e-9, atol=1e-9
    )


def test_without_the_lock_the_two_materializes_overlap(fresh_repo, tmp_path):
    """The check above can fail: with the lock taken away, the same two processes are
    inside the guarded section at the same time."""
    _at_once(fresh_repo, tmp_path, "locked", "apply")
    sections, _ = _at_once(fresh_repo, tmp_path, "unlocked", "materialize", "--to", T.isoformat())
    assert len(sections) >= 2 and _overlap(sections), sections


_KILLED_MATERIALIZE = """
import sys, time, pathlib
import framework.features.materialize as m
from framework.declare.repo import FeatureRepo

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

    from framework.features.historical import get_historical_features
    from framework.features.online import get_online_features
    from tests.helpers import ROOT

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
    pdt.assert_frame_equal(
        online[offline.columns], offline, check_exact=False, rtol=1e-9, atol=1e-9
    )


class _CuttingProxy:
    """A TCP proxy to PostgreSQL that drops both sides of every connection once
    ``cut_after`` bytes have gone from client to server (None: never; it counts)."""

    def __init__(self, target: tuple[str, int], cut_after: int | None = None) -> None:
        import threading

        self.target, self.cut_after, self.sent = target, cut_after, 0
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for a, b, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, up), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if upstream:
                    self.sent += len(data)
                    if self.cut_after is not None and self.sent > self.cut_after:
                        self.cut.set()
                        break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_postgres_lost_during_a_batch_run_leaves_nothing_and_the_rerun_completes(
    served, postgres_url
):
    """The connection drops in the middle of the run's COPY: a clear StoreError, no
    partial run visible, and the rerun writes exactly one copy of every row."""
    from urllib.parse import urlsplit

    from framework.deploy.batch import predict_batch
    from framework.errors import StoreError
    from tests.helpers import batch_runs

    repo, _ = served
    parts = urlsplit(postgres_url)
    as_of = T + pd.Timedelta(microseconds=pd.Timestamp.now().value % 1_000_000 + 1)
    later = as_of + pd.Timedelta(days=1)

    def via(proxy: _CuttingProxy) -> str:
        return postgres_url.replace(parts.netloc, f"{parts.username}@127.0.0.1:{proxy.port}")

    counting = _CuttingProxy((parts.hostname, parts.port or 5432))
    first = predict_batch(repo, "churn", as_of, db=via(counting))  # the bytes of one run
    counting.close()
    full = counting.sent
    earlier = batch_runs(postgres_url, as_of)
    assert len(earlier) == first.rows

    cutting = _CuttingProxy((parts.hostname, parts.port or 5432), cut_after=int(full * 0.7))
    with pytest.raises(StoreError) as info:
        predict_batch(repo, "churn", as_of, db=via(cutting))
    cutting.close()
    assert cutting.cut.is_set()  # the drop happened, in the middle of the run
    message = str(info.value)
    assert "Writing batch predictions" in message and "127.0.0.1" in message
    assert "postgres@" not in message  # no credentials in the error
    after = batch_runs(postgres_url, as_of)
    assert set(after.run_id) == {first.run_id} and len(after) == first.rows  # nothing partial
    # a new as-of lost midway leaves no rows at all
    cutting = _CuttingProxy((parts.hostname, parts.port or 5432), cut_after=int(full * 0.7))
    with pytest.raises(StoreError):
        predict_batch(repo, "churn", later, db=via(cutting))
    cutting.close()
    assert batch_runs(postgres_url, later).empty
    rerun = predict_batch(repo, "churn", later, db=postgres_url)
    rows = batch_runs(postgres_url, later)
    assert set(rows.run_id) == {rerun.run_id}
    assert rows.entity_id.is_unique and len(rows) == rerun.rows == first.rows


@pytest.mark.parametrize("workers", [1, 2])
def test_the_prediction_log_survives_a_clean_shutdown_under_load(
    served, prediction_db, tmp_path, workers
):
    """8 clients keep sending while the service (one process, or two workers sharing
    the port, each with its own log writer) gets SIGTERM: every answered prediction is
    in the log afterwards, once."""
    import sys
    import threading
    from collections import Counter

    import sqlalchemy as sa

    from framework.common.database import engine_url
    from framework.declare.repo import FeatureRepo
    from tests.helpers import ROOT

    repo = clone_repo(served[0], tmp_path / "repo")
    materialize(FeatureRepo(repo.path), end=T)
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "framework.cli",
            "--repo",
            str(repo.path),
            "serve",
            "--port",
            str(port),
            "--db",
            prediction_db,
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "the service did not start"
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            time.sleep(0.2)
        answered: list[tuple[int, float]] = []
        errors: list[str] = []
        stop = threading.Event()

        def client(seed: int) -> None:
            session = requests.Session()
            i = seed
            while not stop.is_set():
                users = [(i * 7 + k) % 300 + 1 for k in range(5)]
                i += 8
                try:
                    response = session.post(
                        f"{url}/predict",
                        json={"problem": "churn", "entities": [{"user_id": u} for u in users]},
                        timeout=30,
                    )
                except requests.ConnectionError:
                    return  # the service has stopped listening
                if response.status_code != 200:
                    errors.append(f"{response.status_code}: {response.text}")
                    return
                answered.extend((p["user_id"], p["score"]) for p in response.json()["predictions"])

        threads = [threading.Thread(target=client, args=(s,)) for s in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        assert len(answered) > 100 and not errors, errors
        if workers > 1:  # the workers are processes of their own, each serving
            import psutil

            serving = [p for p in psutil.Process(server.pid).children() if p.cmdline()]
            assert len([p for p in serving if "spawn_main" in " ".join(p.cmdline())]) == workers
        server.send_signal(signal.SIGTERM)  # a clean shutdown, with requests in flight
        server.wait(timeout=60)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        server.kill()
        server.wait(timeout=30)
    # uvicorn shuts down gracefully, then raises the signal again: it exits "by SIGTERM"
    stderr = server.stderr.read()
    assert server.returncode in (0, -signal.SIGTERM) and "Traceback" not in stderr, stderr
    assert not errors, errors
    engine = sa.create_engine(engine_url(prediction_db))
    with engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT entity_id, score FROM prediction_log")).fetchall()
    engine.dispose()
    assert Counter((int(e), float(s)) for e, s in logged) == Counter(answered)
