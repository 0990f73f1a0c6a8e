"""Benchmark the feature pipeline against baselines run in the same process.

For each size (events): build the window tables (events/s, and peak memory of
a build in a child process); point-in-time retrieval of the churn_model_v1
features for 100k entity rows, beside a hand-written DuckDB query computing the
same 21 windows from raw events and stock ``FeatureStore.get_historical_features``;
materialization of every entity, beside stock ``FeatureStore.materialize``.

    .venv/bin/python benchmarks/features.py                 # 1M and 10M events
    .venv/bin/python benchmarks/features.py --sizes 1000000 # one size

Machines are shared and noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"
EVENTS_PER_USER = 111  # the example generator's rate, measured


def _repo(size: int) -> Path:
    """The example repo's declarations (always refreshed) with data for ``size`` events (made once)."""
    from framework.common.scripts import load_script

    example = Path(__file__).resolve().parents[1] / "examples" / "example_data.py"
    write_example_data = load_script(example, "lifecycle_example_data").write_example_data

    path = WORK / f"e{size}" / "feature_repo"
    path.mkdir(parents=True, exist_ok=True)
    for item in (ROOT / "feature_repo").iterdir():
        if item.is_file():
            shutil.copy(item, path / item.name)
    if not (path / "data" / "events.parquet").exists():
        write_example_data(path / "data", users=max(size // EVENTS_PER_USER, 10), seed=1)
    return path


def _best(fn, repeat=3):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


BUILD_CHILD = """
import json, resource, sys, time
import duckdb  # a one-time import (about 0.15 s), not build throughput: paid before the clock starts
from framework.declare.repo import FeatureRepo
from framework.prepare.window_tables import build_window_table
repo = FeatureRepo(sys.argv[1])
spec = repo.declared_window_specs[0]
t0 = time.perf_counter()
stats = build_window_table(spec)
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": stats.rows, "events": stats.events,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_build(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", BUILD_CHILD, str(path)], capture_output=True, text=True, check=True
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["events_per_s"] = res["events"] / res["seconds"]
    return res


def _entity_rows(path: Path, n: int) -> pd.DataFrame:
    users = pd.read_parquet(path / "data" / "users.parquet", columns=["user_id"]).user_id.to_numpy()
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2025-02-01", tz="UTC")
    return pd.DataFrame(
        {
            "user_id": rng.choice(users, n),
            "event_timestamp": (
                start + pd.to_timedelta(rng.integers(0, 330 * 86400, n), unit="s")
            ).astype("datetime64[us, UTC]"),
        }
    )


def duckdb_windows(events_path: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """The baseline: the 21 windowed features straight from raw events, in one DuckDB query."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    q = rows.assign(row=np.arange(len(rows)), t=rows.event_timestamp.astype("int64"))[
        ["row", "user_id", "t"]
    ]
    con.register("q", q)
    day = 86_400_000_000
    aggs = []
    for w in (7, 30, 90):
        inw = f"ev.t > q.t - {w * day}"
        aggs += [
            f"count(ev.t) FILTER (WHERE {inw}) AS user_events_count_{w}d",
            f"count(ev.t) FILTER (WHERE {inw} AND ev.event_type = 'page_view') AS user_page_views_count_{w}d",
            f"count(ev.t) FILTER (WHERE {inw} AND ev.event_type = 'purchase') AS user_purchases_count_{w}d",
            f"count(ev.t) FILTER (WHERE {inw} AND ev.event_type = 'support_ticket') AS user_support_tickets_count_{w}d",
            f"coalesce(sum(ev.amount) FILTER (WHERE {inw}), 0) AS user_amount_sum_{w}d",
            f"count(ev.t) FILTER (WHERE {inw} AND ev.event_type = 'page_view' AND ev.source = 'google') AS user_page_views_google_count_{w}d",
            f"count(ev.t) FILTER (WHERE {inw} AND ev.event_type = 'page_view' AND ev.source = 'facebook') AS user_page_views_facebook_count_{w}d",
        ]
    sql = f"""
        WITH ev AS (SELECT user_id, epoch_us(CAST(event_timestamp AS TIMESTAMPTZ)) AS t, event_type, source, amount
                    FROM read_parquet('{events_path}'))
        SELECT q.row, {", ".join(aggs)}
        FROM q LEFT JOIN ev ON ev.user_id = q.user_id AND ev.t <= q.t AND ev.t > q.t - {90 * day}
        GROUP BY q.row ORDER BY q.row"""
    return con.execute(sql).df()


def bench_retrieval(path: Path, n: int) -> dict:
    from framework.declare.repo import FeatureRepo
    from framework.features import pit
    from framework.features.historical import get_historical_features

    repo = FeatureRepo(path)
    rows = _entity_rows(path, n)
    pit._CACHE.clear()
    t0 = time.perf_counter()
    ours = get_historical_features(repo, rows, "churn_model_v1", engine="direct")
    cold = time.perf_counter() - t0
    warm, ours = _best(
        lambda: get_historical_features(repo, rows, "churn_model_v1", engine="direct")
    )
    ddb, base = _best(lambda: duckdb_windows(path / "data" / "events.parquet", rows), repeat=2)
    windowed = [c for c in base.columns if c != "row"]
    # a mismatch in either direction (and a value against a null) counts
    mismatch = int(
        (
            ~np.isclose(
                ours[windowed].to_numpy(dtype=float),
                base[windowed].to_numpy(dtype=float),
                rtol=0,
                atol=1e-6,
                equal_nan=True,
            )
        ).sum()
    )
    t0 = time.perf_counter()
    stock = get_historical_features(repo, rows, "churn_model_v1", engine="feast")
    feast_s = time.perf_counter() - t0
    identical = ours.equals(stock)
    return {
        "rows": n,
        "ours_cold_s": cold,
        "ours_warm_s": warm,
        "ours_rows_per_s": n / warm,
        "duckdb_query_s": ddb,
        "feast_s": feast_s,
        "vs_feast": feast_s / warm,
        "vs_duckdb": warm / ddb,
        "identical_to_feast": identical,
        "mismatches_vs_duckdb": mismatch,
    }


def bench_materialize(path: Path) -> dict:
    """Ours, then stock Feast, into a fresh SQLite online store each."""
    from framework.declare.repo import FeatureRepo
    from framework.features.materialize import materialize
    from framework.prepare.apply import register

    end = datetime(2026, 1, 1, tzinfo=UTC)
    timings = {}
    for who in ("ours", "feast"):
        (path / "data" / "online_store.db").unlink(missing_ok=True)
        repo = FeatureRepo(path)
        register(repo)  # recreate the empty online tables
        t0 = time.perf_counter()
        if who == "ours":
            rows = sum(materialize(repo, end=end).rows.values())
        else:
            repo.store.materialize(start_date=datetime(2024, 1, 1, tzinfo=UTC), end_date=end)
        timings[who] = time.perf_counter() - t0
    ours, stock = timings["ours"], timings["feast"]
    return {
        "entity_rows": rows,
        "ours_s": ours,
        "ours_rows_per_s": rows / ours,
        "feast_s": stock,
        "feast_rows_per_s": rows / stock,
        "speedup": stock / ours,
    }


def bench_materialize_redis(path: Path, redis: str) -> dict:
    """The same comparison with Redis as online store (database 14, flushed before and after)."""
    import redis as redis_client

    from framework.declare.repo import FeatureRepo
    from framework.features.materialize import materialize
    from framework.prepare.apply import register

    host, _, port = redis.partition(":")
    client = redis_client.Redis(host=host, port=int(port or 6379), db=14)
    client.flushdb()
    yaml = path / "feature_store.bench-redis.yaml"
    text = (
        (path / "feature_store.yaml")
        .read_text()
        .replace(
            "  type: sqlite\n  path: data/online_store.db",
            f'  type: redis\n  connection_string: "{host}:{port or 6379},db=14"',
        )
    )
    yaml.write_text(text)
    try:
        repo = FeatureRepo(path, yaml)
        register(repo)
        end = datetime(2026, 1, 1, tzinfo=UTC)
        t0 = time.perf_counter()
        res = materialize(repo, end=end)
        ours = time.perf_counter() - t0
        client.flushdb()
        t0 = time.perf_counter()
        repo.store.materialize(start_date=datetime(2024, 1, 1, tzinfo=UTC), end_date=end)
        stock = time.perf_counter() - t0
    finally:
        client.flushdb()
        yaml.unlink(missing_ok=True)
    rows = sum(res.rows.values())
    return {
        "entity_rows": rows,
        "ours_s": ours,
        "ours_rows_per_s": rows / ours,
        "feast_s": stock,
        "feast_rows_per_s": rows / stock,
        "speedup": stock / ours,
    }


def _report(r: dict) -> None:
    if "build" in r:
        b, q = r["build"], r["retrieval"]
        print(
            f"build window table : {b['seconds']:.2f} s, {b['events_per_s']:,.0f} events/s ({b['events']:,} events), {b['rows']:,} rows, peak {b['peak_mb']:,.0f} MB"
        )
        print(
            f"retrieval {q['rows']:,} rows : ours {q['ours_warm_s']:.3f} s warm ({q['ours_rows_per_s']:,.0f} rows/s), {q['ours_cold_s']:.3f} s cold"
        )
        print(
            f"   stock Feast get_historical_features {q['feast_s']:.2f} s -> ours {q['vs_feast']:.1f}x faster; identical: {q['identical_to_feast']}"
        )
        print(
            f"   hand-written DuckDB query {q['duckdb_query_s']:.3f} s -> ours/duckdb = {q['vs_duckdb']:.2f}; mismatches: {q['mismatches_vs_duckdb']}"
        )
    for key, store in (("materialize", "SQLite"), ("materialize_redis", "Redis")):
        if key in r:
            m = r[key]
            print(
                f"materialize to {store}, {m['entity_rows']:,} entity rows : ours {m['ours_s']:.2f} s ({m['ours_rows_per_s']:,.0f} rows/s), stock Feast {m['feast_s']:.2f} s ({m['feast_rows_per_s']:,.0f} rows/s) -> {m['speedup']:.1f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--entity-rows", type=int, default=100_000)
    parser.add_argument("--skip-materialize", action="store_true")
    parser.add_argument("--only-materialize", action="store_true", help="skip build and retrieval")
    parser.add_argument(
        "--redis",
        default=os.environ.get("LIFECYCLE_BENCH_REDIS"),
        help="host:port of a Redis to benchmark materialize on too (database 14 is flushed)",
    )
    args = parser.parse_args()
    import warnings

    import feast  # noqa: F401 - Feast sets warning filters on import; ours go after

    from framework.declare.repo import FeatureRepo
    from framework.prepare.apply import apply

    warnings.filterwarnings("ignore")
    print(
        f"# features benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results = {}
    for size in args.sizes:
        path = _repo(size)
        apply(FeatureRepo(path))
        print(f"\n## {size:,} events requested")
        r: dict = {}
        if not args.only_materialize:
            r["build"] = bench_build(path)
            r["retrieval"] = bench_retrieval(path, args.entity_rows)
        if not args.skip_materialize:
            r["materialize"] = bench_materialize(path)
            if args.redis:
                r["materialize_redis"] = bench_materialize_redis(path, args.redis)
        _report(r)
        results[size] = r
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of this process: {peak:,.0f} MB")
    print(json.dumps(results, indent=1, default=str), file=sys.stderr)


if __name__ == "__main__":
    main()
