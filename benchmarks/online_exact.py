"""Benchmark exact online reads, event push to visible feature, and materialization.

On the example repo (10,000 users, about 1.1M events), materialized at the data's
end, in one process:

- read: ``get_online_features(repo, rows, "churn_model_v1")`` (31 features: 21
  windowed from the exact state, 3 from the profile view, 7 date features) for 1 and
  100 users at T0 + 1 h, against the same call with the window state switched off
  (Feast's stored values, the read path before issue 15) and stock Feast's
  ``FeatureStore.get_online_features``; and the windowed view alone (21 features).
- push: batches of 100 events every 0.1 s (1,000 events/s) for ``--seconds`` through
  ``push_events`` (durable append + online state); a feature read right after each
  answer must see the batch. Latency from the call to the visible value.
- materialize: the whole run, and the online-state part of it.

    .venv/bin/python benchmarks/online_exact.py [--users 10000] [--redis 127.0.0.1:6379]

Machines are shared and noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")


def _repo(users: int, redis: str | None):
    from framework.common.scripts import load_script

    example = Path(__file__).resolve().parents[1] / "examples" / "example_data.py"
    write_example_data = load_script(example, "lifecycle_example_data").write_example_data
    from framework.declare.repo import FeatureRepo
    from framework.prepare.apply import apply

    path = WORK / f"online_exact_{users}" / "feature_repo"
    fresh = not (path / "data" / "events.parquet").exists()
    path.mkdir(parents=True, exist_ok=True)
    for item in (ROOT / "feature_repo").iterdir():
        if item.is_file() and item.name not in ("experiments.py", "catalogue.py"):
            shutil.copy(item, path / item.name)
    if fresh:
        write_example_data(path / "data", users=users, seed=1)
    yaml = None
    if redis:
        text = (path / "feature_store.yaml").read_text()
        text = text.replace("project: product_analytics", "project: bench_online_exact")
        text = text.replace(
            "  type: sqlite\n  path: data/online_store.db",
            f'  type: redis\n  connection_string: "{redis},db=13"',
        )
        yaml = path / "feature_store.redis-bench.yaml"
        yaml.write_text(text)
    repo = FeatureRepo(path, yaml)
    for f in (path / "data" / "events.parquet.inbox").glob("*.parquet"):
        f.unlink()
    apply(repo)
    return repo


def _timed(fn, n: int) -> np.ndarray:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return np.array(out) * 1000


def _row(label: str, ms: np.ndarray, base: np.ndarray | None = None) -> None:
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    ratio = f"  ratio p50 {p50 / np.percentile(base, 50):.2f}" if base is not None else ""
    print(f"  {label:<44} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms{ratio}")


def bench_reads(repo, end: pd.Timestamp, n: int) -> None:
    from framework.features.online import get_online_features
    from framework.features.online_read import reader

    users = pd.read_parquet(repo.data_dir / "users.parquet", columns=["user_id"]).user_id
    rng = np.random.default_rng(0)
    at = end + pd.Timedelta(hours=1)
    service = "churn_model_v1"
    windowed = [f.name for f in repo.store.get_feature_view("user_activity").features]
    for size in (1, 100):
        rows = [
            {"user_id": int(u), "event_timestamp": at}
            for u in rng.choice(users.to_numpy(), size, replace=False)
        ]
        fast = reader(repo, service)
        states = fast.states

        def ours(rows=rows):
            get_online_features(repo, rows, service)

        def stale(rows=rows, fast=fast, states=states):
            fast.states = None
            try:
                get_online_features(repo, rows, service)
            finally:
                fast.states = states

        def feast(rows=rows):
            get_online_features(repo, rows, service, engine="feast")

        def view_only(rows=rows):
            get_online_features(repo, rows, features=windowed)

        frame = pd.DataFrame(rows)
        frame["event_timestamp"] = pd.to_datetime(frame.event_timestamp, utc=True)

        def state_read(frame=frame, fast=fast):  # the store read and the evaluation only
            fast._read_windows(frame, {}, {})

        for fn in (ours, stale, feast, view_only, state_read):
            fn()  # warm
        times = {f.__name__: [] for f in (ours, stale, feast, view_only, state_read)}
        for _ in range(n // 10):  # interleaved: the same machine load for each
            for fn in (ours, stale, feast, view_only, state_read):
                times[fn.__name__].append(_timed(fn, 10))
        t = {k: np.concatenate(v) for k, v in times.items()}
        print(f"{size} entit{'y' if size == 1 else 'ies'} ({n} reads each, interleaved):")
        _row("before (Feast's stored values, direct read)", t["stale"])
        _row("stock Feast get_online_features", t["feast"])
        _row("exact (window state), whole service", t["ours"], t["stale"])
        _row("exact, the windowed view alone (21 features)", t["view_only"])
        _row("exact, state fetch + evaluate only", t["state_read"])


def bench_push(repo, end: pd.Timestamp, seconds: float) -> None:
    import pyarrow as pa

    from framework.collect.ingest import log_schema
    from framework.features.online import get_online_features
    from framework.features.push import push_events

    schema = log_schema(repo.source_contract(repo.event_source()))
    users = pd.read_parquet(repo.data_dir / "users.parquet", columns=["user_id"]).user_id
    rng = np.random.default_rng(1)
    batches = int(seconds * 10)
    lat, read_ms = [], []
    t_start = time.perf_counter()
    for b in range(batches):
        due = t_start + b * 0.1
        time.sleep(max(0.0, due - time.perf_counter()))
        ids = rng.choice(users.to_numpy(), 100)
        ts = end + pd.Timedelta(minutes=1) + pd.Timedelta(microseconds=b)
        table = pa.table(
            {
                "user_id": ids.astype("int64"),
                "event_timestamp": [ts] * 100,
                "event_type": ["page_view"] * 100,
                "source": ["google"] * 100,
                "amount": [None] * 100,
            }
        ).cast(schema)
        t0 = time.perf_counter()
        before = None
        result = push_events(repo, table)
        t1 = time.perf_counter()
        got = get_online_features(
            repo,
            [{"user_id": int(ids[0]), "event_timestamp": ts}],
            features=["user_events_count_7d"],
        )
        t2 = time.perf_counter()
        assert result.online == "updated" and got.iloc[0, -2] is not before
        lat.append((t2 - t0) * 1000)
        read_ms.append((t2 - t1) * 1000)
    elapsed = time.perf_counter() - t_start
    rate = batches * 100 / elapsed
    print(f"push: {batches} batches of 100 events in {elapsed:.1f} s ({rate:,.0f} events/s)")
    _row("push -> visible (call to value read back)", np.array(lat))
    _row("of which the read", np.array(read_ms))


def bench_materialize(repo, end: pd.Timestamp) -> None:
    from framework.features.materialize import materialize, write_window_states

    t0 = time.perf_counter()
    materialize(repo, end=end)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_window_states(repo, end.to_pydatetime())
    states = time.perf_counter() - t0
    print(
        f"materialize: {total:.2f} s in all, of which the online window state {states:.2f} s "
        f"(Feast's tables alone: {total - states:.2f} s; ratio {total / (total - states):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--redis", default=None, help="host:port: use Redis as online store")
    args = parser.parse_args()
    repo = _repo(args.users, args.redis)
    events = pd.read_parquet(repo.data_dir / "events.parquet", columns=["event_timestamp"])
    end = pd.Timestamp(events.event_timestamp.max()).ceil("s")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {args.users:,} users, "
        f"{len(events):,} events, online store: {'Redis ' + args.redis if args.redis else 'SQLite'}"
    )
    bench_materialize(repo, end)
    bench_reads(repo, end, args.reads)
    bench_push(repo, end, args.seconds)


if __name__ == "__main__":
    main()
