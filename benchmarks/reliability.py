"""Reliability: load held, faults survived, hostile input refused. Writes reliability.md.

1. Load: `lifecycle serve` in a child process on the example repo (10,000 users,
   churn trained and promoted, materialized); 16 client threads, each with its
   own keep-alive connection, POST /predict (1 to 10 random users) for 60 s,
   then stop. It records requests, errors (any non-200 or broken connection),
   p50/p99 latency, and the service's resident memory every second. Then it
   stops the service with SIGTERM and counts the prediction log's rows against
   the answered predictions (nothing may be lost). Memory is "bounded" when the
   second half of the run adds less than 5% to the resident size.
   With --production the service runs on the production profile: Redis online
   store, Feast registry and prediction log in PostgreSQL.
2. Faults and fuzzing: runs tests/test_faults.py and tests/test_fuzz.py (each
   fault test starts and stops its own processes) and records each outcome and
   the number of fuzzed requests and server errors.

    .venv/bin/python benchmarks/reliability.py
    .venv/bin/python benchmarks/reliability.py --clients 16 --seconds 60 --production

Machines are shared and noisy: the latency is recorded, not asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ROOT, WORK, _free_port, _prepare_online, _wait

REDIS_DB = 13  # the production run's online store (flushed first)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _production(repo, postgres: str, redis: str) -> tuple[Path, dict]:
    """The repo on the production profile: its own project in a fresh registry schema."""
    import redis as redis_client
    import sqlalchemy as sa

    from framework.declare.repo import FeatureRepo
    from framework.features.materialize import materialize
    from framework.prepare.apply import register

    engine = sa.create_engine("postgresql+psycopg://" + postgres.split("://", 1)[1])
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS reliability CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA reliability"))
    engine.dispose()
    host, _, port = redis.partition(":")
    redis_client.Redis(host=host, port=int(port or 6379), db=REDIS_DB).flushdb()
    in_schema = f"{postgres}?options=-csearch_path%3Dreliability"
    env = {
        "LIFECYCLE_REGISTRY_URL": "postgresql+psycopg://" + in_schema.split("://", 1)[1],
        "REDIS_CONNECTION_STRING": f"{redis},db={REDIS_DB}",
        "LIFECYCLE_PREDICTION_DB": in_schema,
    }
    os.environ.update(env)
    yaml = repo.path / "feature_store.production.yaml"
    prod = FeatureRepo(repo.path, yaml)
    register(prod)
    events = repo.data_dir / "events.parquet"
    end = pd.read_parquet(events, columns=["event_timestamp"]).event_timestamp.max()
    materialize(prod, end=end)
    return yaml, env


def run_load(
    repo,
    clients: int,
    seconds: float,
    production: bool,
    postgres: str,
    redis: str,
    workers: int = 1,
):
    import sqlalchemy as sa

    from framework.common.database import engine_url

    env = dict(os.environ)
    args = [sys.executable, "-m", "framework.cli", "--repo", str(repo.path)]
    if production:
        yaml, extra = _production(repo, postgres, redis)
        env.update(extra)
        args += ["--fs-yaml", str(yaml)]
        log_db = extra["LIFECYCLE_PREDICTION_DB"]
    else:
        log_db = f"sqlite:///{WORK / 'reliability-log.db'}"
        Path(log_db.removeprefix("sqlite:///")).unlink(missing_ok=True)
    port = _free_port()
    server = subprocess.Popen(
        [*args, "serve", "--port", str(port), "--db", log_db, "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait(port, "/health", server)
    users = pd.read_parquet(repo.data_dir / "users.parquet", columns=["user_id"]).user_id.tolist()
    stop = threading.Event()
    results: list[list] = [[] for _ in range(clients)]
    errors: list[str] = []
    answered = [0] * clients

    def client(k: int) -> None:
        rng = random.Random(k)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            n = rng.randint(1, 10)
            body = json.dumps(
                {"problem": "churn", "entities": [{"user_id": rng.choice(users)} for _ in range(n)]}
            ).encode()
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            results[k].append(time.perf_counter() - t0)
            if response.status != 200:
                errors.append(f"{response.status}: {data[:200]!r}")
            else:
                answered[k] += n
        conn.close()

    memory: list[tuple[float, float]] = []
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    while (now := time.monotonic() - start) < seconds:
        memory.append((now, _rss_mb(server.pid)))
        done = sum(len(r) for r in results)
        print(
            f"\r  load: {now:5.1f}/{seconds:g} s, {done:,} requests, {len(errors)} errors", end=""
        )
        time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - start
    print()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=120)
    times = np.concatenate([np.asarray(r) for r in results]) * 1000
    engine = sa.create_engine(engine_url(log_db))
    with engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT count(*) FROM prediction_log")).scalar()
    engine.dispose()
    half = [m for t, m in memory if t >= seconds / 2]
    first_half = [m for t, m in memory if seconds * 0.1 <= t < seconds / 2]
    growth = (half[-1] - first_half[0]) if half and first_half else float("nan")
    return {
        "profile": "production (Redis, PostgreSQL)" if production else "embedded (SQLite)",
        "workers": workers,
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(times),
        "errors": len(errors),
        "error_examples": errors[:5],
        "rps": len(times) / elapsed,
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "max_ms": float(times.max()),
        "predictions_answered": int(sum(answered)),
        "predictions_logged": int(logged),
        "rss_start_mb": first_half[0] if first_half else float("nan"),
        "rss_peak_mb": max(m for _, m in memory),
        "rss_end_mb": memory[-1][1],
        "rss_second_half_growth_mb": growth,
        "memory_bounded": bool(half and growth < 0.05 * half[-1]),
        "shutdown_returncode": server.returncode,
    }


def run_tests() -> tuple[list[dict], dict]:
    """The fault and fuzz tests, with their outcomes and the fuzzing counts."""
    with tempfile.TemporaryDirectory() as tmp:
        junit, fuzz = Path(tmp) / "junit.xml", Path(tmp) / "fuzz.json"
        env = {**os.environ, "LIFECYCLE_FUZZ_REPORT": str(fuzz)}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "tests/test_faults.py",
                "tests/test_fuzz.py",
                f"--junitxml={junit}",
                "-p",
                "no:cacheprovider",
            ],
            cwd=ROOT,
            env=env,
            check=False,
        )
        cases = []
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome = "passed"
            for tag in ("failure", "error", "skipped"):
                if case.find(tag) is not None:
                    outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
            cases.append(
                {"test": case.get("name"), "outcome": outcome, "seconds": float(case.get("time"))}
            )
        fuzzed = json.loads(fuzz.read_text()) if fuzz.exists() else {}
    return cases, fuzzed


FAULTS = {
    "test_online_store_outage": "Online store hangs (SIGSTOP) then dies under traffic",
    "test_two_applies": "Two `apply` and two `materialize` processes at once",
    "test_a_materialization_killed": "Materialization killed (SIGKILL) midway, then rerun",
    "test_postgres_lost": "PostgreSQL connection dropped in the middle of a batch run's COPY",
    "test_the_prediction_log_survives": "SIGTERM to the service with 8 clients sending",
    "test_thousands_of_generated": "schemathesis: every operation, valid and invalid requests",
    "test_oversized": "Oversized bodies (Content-Length and streamed) and batches",
}


def write_markdown(path: Path, header: str, loads: list[dict], cases, fuzzed) -> None:
    lines = [
        "# Reliability record",
        "",
        f"Written by `benchmarks/reliability.py`. {header}",
        "",
        "## Load held",
        "",
        "| profile | clients x s | requests | errors | req/s | p50 ms | p99 ms | max ms "
        "| RSS start -> peak -> end MB | 2nd-half growth | answered = logged |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in loads:
        lines.append(
            f"| {r['profile']} | {r['clients']} x {r['seconds']:g} | {r['requests']:,} "
            f"| {r['errors']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['max_ms']:.0f} | {r['rss_start_mb']:.0f} -> {r['rss_peak_mb']:.0f} -> "
            f"{r['rss_end_mb']:.0f} | {r['rss_second_half_growth_mb']:+.1f} MB "
            f"({'bounded' if r['memory_bounded'] else 'NOT bounded'}) "
            f"| {r['predictions_answered']:,} = {r['predictions_logged']:,} |"
        )
    lines += [
        "",
        "Each request scores 1 to 10 random users of 10,000. After the run the service",
        "gets SIGTERM; the prediction log is then counted against the answered predictions.",
        "The 16 client threads share the 2 cores with the one-process service, so the",
        "service runs saturated: latency is mostly queueing (16 requests in flight /",
        "throughput); one client alone sees p99 of about 5 ms (benchmarks/serving.py).",
        "",
        "## Faults and hostile input (each test starts and stops its own processes)",
        "",
        "| fault | test | outcome | s |",
        "|---|---|---|---|",
    ]
    for case in cases:
        what = next((v for k, v in FAULTS.items() if case["test"].startswith(k)), "")
        lines.append(f"| {what} | `{case['test']}` | {case['outcome']} | {case['seconds']:.0f} |")
    if fuzzed:
        server_errors = sum(1 for c in fuzzed["codes"] if c >= 500)
        lines += [
            "",
            f"Fuzzing: {fuzzed['requests']:,} generated requests ({fuzzed['by_path']}), "
            f"status codes seen {fuzzed['codes']}, server errors: {server_errors}. Every "
            "answer was checked by schemathesis for status code, content type and body "
            "against the published OpenAPI schema, and every schema-invalid request was "
            "refused with a 4xx.",
        ]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument(
        "--production", action="store_true", help="also load the production profile"
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--skip-tests", action="store_true", help="only the load test")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "reliability.md")
    args = parser.parse_args()
    header = (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}."
    )
    print(f"# reliability, {header}")
    repo, _ = _prepare_online(args.users)
    loads = [run_load(repo, args.clients, args.seconds, False, args.postgres, args.redis)]
    if args.production:
        loads.append(run_load(repo, args.clients, args.seconds, True, args.postgres, args.redis))
    for r in loads:
        print(json.dumps(r, indent=1))
    cases, fuzzed = ([], {}) if args.skip_tests else run_tests()
    write_markdown(args.out, header, loads, cases, fuzzed)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
