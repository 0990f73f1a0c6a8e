"""Benchmark `POST /rank` (100 candidates) against stock `feast serve` fetching the same features.

On the example product with its catalogue (10,000 users, 200 products;
product_ranking trained and promoted, the online store materialized; the
ranking's A/B experiment switched off so every request takes the model's path),
this script starts on loopback `lifecycle serve` (POST /rank: one user and 100
candidate products -> the user, product and user x product features of
ranking_model_v1, the model's scores, the top 10, the prediction log) and stock
`feast serve` (POST /get-online-features of ranking_model_v1 for the same 100
user x product rows, nothing else). One connection each, alternating in rounds
so both see the same load. It prints p50/p99 and the ratios.

    .venv/bin/python benchmarks/ranking.py [--requests 1000]

Machines are shared and noisy: read the ratios, not the milliseconds.
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
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
from serving import BIN, ROOT, WORK, Client, _free_port, _wait

warnings.filterwarnings("ignore")


def _prepare(users: int):
    from framework.common.scripts import load_script

    example = Path(__file__).resolve().parents[1] / "examples" / "example_data.py"
    write_example_data = load_script(example, "lifecycle_example_data").write_example_data
    from framework.declare.repo import FeatureRepo
    from framework.features.materialize import materialize
    from framework.models.registry import registry_of
    from framework.prepare.apply import apply
    from framework.training.run import run_training

    path = WORK / "ranking" / "feature_repo"
    path.mkdir(parents=True, exist_ok=True)
    for item in (ROOT / "feature_repo").iterdir():
        if item.is_file() and item.name != "experiments.py":
            shutil.copy(item, path / item.name)
    catalogue = path / "catalogue.py"
    catalogue.write_text(
        catalogue.read_text().replace(
            "ranking_ab = Experiment(\n", "ranking_ab = Experiment(\n    active=False,\n"
        )
    )
    if not (path / "data" / "product_events.parquet").exists():
        write_example_data(path / "data", users=users, seed=1)
    repo = FeatureRepo(path)
    apply(repo)
    registry = registry_of(repo)
    if not registry.versions("product_ranking"):
        run = run_training(repo, "product_ranking")
        # the benchmark times serving, whatever the gate thinks of this model
        registry.promote("product_ranking", run.artifact.version, override="benchmark")
    events = pd.read_parquet(repo.data_dir / "product_events.parquet", columns=["event_timestamp"])
    end = events.event_timestamp.max()
    materialize(repo, end=end)
    return repo, end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1_000, help="timed requests per server")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args()
    from importlib.metadata import version

    print(
        f"# /rank benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, Feast {version('feast')}"
    )
    repo, end = _prepare(args.users)
    log_db = WORK / "ranking" / "prediction_log.db"
    log_db.unlink(missing_ok=True)
    ours_port, feast_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    serve = ["serve", "--port", str(ours_port), "--db", f"sqlite:///{log_db}"]
    ours = subprocess.Popen(
        [BIN / "lifecycle", "--repo", repo.path, *serve], env=env, stderr=subprocess.DEVNULL
    )
    stock = ["serve", "--port", str(feast_port), "--max-requests", "10000000", "--no-access-log"]
    feast = subprocess.Popen(
        [BIN / "feast", "-c", repo.path, *stock],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(ours_port, "/health", ours)
        _wait(feast_port, "/health", feast)
        users = pd.read_parquet(repo.data_dir / "users.parquet").user_id.to_numpy()
        products = pd.read_parquet(repo.data_dir / "products.parquet").product_id.to_numpy()
        n = min(args.candidates, len(products))
        rng = np.random.default_rng(0)
        at = int(end.timestamp())
        clients = {
            "ours": Client(ours_port, "/rank"),
            "feast": Client(feast_port, "/get-online-features"),
        }

        def bodies(count: int):
            for _ in range(count):
                user = int(rng.choice(users))
                items = [str(p) for p in rng.choice(products, n, replace=False)]
                ours_body = {
                    "problem": "product_ranking",
                    "user": {"user_id": user, "event_timestamp": at},
                    "candidates": [{"product_id": p} for p in items],
                    "k": 10,
                }
                feast_body = {
                    "feature_service": "ranking_model_v1",
                    "entities": {"user_id": [user] * n, "product_id": items},
                }
                yield json.dumps(ours_body).encode(), json.dumps(feast_body).encode()

        for pair in bodies(50):  # warm up (imports, caches)
            clients["ours"].post(pair[0])
            clients["feast"].post(pair[1])
        for c in clients.values():
            c.times.clear()
        walls = {"ours": 0.0, "feast": 0.0}
        per_round = args.requests // args.rounds
        for r in range(args.rounds):
            pairs = list(bodies(per_round))
            for name in ("ours", "feast") if r % 2 == 0 else ("feast", "ours"):
                client = clients[name]
                client.reconnect()
                t0 = time.perf_counter()
                for pair in pairs:
                    client.post(pair[0] if name == "ours" else pair[1])
                walls[name] += time.perf_counter() - t0
    finally:
        for proc in (ours, feast):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    stats = {}
    for name, client in clients.items():
        t = np.array(client.times) * 1000
        stats[name] = (np.percentile(t, 50), np.percentile(t, 99), len(t) / walls[name])
        print(
            f"{name:<6} {n} candidates: {len(t)} requests, p50 {stats[name][0]:.2f} ms, "
            f"p99 {stats[name][1]:.2f} ms, {stats[name][2]:.1f} req/s"
        )
    o, f = stats["ours"], stats["feast"]
    print(
        f"/rank p99 / feast serve p99 = {o[1] / f[1]:.2f}, p50 ratio {o[0] / f[0]:.2f}, "
        f"throughput ratio {o[2] / f[2]:.2f} (ours also scores, sorts and logs the top 10)"
    )


if __name__ == "__main__":
    main()
