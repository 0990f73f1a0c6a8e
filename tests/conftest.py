"""Shared fixtures: small copies of the example repo, and the stores they use.

Redis-backed tests use the server at LIFECYCLE_TEST_REDIS (default
127.0.0.1:6379, database 15, which the tests flush). Without a server they skip
with the reason shown by ``pytest -ra``; CI sets LIFECYCLE_REQUIRE_REDIS=1 so
that a missing server fails the run instead.

Profiles: ``pytest`` runs on the embedded profile (file registry, SQLite online
store, SQLite prediction store). ``pytest --profile production`` runs the same
store-touching tests on the production profile: every example repo a test makes
uses ``feature_repo/feature_store.production.yaml`` (the Feast registry in
PostgreSQL, in a schema of its own per repo, and Redis as online store), and the
``prediction_db`` fixture is a fresh PostgreSQL schema instead of a SQLite file.
"""

from __future__ import annotations

import os
import re
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
PROFILE_REDIS_DB = 14  # the production profile's online store (flushed after the run)


POSTGRES = os.environ.get("LIFECYCLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PROFILES = ("embedded", "production")
_profile: dict = {"name": "embedded", "schemas": []}  # the schemas are dropped after the run


def pytest_addoption(parser):
    parser.addoption(
        "--profile",
        choices=PROFILES,
        default="embedded",
        help="Store profile of the example repos the tests make: embedded (files, SQLite) or "
        "production (Redis online store, Feast registry and prediction store in PostgreSQL).",
    )


def _pg_admin():
    import sqlalchemy as sa

    return sa.create_engine("postgresql+psycopg://" + POSTGRES.split("://", 1)[1])


def new_pg_schema(prefix: str = "t") -> str:
    """A PostgreSQL URL (the test database) whose tables land in a new, empty schema."""
    import sqlalchemy as sa

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    engine = _pg_admin()
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    _profile["schemas"].append(schema)
    return f"{POSTGRES}?options=-csearch_path%3D{schema}"


def pytest_configure(config):
    name = config.getoption("profile")
    _profile["name"] = name
    if name != "production":
        return
    for reason in (_redis_available(), _postgres_unavailable()):
        if reason:
            raise pytest.UsageError(f"--profile production needs its servers: {reason}")
    host, _, port = REDIS.partition(":")
    registry = new_pg_schema("registry_")
    os.environ["LIFECYCLE_REGISTRY_URL"] = "postgresql+psycopg://" + registry.split("://", 1)[1]
    # Its own database: the redis_server fixture flushes REDIS_DB when first used.
    os.environ["REDIS_CONNECTION_STRING"] = f"{host}:{port or 6379},db={PROFILE_REDIS_DB}"


def pytest_unconfigure(config):
    if production():
        import redis

        host, _, port = REDIS.partition(":")
        redis.Redis(host=host, port=int(port or 6379), db=PROFILE_REDIS_DB).flushdb()
    schemas = _profile["schemas"]
    if not schemas:
        return
    import sqlalchemy as sa

    engine = _pg_admin()
    with engine.begin() as conn:
        for schema in schemas:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def pytest_report_header(config):
    return f"store profile: {_profile['name']}"


def production() -> bool:
    return _profile["name"] == "production"


def set_project(text: str, project: str | None = None) -> str:
    """A Feast config's text with a new (unique by default) project name."""
    project = project or f"t{uuid.uuid4().hex[:10]}"
    return re.sub(r"(?m)^project: .*$", f"project: {project}", text)


def set_registry(text: str) -> str:
    """A production Feast config's text with its SQL registry in a new, empty schema.
    Feast's SQL registry reads every project in its tables on each refresh, so a
    registry shared by all the run's repos would slow every test down."""
    url = "postgresql+psycopg://" + new_pg_schema("registry_").split("://", 1)[1]
    pattern = r"(?m)^  path: (\$\{LIFECYCLE_REGISTRY_URL\}|postgresql\+psycopg://\S+)$"
    out, n = re.subn(pattern, f"  path: {url}", text)
    assert n == 1, text
    return out


def set_online_store(text: str, block: str) -> str:
    """A Feast config's text with its ``online_store:`` block replaced by ``block``."""
    out, n = re.subn(r"(?ms)^online_store:\n(?:[ #].*?\n)+", f"online_store:\n{block}\n", text)
    assert n == 1, text
    return out


def copy_example_repo(
    dest: Path, users: int | None = 300, seed: int = 3, experiments: bool = False
) -> Path:
    """The example repo's declarations in ``dest``; with example data when ``users`` is set.
    Without ``experiments`` the experiments are left out (predictions then have no arms).
    Its feature_store.yaml is the test profile's (a project of its own in production)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in EXAMPLE_REPO.iterdir():
        if item.name in ("data", "__pycache__") or (
            item.name == "experiments.py" and not experiments
        ):
            continue
        if item.is_file():
            shutil.copy(item, dest / item.name)
    if production():
        text = (EXAMPLE_REPO / "feature_store.production.yaml").read_text()
        (dest / "feature_store.yaml").write_text(set_registry(set_project(text)))
    if users:
        from framework.collect.example_data import write_example_data

        write_example_data(dest / "data", users=users, seed=seed)
    return dest


def redis_yaml(repo: Path) -> Path:
    """A Feast config for ``repo`` that uses the test Redis (unique project per call)."""
    host, _, port = REDIS.partition(":")
    text = set_project((repo / "feature_store.yaml").read_text())
    text = set_online_store(
        text, f'  type: redis\n  connection_string: "{host}:{port or 6379},db={REDIS_DB}"'
    )
    path = repo / "feature_store.redis-test.yaml"
    path.write_text(text)
    return path


def sqlite_yaml(repo: Path) -> Path:
    """A Feast config for ``repo`` with the SQLite online store in either profile."""
    text = set_project((repo / "feature_store.yaml").read_text())
    text = set_online_store(text, "  type: sqlite\n  path: data/online_store.db")
    path = repo / "feature_store.sqlite-test.yaml"
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
    from framework.declare.repo import FeatureRepo
    from framework.prepare.apply import apply

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
    from framework.declare.repo import FeatureRepo
    from framework.prepare.apply import register

    shutil.copytree(repo.path, dest)
    if production():  # the copy needs a registry of its own
        yaml = dest / "feature_store.yaml"
        yaml.write_text(set_registry(set_project(yaml.read_text())))
    copy = FeatureRepo(dest, fs_yaml(dest) if fs_yaml else None)
    register(copy)
    return copy


def _postgres_unavailable() -> str | None:
    try:
        import psycopg

        psycopg.connect(POSTGRES, connect_timeout=3).close()
        return None
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES} is not reachable ({type(exc).__name__}: {exc})"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL; skips with the reason when unreachable (fails when required)."""
    reason = _postgres_unavailable()
    if reason:
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
    from framework.deploy.service import create_app
    from framework.features.materialize import materialize
    from framework.models.registry import registry_of
    from framework.training.run import run_training

    repo = clone_repo(applied_repo, tmp_path_factory.mktemp("serve") / "repo")
    for name in ("churn", "spend"):
        run = run_training(repo, name)
        registry_of(repo).promote(name, run.artifact.version)
    materialize(repo, end=T)
    server, thread, url = serve_app(create_app(repo, max_entities=50))
    yield repo, url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def prediction_db(tmp_path) -> str:
    """The profile's prediction store, empty: a SQLite file, or a new PostgreSQL schema."""
    if production():
        return new_pg_schema()
    return f"sqlite:///{tmp_path / 'predictions.db'}"


def registry_state(repo_path: Path) -> bytes | None:
    """What the Feast registry of ``repo_path`` holds (None when nothing was registered):
    the registry file's bytes, or in production the project's objects read from SQL."""
    if not production():
        path = repo_path / "data" / "registry.db"
        return path.read_bytes() if path.exists() else None
    from framework.declare.repo import FeatureRepo

    store = FeatureRepo(repo_path).store
    registry, project = store.registry, store.config.project
    objects = [
        *registry.list_entities(project, allow_cache=False),
        *registry.list_data_sources(project, allow_cache=False),
        *registry.list_feature_views(project, allow_cache=False),
        *registry.list_on_demand_feature_views(project, allow_cache=False),
        *registry.list_feature_services(project, allow_cache=False),
    ]
    objects.sort(key=lambda o: (type(o).__name__, o.name))
    protos = [o.to_proto() for o in objects]
    for proto in protos:  # an on-demand view's function and request source are made anew
        spec = getattr(proto, "spec", None)  # on every read (data sources have no spec)
        fields = spec.DESCRIPTOR.fields_by_name if spec is not None else {}
        for name in ("feature_transformation", "sources") if "sources" in fields else ():
            spec.ClearField(name)
    return b"".join(p.SerializeToString(deterministic=True) for p in protos) or None
