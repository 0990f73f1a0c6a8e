"""Shared fixtures: small copies of the example repo, and the stores they use.

Redis-backed tests use the server at LIFECYCLE_TEST_REDIS (default
127.0.0.1:6379, database 15, which the tests flush). Without a server they skip
with the reason shown by ``pytest -ra``; CI sets LIFECYCLE_REQUIRE_REDIS=1 so
that a missing server fails the run instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_REPO = ROOT / "feature_repo"
REDIS = os.environ.get("LIFECYCLE_TEST_REDIS", "127.0.0.1:6379")
REDIS_DB = 15


def copy_example_repo(
    dest: Path, users: int | None = 300, seed: int = 3, experiments: bool = False
) -> Path:
    """The example repo's declarations in ``dest``; with example data when ``users`` is set.
    Without ``experiments`` the experiments are left out (predictions then have no arms)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in EXAMPLE_REPO.iterdir():
        if item.name in ("data", "__pycache__") or (
            item.name == "experiments.py" and not experiments
        ):
            continue
        if item.is_file():
            shutil.copy(item, dest / item.name)
    if users:
        from framework.example_data import write_example_data

        write_example_data(dest / "data", users=users, seed=seed)
    return dest


def redis_yaml(repo: Path) -> Path:
    """A Feast config for ``repo`` that uses the test Redis (unique project per call)."""
    host, _, port = REDIS.partition(":")
    text = (repo / "feature_store.yaml").read_text()
    project = f"t{uuid.uuid4().hex[:10]}"
    text = text.replace("project: product_analytics", f"project: {project}")
    text = text.replace(
        "  type: sqlite\n  path: data/online_store.db",
        f'  type: redis\n  connection_string: "{host}:{port or 6379},db={REDIS_DB}"',
    )
    path = repo / "feature_store.redis-test.yaml"
    path.write_text(text)
    return path


def _redis_available() -> str | None:
    try:
        import redis

        host, _, port = REDIS.partition(":")
        redis.Redis(host=host, port=int(port or 6379), db=REDIS_DB, socket_timeout=2).ping()
        return None
    except Exception as exc:  # any failure means: no usable server
        return f"Redis at {REDIS} is not reachable ({type(exc).__name__}: {exc})"


@pytest.fixture(scope="session")
def redis_server() -> str:
    reason = _redis_available()
    if reason:
        if os.environ.get("LIFECYCLE_REQUIRE_REDIS"):
            pytest.fail(f"LIFECYCLE_REQUIRE_REDIS is set but {reason}")
        pytest.skip(reason)
    import redis

    host, _, port = REDIS.partition(":")
    client = redis.Redis(host=host, port=int(port or 6379), db=REDIS_DB)
    client.flushdb()
    yield REDIS
    client.flushdb()


@pytest.fixture(scope="session")
def applied_repo(tmp_path_factory):
    """A small example repo (300 users), applied; read-only for tests that share it."""
    from framework.apply import apply
    from framework.repo import FeatureRepo

    path = copy_example_repo(tmp_path_factory.mktemp("repo") / "feature_repo")
    repo = FeatureRepo(path)
    apply(repo)
    return repo


@pytest.fixture
def fresh_repo(tmp_path):
    """A small example repo with data, not yet applied; each test gets its own."""
    return copy_example_repo(tmp_path / "feature_repo")


def clone_repo(repo, dest: Path, fs_yaml=None):
    """A copy of an applied repo whose registry points at the copy's own tables."""
    from framework.apply import register
    from framework.repo import FeatureRepo

    shutil.copytree(repo.path, dest)
    copy = FeatureRepo(dest, fs_yaml(dest) if fs_yaml else None)
    register(copy)
    return copy


POSTGRES = os.environ.get("LIFECYCLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL; skips with the reason when unreachable (fails when required)."""
    try:
        import psycopg

        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except Exception as exc:
        reason = f"PostgreSQL at {POSTGRES} is not reachable ({type(exc).__name__}: {exc})"
        if os.environ.get("LIFECYCLE_REQUIRE_POSTGRES"):
            pytest.fail(f"LIFECYCLE_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    return POSTGRES


T = pd.Timestamp("2025-09-17T13:45:10Z")  # the materialization time of the served repo


def serve_app(app):
    """Run ``app`` under uvicorn on a free loopback port: (server, thread, base URL)."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def served(applied_repo, tmp_path_factory):
    """A copy of the small repo with both problems trained and promoted, materialized at T, served."""
    from framework.materialize import materialize
    from framework.modeling import registry_of, run_training
    from framework.serving import create_app

    repo = clone_repo(applied_repo, tmp_path_factory.mktemp("serve") / "repo")
    for name in ("churn", "spend"):
        run = run_training(repo, name)
        registry_of(repo).promote(name, run.artifact.version)
    materialize(repo, end=T)
    server, thread, url = serve_app(create_app(repo, max_entities=50))
    yield repo, url
    server.should_exit = True
    thread.join(timeout=10)
