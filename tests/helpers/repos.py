"""Copies of the example repos for a test: declarations, the profile's feature_store.yaml,
generated data; clones of an applied repo; other Feast configs of a copy."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from tests.helpers.stores import REDIS, REDIS_DB, new_pg_schema, production

ROOT = Path(__file__).resolve().parents[2]


EXAMPLE_REPO = ROOT / "feature_repo"


PAYMENTS_REPO = ROOT / "examples" / "payments" / "feature_repo"


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


def example_data():
    """The example product's data generator (examples/example_data.py)."""
    from framework.common.scripts import load_script

    return load_script(ROOT / "examples" / "example_data.py", "lifecycle_example_data")


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


TINY_REPOS = ROOT / "tests" / "example_repos"


def newsletter_events(subscribers: int = 120, days: int = 150, seed: int = 0):
    """The newsletter's mail events: opens, clicks and unsubscribes of string-keyed
    subscribers, whole-second times (ties happen); the less a subscriber reads, the likelier
    it leaves."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    end = pd.Timestamp("2025-06-01", tz="UTC")
    rows = []
    for i in range(subscribers):
        interest = rng.beta(2, 2)
        leaves = rng.random() < 0.6 * (1 - interest)
        last = rng.integers(30, days) if leaves else days
        n = rng.poisson(interest * last * 0.8) + 1
        at = end - pd.to_timedelta(days - rng.integers(0, last * 86_400, n) / 86_400, unit="D")
        kind = rng.choice(["open", "click"], n, p=[0.75, 0.25])
        client = rng.choice(["app", "web"], n)
        seconds = rng.gamma(2.0, 20.0, n).round(1)
        rows.append(
            pd.DataFrame(
                {
                    "subscriber": f"s{i:03d}",
                    "sent_at": at.floor("s"),
                    "kind": kind,
                    "client": client,
                    "seconds": seconds,
                }
            )
        )
        if leaves:
            gone = end - pd.Timedelta(days=days - int(last))
            rows.append(
                pd.DataFrame(
                    {
                        "subscriber": [f"s{i:03d}"],
                        "sent_at": [gone],
                        "kind": ["unsubscribe"],
                        "client": ["web"],
                        "seconds": [0.0],
                    }
                )
            )
    frame = pd.concat(rows, ignore_index=True).sort_values("sent_at", kind="stable")
    return frame.reset_index(drop=True)


def copy_tiny_repo(dest: Path, name: str = "newsletter", **data) -> Path:
    """A single-file repo of ``tests/example_repos/NAME.py`` in ``dest``, on the test
    profile's stores, with its generated data."""
    from framework.declare.scaffold import init_repo

    init_repo(dest)  # feature_store.yaml on the embedded stores, as `lifecycle init` writes it
    shutil.copy(TINY_REPOS / f"{name}.py", dest / f"{name}.py")
    yaml = dest / "feature_store.yaml"
    if production():
        text = (EXAMPLE_REPO / "feature_store.production.yaml").read_text()
        yaml.write_text(set_registry(set_project(text)))
    else:
        yaml.write_text(set_project(yaml.read_text()))
    events = {"newsletter": newsletter_events}[name](**data)
    events.to_parquet(dest / "data" / "mail_events.parquet", index=False)
    return dest
