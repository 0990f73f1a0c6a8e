"""Shared fixtures: small copies of the example repo, and the stores they use.

Redis-backed tests use the server at LIFECYCLE_TEST_REDIS (default
127.0.0.1:6379, database 15, which the tests flush). Without a server they skip
with the reason shown by ``pytest -ra``; CI sets LIFECYCLE_REQUIRE_REDIS=1 so
that a missing server fails the run instead.

Profiles: ``pytest`` runs every test on the embedded profile (file registry, SQLite
online store, SQLite prediction store). ``pytest --profile production`` runs again the
tests marked ``stores`` (those that touch a feature store, the registry, a database or
the service) on the production profile: every example repo a test makes uses
``feature_repo/feature_store.production.yaml`` (the Feast registry in PostgreSQL, in a
schema of its own per repo, and Redis as online store), and the ``prediction_db``
fixture is a fresh PostgreSQL schema instead of a SQLite file. The rest would run the
same code twice. A test takes the marker from a store fixture it uses, or declares it
(``pytestmark = pytest.mark.stores``); an unmarked test that opens a Feast store, a
database engine, Redis or PostgreSQL fails (``_store_guard``), so the production run
cannot miss one.

Under CI (``CI`` set) a skipped test fails the run: there every server and tool is
there, so a skip is a bug.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.helpers import (
    POSTGRES,
    PROFILE,
    PROFILE_REDIS_DB,
    PROFILES,
    REDIS,
    REDIS_DB,
    T,
    clone_repo,
    copy_example_repo,
    new_pg_schema,
    pg_admin,
    postgres_unavailable,
    production,
    redis_unavailable,
    serve_app,
    spark_unavailable,
)


def pytest_addoption(parser):
    parser.addoption(
        "--profile",
        choices=PROFILES,
        default="embedded",
        help="Store profile of the example repos the tests make: embedded (files, SQLite) or "
        "production (Redis online store, Feast registry and prediction store in PostgreSQL).",
    )


def pytest_configure(config):
    # Models are signed (framework.models.signing): one key for the whole run, its
    # processes included, instead of a key file made in the user's home.
    os.environ.setdefault("LIFECYCLE_MODEL_KEY", f"tests-{uuid.uuid4().hex}")
    # the promotions each registry has seen (framework.models.registry): the run's own
    import tempfile

    os.environ.setdefault("LIFECYCLE_STATE_DIR", tempfile.mkdtemp(prefix="lifecycle-state-"))
    name = config.getoption("profile")
    PROFILE["name"] = name
    if name != "production":
        return
    for reason in (redis_unavailable(), postgres_unavailable()):
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
    schemas = PROFILE["schemas"]
    if not schemas:
        return
    import sqlalchemy as sa

    engine = pg_admin()
    with engine.begin() as conn:
        for schema in schemas:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


# fixtures that hand a test a store, a registry, a database or a server
STORE_FIXTURES = frozenset(
    {
        "applied_repo",
        "fresh_repo",
        "trained_repo",
        "trained_copy",
        "served",
        "prediction_db",
        "redis_server",
        "postgres_url",
        "spark_runtime",
    }
)


def pytest_collection_modifyitems(config, items):
    """Every test that needs trained models or Spark is ``slow`` (and a few others over
    8 s, marked where they are): ``pytest -m "not slow"`` is the fast subset
    (declarations, checks, window tables, retrieval, the CLI's refusals).
    A test using a store fixture is ``stores``; the production profile runs only those."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"trained_repo", "spark_runtime"}:  # trains models, or starts Spark
            item.add_marker(pytest.mark.slow)
        if names & STORE_FIXTURES:
            item.add_marker(pytest.mark.stores)
    if production():
        keep = [i for i in items if i.get_closest_marker("stores")]
        dropped = [i for i in items if not i.get_closest_marker("stores")]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep


SKIPPED: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") and SKIPPED and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if os.environ.get("CI") and SKIPPED:
        terminalreporter.write_line(
            f"CI: {len(SKIPPED)} test(s) skipped; under CI every skip is a bug "
            f"(the run fails): {SKIPPED[:10]}",
            red=True,
        )


@pytest.fixture(autouse=True)
def _store_guard(request, monkeypatch):
    """An unmarked test must not touch a store (see the module docstring)."""
    if request.node.get_closest_marker("stores"):
        yield
        return
    import psycopg
    import redis.connection
    import sqlalchemy

    from framework.declare.repo import FeatureRepo

    def refuse(what):
        def fail(*_args, **_kwargs):
            pytest.fail(
                f"{request.node.nodeid} opens {what} but is not marked stores: add "
                "`pytestmark = pytest.mark.stores` (or use a store fixture) so that the "
                "production profile runs it too.",
                pytrace=False,
            )

        return fail

    monkeypatch.setattr(FeatureRepo, "store", property(refuse("a Feast feature store")))
    monkeypatch.setattr(sqlalchemy, "create_engine", refuse("a database engine"))
    monkeypatch.setattr(redis.connection.AbstractConnection, "connect", refuse("Redis"))
    monkeypatch.setattr(psycopg, "connect", refuse("PostgreSQL"))
    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(refuse("PostgreSQL")))
    yield


def pytest_report_header(config):
    return f"store profile: {PROFILE['name']}"


@pytest.fixture(scope="session")
def redis_server() -> str:
    reason = redis_unavailable()
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
def spark_runtime() -> None:
    """pyspark and Java are here; skips with the reason otherwise (fails when
    LIFECYCLE_REQUIRE_SPARK is set, as in CI)."""
    reason = spark_unavailable()
    if reason:
        if os.environ.get("LIFECYCLE_REQUIRE_SPARK"):
            pytest.fail(f"LIFECYCLE_REQUIRE_SPARK is set but {reason}")
        pytest.skip(reason)


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


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL; skips with the reason when unreachable (fails when required)."""
    reason = postgres_unavailable()
    if reason:
        if os.environ.get("LIFECYCLE_REQUIRE_POSTGRES"):
            pytest.fail(f"LIFECYCLE_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    return POSTGRES


@pytest.fixture(scope="session")
def trained_repo(applied_repo, tmp_path_factory):
    """The small repo with both problems trained and promoted, materialized at ``T``:
    built once per session, read-only. Returns (repo, {problem: TrainingRun}).
    A module that changes models, stages or the store takes ``trained_copy``."""
    from framework.features.materialize import materialize
    from framework.models.registry import registry_of
    from framework.training.run import run_training

    repo = clone_repo(applied_repo, tmp_path_factory.mktemp("trained") / "repo")
    runs = {}
    for name in ("churn", "spend"):
        runs[name] = run_training(repo, name)
        registry_of(repo).promote(name, runs[name].artifact.version)
    materialize(repo, end=T)
    return repo, runs


@pytest.fixture(scope="module")
def trained_copy(trained_repo, tmp_path_factory):
    """A module's own copy of the trained repo: the same models and stages, its own
    registry, online store (loaded at ``T``) and data folder."""
    from framework.features.materialize import materialize

    repo = clone_repo(trained_repo[0], tmp_path_factory.mktemp("copy") / "repo")
    materialize(repo, end=T)  # a copy's online store is its own (a new project in production)
    return repo


@pytest.fixture(scope="module")
def served(trained_copy):
    """The module's trained copy, served on a loopback port: (repo, base URL)."""
    from framework.deploy.service import create_app

    server, thread, url = serve_app(create_app(trained_copy, max_entities=50))
    yield trained_copy, url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def prediction_db(tmp_path) -> str:
    """The profile's prediction store, empty: a SQLite file, or a new PostgreSQL schema."""
    if production():
        return new_pg_schema()
    return f"sqlite:///{tmp_path / 'predictions.db'}"
