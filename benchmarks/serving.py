"""Benchmark online prediction against stock `feast serve`, and batch prediction writes.

Online: on one repo (the example product, 10,000 users, churn trained and
promoted, materialized), this script starts in child processes on loopback
`lifecycle serve` (POST /predict: online features, preprocessing, the model and
the prediction log) and stock `feast serve --max-requests 10000000` (POST
/get-online-features of the same feature service, nothing else). One client
connection sends requests one after the other, alternating between the two
servers in rounds so that both see the same machine load. It prints p50/p99
latency and requests/s for 1 and for 100 entities per request, and the ratios.

Batch: on a repo of 100,000 users (about 11M events) with the same model,
`predict_batch` of every user into SQLite and into PostgreSQL (rows/s), beside
the same rows written by pandas `to_sql` into the same database.

    .venv/bin/python benchmarks/serving.py
    .venv/bin/python benchmarks/serving.py --requests 2000 --postgres postgresql://postgres@127.0.0.1:5432/test

Machines are shared and noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"
BIN = Path(sys.executable).parent
warnings.filterwarnings("ignore")


def _repo(name: str, users: int, models_from: Path | None = None):
    """The example repo's declarations (no experiment), its data (made once), applied."""
    from framework.common.scripts import load_script

    example = Path(__file__).resolve().parents[1] / "examples" / "example_data.py"
    write_example_data = load_script(example, "lifecycle_example_data").write_example_data
    from framework.declare.repo import FeatureRepo
    from framework.prepare.apply import apply

    path = WORK / name / "feature_repo"
    path.mkdir(parents=True, exist_ok=True)
    for item in (ROOT / "feature_repo").iterdir():
        if item.is_file() and item.name != "experiments.py":
            shutil.copy(item, path / item.name)
    (path / "experiments.py").unlink(missing_ok=True)
    if not (path / "data" / "events.parquet").exists():
        write_example_data(path / "data", users=users, seed=1)
    repo = FeatureRepo(path)
    apply(repo)
    if models_from is not None and not (path / "data" / "models").exists():
        shutil.copytree(models_from, path / "data" / "models")
    return repo


def _prepare_online(users: int):
    from framework.features.materialize import materialize
    from framework.models.registry import registry_of
    from framework.training.run import run_training

    repo = _repo("serving", users)
    registry = registry_of(repo)
    if not registry.versions("churn"):
        run = run_training(repo, "churn")
        registry.promote("churn", run.artifact.version)
    events = pd.read_parquet(repo.data_dir / "events.parquet", columns=["event_timestamp"])
    end = events.event_timestamp.max()
    materialize(repo, end=end)
    return repo, end


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(port: int, path: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            conn.getresponse()  # any answer means it listens (/health may say "degraded")
            return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not start")


class Client:
    """One keep-alive connection that POSTs JSON and times each request."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.path = path
        self.times: list[float] = []
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.connect()
        # http.client sends headers and body in separate writes: without TCP_NODELAY,
        # Nagle's algorithm and delayed ACKs add 40 ms to some requests, whatever the server.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def reconnect(self) -> None:
        """A fresh connection (servers close idle keep-alive connections after a few seconds)."""
        self.conn.close()
        self.conn = self._connect()

    def post(self, body: bytes) -> None:
        t0 = time.perf_counter()
        self.conn.request("POST", self.path, body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        self.times.append(time.perf_counter() - t0)
        if response.status != 200:
            raise SystemExit(f"{self.path} answered {response.status}: {data[:300]!r}")


def bench_online(repo, end, requests: int, rounds: int) -> list[dict]:
    log_db = WORK / "serving" / "prediction_log.db"
    log_db.unlink(missing_ok=True)
    ours_port, feast_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ours = subprocess.Popen(
        [
            BIN / "lifecycle",
            "--repo",
            repo.path,
            "serve",
            "--port",
            str(ours_port),
            "--db",
            f"sqlite:///{log_db}",
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    feast = subprocess.Popen(
        [
            BIN / "feast",
            "-c",
            repo.path,
            "serve",
            "--port",
            str(feast_port),
            "--max-requests",
            "10000000",
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = []
    try:
        _wait(ours_port, "/health", ours)
        _wait(feast_port, "/health", feast)
        users = pd.read_parquet(
            repo.data_dir / "users.parquet", columns=["user_id"]
        ).user_id.to_numpy()
        rng = np.random.default_rng(0)
        at = int(end.timestamp()) + 3600  # an hour after the materialization: windows slid
        for size in (1, 100):
            clients = {
                "ours": Client(ours_port, "/predict"),
                "feast": Client(feast_port, "/get-online-features"),
            }

            def bodies(n: int, size: int = size):
                for _ in range(n):
                    ids = [int(u) for u in rng.choice(users, size, replace=False)]
                    ours_body = {
                        "problem": "churn",
                        "entities": [{"user_id": u, "event_timestamp": at} for u in ids],
                    }
                    feast_body = {
                        "feature_service": "churn_model_v1",
                        "entities": {"user_id": ids, "event_timestamp": [at] * size},
                    }
                    yield json.dumps(ours_body).encode(), json.dumps(feast_body).encode()

            for ours_body, feast_body in bodies(50):  # warm up both (imports, caches)
                clients["ours"].post(ours_body)
                clients["feast"].post(feast_body)
            for c in clients.values():
                c.times.clear()
            walls = {"ours": 0.0, "feast": 0.0}
            per_round = requests // rounds
            for r in range(rounds):
                pairs = list(bodies(per_round))
                order = ("ours", "feast") if r % 2 == 0 else ("feast", "ours")
                for name in order:
                    clients[name].reconnect()
                    clients[name].post(pairs[0][0] if name == "ours" else pairs[0][1])  # connect
                    clients[name].times.pop()
                    t0 = time.perf_counter()
                    for pair in pairs:
                        clients[name].post(pair[0] if name == "ours" else pair[1])
                    walls[name] += time.perf_counter() - t0
            for name, c in clients.items():
                t = np.array(c.times) * 1000
                results.append(
                    {
                        "server": name,
                        "entities": size,
                        "requests": len(t),
                        "p50_ms": float(np.percentile(t, 50)),
                        "p99_ms": float(np.percentile(t, 99)),
                        "rps": len(t) / walls[name],
                    }
                )
    finally:
        for proc in (ours, feast):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{log_db}")
    with engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT COUNT(*) FROM prediction_log")).scalar_one()
    engine.dispose()
    sent = sum(r["requests"] * r["entities"] for r in results if r["server"] == "ours")
    print(f"prediction log: {logged:,} rows for {sent:,} scored entities (+ warm-up)")
    return results


def bench_batch(repo, db: str, label: str) -> dict:
    import sqlalchemy as sa

    from framework.common.database import engine_url
    from framework.deploy.batch import predict_batch

    events = pd.read_parquet(repo.data_dir / "events.parquet", columns=["event_timestamp"])
    as_of = events.event_timestamp.max()
    predict_batch(repo, "churn", as_of, db=db)  # warm: indexes, model, table
    t0 = time.perf_counter()
    run = predict_batch(repo, "churn", as_of, db=db)
    ours = time.perf_counter() - t0
    # Baseline: the same rows written by pandas to_sql (multi-row INSERTs) into a scratch table.
    frame = pd.DataFrame(
        {
            "run_id": run.run_id,
            "problem": "churn",
            "model_version": run.model_version,
            "entity_id": np.arange(run.rows, dtype=np.int64),
            "as_of": as_of,
            "score": np.random.default_rng(0).random(run.rows),
            "label": 0,
            "created_at": pd.Timestamp.now(tz="UTC"),
        }
    )
    engine = sa.create_engine(engine_url(db))
    t0 = time.perf_counter()
    frame.to_sql(
        "predictions_baseline",
        engine,
        if_exists="replace",
        index=False,
        method="multi",
        chunksize=2_000,
    )
    base = time.perf_counter() - t0
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE predictions_baseline"))
    engine.dispose()
    return {
        "db": label,
        "rows": run.rows,
        "seconds": ours,
        "rows_per_s": run.rows / ours,
        "to_sql_rows_per_s": run.rows / base,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--requests", type=int, default=1_000, help="timed requests per size and server"
    )
    parser.add_argument("--rounds", type=int, default=10, help="alternations between the servers")
    parser.add_argument("--users", type=int, default=10_000, help="users of the online repo")
    parser.add_argument("--batch-users", type=int, default=100_000, help="users of the batch repo")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[],
        help="also measure `lifecycle serve --workers N` for these N under 16 clients",
    )
    parser.add_argument("--workers-seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    from importlib.metadata import version

    print(
        f"# serving benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, Feast {version('feast')}"
    )
    out: dict = {}
    repo, end = _prepare_online(args.users)
    if not args.skip_online:
        online = bench_online(repo, end, args.requests, args.rounds)
        out["online"] = online
        print(
            f"\n{'server':<8} {'entities':>8} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}"
        )
        for r in online:
            print(
                f"{r['server']:<8} {r['entities']:>8} {r['requests']:>8} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['rps']:>8.1f}"
            )
        for size in (1, 100):
            o, f = (
                next(r for r in online if r["server"] == s and r["entities"] == size)
                for s in ("ours", "feast")
            )
            verdict = "meets" if o["p99_ms"] <= f["p99_ms"] else "MISSES"
            print(
                f"{size:>3} entities: /predict p99 / feast p99 = {o['p99_ms'] / f['p99_ms']:.2f} ({verdict} the target <= 1), "
                f"p50 ratio {o['p50_ms'] / f['p50_ms']:.2f}, throughput ratio {o['rps'] / f['rps']:.2f}"
            )
    if args.workers:
        from reliability import run_load

        loads = [
            run_load(repo, 16, args.workers_seconds, False, args.postgres, "", workers=n)
            for n in args.workers
        ]
        out["workers"] = loads
        first = loads[0]
        for load in loads:
            print(
                f"--workers {load['workers']}: {load['requests']:,} requests, {load['errors']} "
                f"errors, {load['rps']:.0f} req/s ({load['rps'] / first['rps']:.2f}x --workers "
                f"{first['workers']}), p50 {load['p50_ms']:.0f} ms, p99 {load['p99_ms']:.0f} ms, "
                f"answered {load['predictions_answered']:,} = logged {load['predictions_logged']:,}"
            )
    if not args.skip_batch:
        batch_repo = _repo("serving_batch", args.batch_users, models_from=repo.data_dir / "models")
        rows = [
            bench_batch(
                batch_repo, f"sqlite:///{WORK / 'serving_batch' / 'predictions.db'}", "sqlite"
            )
        ]
        if args.postgres:
            rows.append(bench_batch(batch_repo, args.postgres, "postgres"))
        out["batch"] = rows
        print()
        for r in rows:
            target = 100_000 if r["db"] == "sqlite" else 50_000
            verdict = "meets" if r["rows_per_s"] >= target else "MISSES"
            print(
                f"batch -> {r['db']:<8} {r['rows']:,} rows in {r['seconds']:.2f}s: {r['rows_per_s']:,.0f} rows/s "
                f"({verdict} >= {target:,}); pandas to_sql of the same rows alone: {r['to_sql_rows_per_s']:,.0f} rows/s "
                f"(ours end to end = {r['rows_per_s'] / r['to_sql_rows_per_s']:.2f}x)"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
