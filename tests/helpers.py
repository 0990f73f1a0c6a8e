"""What tests share: the example repo's copies, the stores of the two profiles, and the
small helpers several test modules use (one copy each, instead of one per module).

Fixtures live in ``conftest.py``; everything a test imports by name lives here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import requests

ROOT = Path(__file__).resolve().parent.parent


EXAMPLE_REPO = ROOT / "feature_repo"


REDIS = os.environ.get("LIFECYCLE_TEST_REDIS", "127.0.0.1:6379")


REDIS_DB = 15


PROFILE_REDIS_DB = 14  # the production profile's online store (flushed after the run)


POSTGRES = os.environ.get("LIFECYCLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


PROFILES = ("embedded", "production")


PROFILE: dict = {"name": "embedded", "schemas": []}  # the schemas are dropped after the run


def pg_admin():
    import sqlalchemy as sa

    return sa.create_engine("postgresql+psycopg://" + POSTGRES.split("://", 1)[1])


def new_pg_schema(prefix: str = "t") -> str:
    """A PostgreSQL URL (the test database) whose tables land in a new, empty schema."""
    import sqlalchemy as sa

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    engine = pg_admin()
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    PROFILE["schemas"].append(schema)
    return f"{POSTGRES}?options=-csearch_path%3D{schema}"


def production() -> bool:
    return PROFILE["name"] == "production"


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
    # One idle connection per repo's registry (SQLAlchemy keeps 5 by default): a run
    # makes dozens of repos, and PostgreSQL takes 100 clients.
    out, n = re.subn(
        r"(?m)^    pool_pre_ping: true$", "    pool_pre_ping: true\n    pool_size: 1", out
    )
    assert n == 1, out
    return out


def set_online_store(text: str, block: str) -> str:
    """A Feast config's text with its ``online_store:`` block replaced by ``block``."""
    out, n = re.subn(r"(?ms)^online_store:\n(?:[ #].*?\n)+", f"online_store:\n{block}\n", text)
    assert n == 1, text
    return out


def copy_example_repo(
    dest: Path,
    users: int | None = 300,
    seed: int = 3,
    experiments: bool = False,
    catalogue: bool = False,
) -> Path:
    """The example repo's declarations in ``dest``; with example data when ``users`` is set.
    Without ``experiments`` the experiments are left out (predictions then have no arms);
    without ``catalogue`` the products (catalogue.py: a second entity and event source)
    are. Its feature_store.yaml is the test profile's (a project of its own in production)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in EXAMPLE_REPO.iterdir():
        if (
            item.name in ("data", "__pycache__")
            or (item.name == "experiments.py" and not experiments)
            or (item.name == "catalogue.py" and not catalogue)
        ):
            continue
        if item.is_file():
            shutil.copy(item, dest / item.name)
    if production():
        text = (EXAMPLE_REPO / "feature_store.production.yaml").read_text()
        (dest / "feature_store.yaml").write_text(set_registry(set_project(text)))
    if users:
        example_data().write_example_data(dest / "data", users=users, seed=seed)
    return dest


def example_data():
    """The example product's data generator (examples/example_data.py)."""
    from framework.common.scripts import load_script

    return load_script(ROOT / "examples" / "example_data.py", "lifecycle_example_data")


PAYMENTS_REPO = Path(__file__).resolve().parents[1] / "examples" / "payments" / "feature_repo"


def payments_generator():
    """The card-payments example's data generator (examples/payments/generate.py)."""
    import importlib.util

    path = PAYMENTS_REPO.parent / "generate.py"
    spec = importlib.util.spec_from_file_location("payments_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_payments_repo(dest: Path, cards: int | None = 60, seed: int = 1, days: int = 20) -> Path:
    """The card-payments example's declarations in ``dest`` (the test profile's
    feature_store.yaml), with its generated data when ``cards`` is set."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in PAYMENTS_REPO.iterdir():
        if item.is_file() and item.suffix in (".py", ".yaml"):
            shutil.copy(item, dest / item.name)
    if production():
        text = (PAYMENTS_REPO / "feature_store.production.yaml").read_text()
        (dest / "feature_store.yaml").write_text(set_registry(set_project(text)))
    if cards:
        payments_generator().write_payments(
            dest / "data", cards=cards, merchants=12, days=days, seed=seed
        )
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


SPARK_OFFLINE = """offline_store:
  type: spark
  spark_conf:
    spark.master: "local[2]"
    spark.sql.shuffle.partitions: "4"
    spark.default.parallelism: "2"
    spark.driver.memory: "1g"
batch_engine:
  type: spark.engine
"""


def spark_yaml(repo: Path) -> Path:
    """The Spark profile of ``repo``: its feature_store.yaml (the test profile's online
    store and registry) with Feast's Spark offline store and engine, in local[2] mode."""
    text = (repo / "feature_store.yaml").read_text()
    out, n = re.subn(r"(?m)^offline_store:\n  type: duckdb\n", SPARK_OFFLINE, text)
    assert n == 1, text
    path = repo / "feature_store.spark-test.yaml"
    path.write_text(out)
    return path


def spark_unavailable() -> str | None:
    """Why the Spark tests cannot run here (None: they can)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -c constraints.txt -e '.[dev,spark]')"
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "no Java runtime on PATH (Spark needs Java 17: openjdk-17-jre-headless)"
    return None


def redis_unavailable() -> str | None:
    try:
        import redis

        host, _, port = REDIS.partition(":")
        redis.Redis(host=host, port=int(port or 6379), db=REDIS_DB, socket_timeout=2).ping()
        return None
    except Exception as exc:  # any failure means: no usable server
        return f"Redis at {REDIS} is not reachable ({type(exc).__name__}: {exc})"


def clone_repo(repo, dest: Path, fs_yaml=None, leave_out: tuple[str, ...] = ()):
    """A copy of an applied repo whose registry points at the copy's own tables;
    ``leave_out``: file name patterns not copied (say, a database a server is writing)."""
    from framework.declare.repo import FeatureRepo
    from framework.prepare.apply import register

    shutil.copytree(repo.path, dest, ignore=shutil.ignore_patterns(*leave_out))
    if production():  # the copy needs a registry of its own
        yaml = dest / "feature_store.yaml"
        yaml.write_text(set_registry(set_project(yaml.read_text())))
    copy = FeatureRepo(dest, fs_yaml(dest) if fs_yaml else None)
    register(copy)
    return copy


def postgres_unavailable() -> str | None:
    try:
        import psycopg

        psycopg.connect(POSTGRES, connect_timeout=3).close()
        return None
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES} is not reachable ({type(exc).__name__}: {exc})"


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


# Shared by several test modules.


def register_copy(repo, problem: str) -> str:
    """Register the production model of ``problem`` again, as a new candidate version
    (what a retraining on the same data gives, without the training time)."""
    from framework.models.registry import registry_of

    registry = registry_of(repo)
    current = registry.get(problem)
    meta = current.meta.with_(version="", sha256="")
    return registry.register(current.load_model(), meta).version


def user_ids(repo, n: int | None = None) -> list[int]:
    """The example repo's user ids (the first ``n``)."""
    ids = pd.read_parquet(repo.data_dir / "users.parquet").user_id
    return (ids if n is None else ids.head(n)).tolist()


def cli(repo, *args):
    """``lifecycle --repo REPO ARGS`` through click's test runner."""
    from click.testing import CliRunner

    from framework.cli import main

    return CliRunner().invoke(main, ["--repo", str(repo.path), *map(str, args)])


def post_predict(url: str, ids: list[int], problem: str = "churn", at=None) -> requests.Response:
    """One ``POST /predict`` for ``ids`` with their request time (default: ``T``)."""
    stamp = int((T if at is None else at).timestamp())
    body = {"problem": problem, "entities": [{"user_id": u, "event_timestamp": stamp} for u in ids]}
    return requests.post(f"{url}/predict", json=body, timeout=60)


def predict_all(url: str, problem: str, ids: list[int], at=None) -> list[dict]:
    """The predictions of every id, 50 per request; every answer must be a 200."""
    out = []
    for lo in range(0, len(ids), 50):
        response = post_predict(url, ids[lo : lo + 50], problem, at)
        assert response.status_code == 200, response.text
        out += response.json()["predictions"]
    return out


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """``GET /metrics``, parsed: sample name -> {sorted label pairs: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    response = requests.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def current_features(repo, folder: Path, shift: str | None = None):
    """Point-in-time churn features of every user at four weekly times before ``T``, with
    ``shift`` (a feature) moved by x4 + 6; written to ``folder/current.parquet``."""
    from framework.features.historical import get_historical_features

    ids = user_ids(repo)
    at = [T - pd.Timedelta(days=d) for d in (0, 7, 14, 21)]
    rows = pd.DataFrame(
        {"user_id": np.repeat(ids, len(at)), "event_timestamp": np.tile(at, len(ids))}
    )
    frame = get_historical_features(repo, rows, "churn_model_v1")
    if shift:
        frame[shift] = frame[shift] * 4 + 6
    path = folder / "current.parquet"
    frame.to_parquet(path)
    return path, frame


def with_row(df, row: int, **values):
    df = df.copy()
    for column, value in values.items():
        df.iloc[row, df.columns.get_loc(column)] = value
    return df


def with_naive(df):
    df["event_timestamp"] = df.event_timestamp.dt.tz_localize(None)
    return df


def with_null_key(df):
    df["user_id"] = df.user_id.astype("Int64")
    df.loc[3, "user_id"] = pd.NA
    return df


BAD_EVENTS = [
    (lambda df: df.drop(columns=["source"]), "missing column(s) ['source']"),
    (lambda df: df.assign(extra=1), "unexpected column(s) ['extra']"),
    (
        lambda df: df.assign(user_id=df.user_id.astype(str)),
        "'user_id' has type string; it must hold integers",
    ),
    (lambda df: df.assign(amount=df.amount.astype(str)), "'amount' has type string"),
    (with_naive, "timezone-naive"),
    (with_null_key, "user_id is missing: 1 row(s)"),
    (lambda df: with_row(df, 1, amount=-5.0), "amount below 0: 1 row(s), e.g. row 2"),
    (
        lambda df: with_row(
            df, 2, event_timestamp=pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
        ),
        "event_timestamp in the future",
    ),
    (lambda df: with_row(df, 0, event_type="pageview"), "unknown event_type: 1 row(s)"),
    (lambda df: with_row(df, 0, source="tiktok"), "unknown source"),
    (lambda df: df.head(0), "is empty"),
]


def batch_runs(url: str, as_of) -> pd.DataFrame:
    """The rows of the run(s) at ``as_of`` (every column, the key columns too), read
    through the table as the database reflects it."""
    import sqlalchemy as sa

    from framework.deploy.prediction_log import engine_url

    engine = sa.create_engine(engine_url(url))
    table = sa.Table("predictions", sa.MetaData(), autoload_with=engine)
    query = (
        sa.select(table)
        .where(table.c.as_of == pd.Timestamp(as_of).to_pydatetime())
        .order_by(table.c.entity_id)
    )
    with engine.connect() as conn:
        result = conn.execute(query)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    engine.dispose()
    return frame


class TcpSwitch:
    """A TCP proxy on loopback to ``target`` that can be switched off (every connection
    dropped, new ones refused) and on again, on the same port: a database that becomes
    unreachable for a while."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.on()

    def url(self, postgres_url: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(postgres_url)
        return postgres_url.replace(parts.netloc, f"{parts.username}@127.0.0.1:{self.port}")

    def on(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def off(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(OSError):  # wakes the accepting thread (Linux)
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
