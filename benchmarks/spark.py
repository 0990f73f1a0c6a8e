"""The Spark profile against the single-machine path, on the same data, in the same run.

For each size (events of the example product, generated once under benchmarks/_work/),
two copies of the repo read the same files: one on the embedded profile (DuckDB,
numpy), one on the Spark profile (Feast's Spark offline store and engine, local[2]).
Each profile runs in a child process of its own, so that each reports its own peak
memory (the Python driver's peak RSS; on Spark the JVM and the Python workers are
other processes, whose peak RSS is sampled), and both measure:

- build: ``lifecycle apply``'s window table of ``user_activity`` (21 windowed features);
- retrieval: point-in-time features of ``churn_model_v1`` for 1M entity rows;
- materialize: every online view as of the last event, window states included;
- predict: batch scores of ``churn`` for its population, written to SQLite.

Spark's start-up (the JVM and a first tiny job) is timed apart and not in the steps.

    .venv/bin/python benchmarks/spark.py                          # 1M, 10M and 50M events
    .venv/bin/python benchmarks/spark.py --sizes 1000000 --rows 100000

Machines are shared and noisy: read the ratios and the costs per event.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work" / "spark"
EVENTS_PER_USER = 111  # the example generator's rate, measured
SPARK_YAML = """project: bench_spark
provider: local
registry: data/registry.db
offline_store:
  type: spark
  spark_conf:
    spark.master: "local[2]"
    spark.driver.memory: "6g"
    spark.sql.shuffle.partitions: "16"
batch_engine:
  type: spark.engine
online_store:
  type: sqlite
  path: data/online_store.db
entity_key_serialization_version: 3
"""


def _repos(size: int) -> tuple[Path, Path]:
    """Two copies of the example repo's declarations over one set of data files."""
    from framework.common.scripts import load_script

    example = Path(__file__).resolve().parents[1] / "examples" / "example_data.py"
    write_example_data = load_script(example, "lifecycle_example_data").write_example_data

    base = WORK / f"e{size}"
    data = base / "data"
    if not (data / "events.parquet").exists():
        write_example_data(data, users=max(size // EVENTS_PER_USER, 10), seed=1)
    out = []
    for name in ("single", "spark"):
        repo = base / name / "feature_repo"
        (repo / "data").mkdir(parents=True, exist_ok=True)
        for item in (ROOT / "feature_repo").iterdir():
            if item.is_file() and item.name not in ("catalogue.py", "experiments.py"):
                shutil.copy(item, repo / item.name)
        for file in ("events.parquet", "users.parquet"):
            link = repo / "data" / file
            if not link.exists():
                link.symlink_to(data / file)
        if name == "spark":
            (repo / "feature_store.yaml").write_text(SPARK_YAML)
        out.append(repo)
    return out[0], out[1]


CHILD = r"""
import json, os, sys, threading, time
import numpy as np, pandas as pd
path, models = sys.argv[1], sys.argv[3]
from framework.declare.repo import FeatureRepo
from framework.prepare.apply import apply, build_tables
from framework.features.historical import get_historical_features
from framework.features.materialize import materialize
from framework.deploy.batch import predict_batch

peak_children = [0]
peak_self = [0]
def sample():  # peak RSS of this process, and of the JVM and Python workers (its children)
    import psutil
    me = psutil.Process()
    while True:
        peak_self[0] = max(peak_self[0], me.memory_info().rss)
        total = 0
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        peak_children[0] = max(peak_children[0], total)
        time.sleep(0.2)
threading.Thread(target=sample, daemon=True).start()

repo = FeatureRepo(path)
out = {}

def shuffled():  # bytes written to shuffle so far (Spark's REST API of its UI)
    if not repo.spark:
        return 0
    import requests
    from framework.common.spark import spark_session
    sc = spark_session(repo.store.config).sparkContext
    url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages"
    return sum(st.get("shuffleWriteBytes", 0) for st in requests.get(url, timeout=30).json())

t0 = time.perf_counter()
if repo.spark:
    from framework.common.spark import spark_session
    spark_session(repo.store.config).range(10).count()
out["startup_s"] = time.perf_counter() - t0
spec = next(s for s in repo.declared_window_specs if s.name == "user_activity")
apply(repo)  # checks, every table, registration (the other tables are small)
s0 = shuffled()
t0 = time.perf_counter()
if repo.spark:
    from framework.prepare.window_tables_spark import build_window_table_spark
    from framework.common.spark import spark_session
    stats = build_window_table_spark(spec, spark_session(repo.store.config))
else:
    from framework.prepare.window_tables import build_window_table
    stats = build_window_table(spec)
out["build_s"] = time.perf_counter() - t0
s1 = shuffled(); out["build_shuffle_mb"] = (s1 - s0) / 2**20
out["events"], out["table_rows"] = stats.events, stats.rows
rows = pd.read_parquet(sys.argv[4])  # the entity rows (made by the parent, once)
hi = pd.Timestamp(sys.argv[5])  # the last event
t0 = time.perf_counter()
frame = get_historical_features(repo, rows, "churn_model_v1")
out["retrieval_s"] = time.perf_counter() - t0
s2 = shuffled(); out["retrieval_shuffle_mb"] = (s2 - s1) / 2**20
out["retrieval_rows"] = len(frame)
out["retrieval_checksum"] = float(frame["user_events_count_30d"].sum())
del frame
t0 = time.perf_counter()
result = materialize(repo, end=hi)
out["materialize_s"] = time.perf_counter() - t0
s3 = shuffled(); out["materialize_shuffle_mb"] = (s3 - s2) / 2**20
out["materialized"] = sum(result.rows.values())
import shutil
from pathlib import Path
target = Path(path) / "data" / "models"
if not target.exists():
    shutil.copytree(models, target)
db = f"sqlite:///{path}/data/bench-predictions.db"
t0 = time.perf_counter()
run = predict_batch(repo, "churn", hi, db=db)
out["predict_s"] = time.perf_counter() - t0
out["predict_shuffle_mb"] = (shuffled() - s3) / 2**20
out["predicted"] = run.rows
import sqlalchemy as sa
engine = sa.create_engine(db)
with engine.connect() as conn:
    out["score_sum"] = float(conn.execute(sa.text(
        "SELECT sum(score) FROM predictions WHERE run_id = :r"), {"r": run.run_id}).scalar())
# sampled, not ru_maxrss: a child started by fork + exec inherits the parent's RSS at
# the fork in ru_maxrss (the parent may just have generated 50M events)
out["peak_driver_mb"] = peak_self[0] / 2**20
out["peak_children_mb"] = peak_children[0] / 2**20
print("RESULT " + json.dumps(out))
"""


def _models(size: int, single: Path) -> Path:
    """A churn model trained once on the smallest size, used by every run."""
    models = WORK / "models"
    if models.exists():
        return models
    from framework.declare.repo import FeatureRepo
    from framework.models.registry import registry_of
    from framework.prepare.apply import apply
    from framework.training.run import run_training

    repo = FeatureRepo(single)
    apply(repo)
    run = run_training(repo, "churn")
    registry_of(repo).promote("churn", run.artifact.version)
    shutil.copytree(single / "data" / "models", models)
    return models


def _entity_rows(size: int, n: int) -> tuple[Path, str]:
    """``n`` random (user, time) rows over the log's span, written once; the last event."""
    import numpy as np
    import pandas as pd

    events = pd.read_parquet(
        WORK / f"e{size}" / "data" / "events.parquet", columns=["user_id", "event_timestamp"]
    )
    lo, hi = events.event_timestamp.min(), events.event_timestamp.max()
    path = WORK / f"e{size}" / f"rows-{n}.parquet"
    if not path.exists():
        rng = np.random.default_rng(0)
        span = int((hi - lo).total_seconds())
        pd.DataFrame(
            {
                "user_id": rng.choice(events.user_id.unique(), n),
                "event_timestamp": lo + pd.to_timedelta(rng.integers(0, span, n), unit="s"),
            }
        ).to_parquet(path)
    return path, hi.isoformat()


def _child(path: Path, rows: tuple[Path, str], models: Path) -> dict:
    env = {**os.environ, "LIFECYCLE_MODEL_KEY": os.environ.get("LIFECYCLE_MODEL_KEY", "bench")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "", str(models), str(rows[0]), rows[1]],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode or not lines:
        raise SystemExit(f"{path} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000,50000000")
    parser.add_argument("--rows", type=int, default=1_000_000, help="entity rows retrieved")
    args = parser.parse_args()
    os.environ.setdefault("LIFECYCLE_MODEL_KEY", "bench")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores")
    results = []
    models = None
    for size in [int(s) for s in args.sizes.split(",")]:
        single, spark = _repos(size)
        models = models or _models(size, single)
        rows = _entity_rows(size, args.rows)
        a = _child(single, rows, models)
        b = _child(spark, rows, models)
        for key in ("events", "table_rows", "retrieval_rows", "materialized", "predicted"):
            assert a[key] == b[key], (key, a[key], b[key])
        for key in ("retrieval_checksum", "score_sum"):
            assert abs(a[key] - b[key]) <= 1e-9 * max(1.0, abs(a[key])), (key, a[key], b[key])
        results.append((size, a, b))
        n = a["events"]
        print(
            f"\n{n:,} events ({a['predicted']:,} users scored), Spark start-up "
            f"{b['startup_s']:.1f} s (not counted)"
        )
        print(
            f"{'step':<12} {'DuckDB s':>9} {'Spark s':>9} {'Spark/DuckDB':>12} "
            f"{'DuckDB ns/event':>15} {'Spark ns/event':>14}"
        )
        for step in ("build", "retrieval", "materialize", "predict"):
            x, y = a[f"{step}_s"], b[f"{step}_s"]
            print(
                f"{step:<12} {x:9.2f} {y:9.2f} {y / x:12.2f} {x / n * 1e9:15.0f} "
                f"{y / n * 1e9:14.0f}"
            )
        moved = ", ".join(
            f"{step} {b[step + '_shuffle_mb']:,.0f}"
            for step in ("build", "retrieval", "materialize", "predict")
        )
        print(f"Spark shuffle written (MB): {moved}")
        print(
            f"peak memory: DuckDB process {a['peak_driver_mb']:,.0f} MB; Spark driver "
            f"(Python) {b['peak_driver_mb']:,.0f} MB, JVM + Python workers "
            f"{b['peak_children_mb']:,.0f} MB"
        )
    print("\nJSON " + json.dumps([{"size": s, "duckdb": a, "spark": b} for s, a, b in results]))


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"\n(total {time.perf_counter() - t:.0f} s)")
