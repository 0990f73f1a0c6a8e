"""Benchmark features over any data: the card-payments repo at scale.

Measures, on synthetic payments (string card and merchant ids, vectorised):

1. ``lifecycle apply`` as a whole (input checks, build of every view, registration) on
   a large and a small log: the rate at the margin, (N_large - N_small) / (t_large -
   t_small), so start-up cancels out. Also the build alone.
2. The same events keyed by strings and by integers (one view of counts and sums):
   build time ratio (target <= 1.5x).
3. A view with min/max/count_distinct/last beside one with counts and sums only, over
   the same events and windows (target <= 3x).
4. Point-in-time retrieval of the composite-key and string-key views for 100k entity
   rows: ours (direct) beside stock ``FeatureStore.get_historical_features`` on the
   same repo, identical output required (target >= 5x).
5. Peak memory of the build of the card view at the large size, in a child process
   (target < 4 GB at 10M events).

    .venv/bin/python benchmarks/any_data.py                      # 3M and 30k events
    .venv/bin/python benchmarks/any_data.py --large 10000000     # the memory target

Machines are shared and noisy: read the ratios, not the seconds.
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "benchmarks" / "_work" / "any_data"
PAYMENTS = ROOT / "examples" / "payments" / "feature_repo"


def synthetic_payments(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """n payments over 60 days (about 30 per card), and 3% of them disputed."""
    rng = np.random.default_rng(seed)
    cards = max(n // 30, 10)
    merchants = max(cards // 50, 5)
    end = pd.Timestamp("2025-10-01", tz="UTC").value // 1000
    span = 60 * 86_400_000_000
    card = rng.integers(0, cards, n)
    merchant = (rng.zipf(1.5, n) + card) % merchants
    ts = np.sort(rng.integers(end - span, end, n) // 1_000_000 * 1_000_000)
    pay = pd.DataFrame(
        {
            "payment_id": pd.Series(np.arange(n)).map("p_{}".format),
            "card_id": pd.Series(card).map("c_{}".format),
            "ts": pd.to_datetime(ts, unit="us", utc=True),
            "merchant_id": pd.Series(merchant).map("m_{}".format),
            "channel": rng.choice(np.array(["web", "pos", "phone"], dtype=object), n),
            "amount": np.round(np.exp(rng.normal(3.3, 0.8, n)), 2).clip(0.01, 50_000),
        }
    )
    k = max(n * 3 // 100, 1)
    pick = rng.choice(n, k, replace=False)
    cb = pd.DataFrame(
        {
            "card_id": pay.card_id.to_numpy()[pick],
            "merchant_id": pay.merchant_id.to_numpy()[pick],
            "reported_at": pay.ts.iloc[pick].to_numpy() + pd.Timedelta(days=5),
            "reason": rng.choice(np.array(["fraud", "other"], dtype=object), k),
        }
    )
    cb["reported_at"] = pd.to_datetime(cb.reported_at, utc=True)
    return pay, cb


def make_repo(n: int) -> Path:
    path = WORK / f"p{n}" / "feature_repo"
    path.mkdir(parents=True, exist_ok=True)
    for item in PAYMENTS.iterdir():
        if item.is_file() and item.suffix in (".py", ".yaml"):
            shutil.copy(item, path / item.name)
    data = path / "data"
    if not (data / "payments.parquet").exists():
        data.mkdir(exist_ok=True)
        pay, cb = synthetic_payments(n)
        pay.to_parquet(data / "payments.parquet", index=False)
        cb.to_parquet(data / "chargebacks.parquet", index=False)
    return path


def example_repo(events: int) -> Path:
    """The example product's repo with about ``events`` events (111 per user)."""
    from framework.common.scripts import load_script

    example = Path(__file__).resolve().parents[1] / "examples" / "example_data.py"
    write_example_data = load_script(example, "lifecycle_example_data").write_example_data

    path = WORK / f"example{events}" / "feature_repo"
    path.mkdir(parents=True, exist_ok=True)
    for item in (ROOT / "feature_repo").iterdir():
        if item.is_file():
            shutil.copy(item, path / item.name)
    if not (path / "data" / "events.parquet").exists():
        write_example_data(path / "data", users=max(events // 111, 10), seed=1)
    return path


def timed_apply(path: Path, log: str = "payments.parquet") -> tuple[float, float, int]:
    """(seconds of the whole apply, seconds of the builds, events in the payments log)."""
    from framework.declare.repo import FeatureRepo
    from framework.prepare import apply as apply_mod

    build_s = 0.0
    original = apply_mod.build_window_table

    def timed_build(*args, **kwargs):
        nonlocal build_s
        t0 = time.perf_counter()
        out = original(*args, **kwargs)
        build_s += time.perf_counter() - t0
        return out

    apply_mod.build_window_table = timed_build
    try:
        repo = FeatureRepo(path)
        repo.contents  # import the declarations outside the timing (Feast's parse)  # noqa: B018
        t0 = time.perf_counter()
        apply_mod.apply(repo)
        total = time.perf_counter() - t0
    finally:
        apply_mod.build_window_table = original
    import pyarrow.parquet as pq

    return total, build_s, pq.read_metadata(path / "data" / log).num_rows


def _view_spec(path: Path, key: str, aggregates: list, windows: list):
    from feast import Entity, FileSource, ValueType

    from framework.declare.windows import WindowedFeatureView, WindowSpec

    kind = ValueType.INT64 if key == "card_int" else ValueType.STRING
    entity = Entity(name="card", join_keys=[key], value_type=kind)
    source = FileSource(name="p", path=str(path), timestamp_field="ts")
    view = WindowedFeatureView(
        name="bench",
        entity=entity,
        source=source,
        windows=windows,
        aggregates=aggregates,
        table_path=path.parent / "bench" / f"{key}_{len(aggregates)}.parquet",
    )
    return WindowSpec.from_feature_view(view)


def _build_seconds(spec, repeat: int = 3) -> float:
    from framework.prepare.window_tables import build_window_table

    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        build_window_table(spec)
        best = min(best, time.perf_counter() - t0)
    return best


def key_and_aggregate_ratios(path: Path) -> dict[str, float]:
    from datetime import timedelta

    from framework.declare.windows import LIFETIME, Aggregate

    events = path / "data" / "payments.parquet"
    with_int = path / "data" / "payments_int.parquet"
    if not with_int.exists():
        frame = pd.read_parquet(events)
        frame["card_int"] = frame.card_id.str[2:].astype("int64")
        frame.to_parquet(with_int, index=False)
    windows = [timedelta(hours=1), 1, 7, LIFETIME]
    simple = [
        Aggregate("payments", "count"),
        Aggregate("amount", "sum", column="amount"),
        Aggregate("web", "count", where='channel == "web"'),
    ]
    rich = [
        Aggregate("amount", "min", column="amount"),
        Aggregate("amount", "max", column="amount"),
        Aggregate("merchants", "count_distinct", column="merchant_id"),
        Aggregate("channel", "last", column="channel"),
    ]
    t_int = _build_seconds(_view_spec(with_int, "card_int", simple, windows))
    t_str = _build_seconds(_view_spec(with_int, "card_id", simple, windows))
    t_rich = _build_seconds(_view_spec(with_int, "card_id", rich, windows))
    return {
        "int_key_s": t_int,
        "string_key_s": t_str,
        "string_over_int": t_str / t_int,
        "rich_s": t_rich,
        "rich_over_simple": t_rich / t_str,
    }


def retrieval(path: Path, rows: int = 100_000) -> dict[str, float]:
    from framework.declare.repo import FeatureRepo
    from framework.features.historical import get_historical_features

    repo = FeatureRepo(path)
    pay = pd.read_parquet(
        path / "data" / "payments.parquet", columns=["card_id", "merchant_id", "ts"]
    )
    rng = np.random.default_rng(5)
    pick = pay.iloc[rng.integers(0, len(pay), rows)]
    entity = pd.DataFrame(
        {
            "card_id": pick.card_id.to_numpy(),
            "merchant_id": pick.merchant_id.to_numpy(),
            "event_timestamp": (pick.ts + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"))
            .astype("datetime64[us, UTC]")
            .to_numpy(),
        }
    )
    composite = [
        f"card_merchant_{a}_{w}"
        for a in ("payments_count", "amount_sum", "amount_last")
        for w in ("1d", "30d", "lifetime")
    ]
    single = [
        f"card_{a}_{w}"
        for a in ("payments_count", "amount_max", "merchants_count_distinct", "channel_last")
        for w in ("1h", "1d", "7d")
    ]
    features = [*composite, *single]
    get_historical_features(repo, entity.head(10), features=features)  # warm the indexes
    t0 = time.perf_counter()
    ours = get_historical_features(repo, entity, features=features, engine="direct")
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    stock = repo.store.get_historical_features(
        entity_df=entity.assign(__row=np.arange(rows)),
        features=[f"card_merchant:{f}" for f in composite] + [f"card_spend:{f}" for f in single],
    ).to_df()
    t_stock = time.perf_counter() - t0
    stock = stock.sort_values("__row").reset_index(drop=True)
    from framework.features.resolve import finish, resolve_features

    stock = finish(
        stock[[*entity.columns, *features]].copy(), resolve_features(repo, None, features)
    )
    mismatches = 0
    for f in features:
        a, b = ours[f], stock[f]
        same = (a == b) | (a.isna() & b.isna())
        if a.dtype == "float64":
            same |= np.isclose(a.astype(float), b.astype(float), rtol=1e-12, atol=1e-9)
        mismatches += int((~same.fillna(False).astype(bool)).sum())
    return {
        "rows": rows,
        "ours_s": t_ours,
        "stock_s": t_stock,
        "speedup": t_stock / t_ours,
        "mismatches": mismatches,
    }


# The peak is VmHWM of the child's own address space: ru_maxrss would carry the
# parent's peak over fork and exec on Linux.
PEAK_CHILD = """
import json, re, sys, time
sys.path.insert(0, {root!r})
from framework.declare.repo import FeatureRepo
from framework.prepare.window_tables import build_window_table
repo = FeatureRepo({path!r})
spec = next(s for s in repo.declared_window_specs if s.name == {view!r})
import duckdb
t0 = time.perf_counter()
stats = build_window_table(spec)
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(json.dumps({{"seconds": time.perf_counter() - t0, "rows": stats.rows, "events": stats.events,
                  "peak_mb": int(hwm) / 1024}}))
"""


def peak_build(path: Path, view: str = "card_spend") -> dict[str, float]:
    code = PEAK_CHILD.format(root=str(ROOT), path=str(path), view=view)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=3_000_000)
    parser.add_argument("--small", type=int, default=30_000)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    from framework.common.threads import configure_openmp

    configure_openmp()
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores")
    ex_small, ex_large = example_repo(args.small), example_repo(args.large)
    t_small, b_small, n_small = timed_apply(ex_small, "events.parquet")
    t_large, b_large, n_large = timed_apply(ex_large, "events.parquet")
    margin = (n_large - n_small) / (t_large - t_small)
    build_margin = (n_large - n_small) / (b_large - b_small)
    print(f"example product, apply, {n_small:,} events: {t_small:.2f} s (build {b_small:.2f} s)")
    print(f"example product, apply, {n_large:,} events: {t_large:.2f} s (build {b_large:.2f} s)")
    print(
        f"example product, apply at the margin: {margin / 1e6:.2f}M events/s (target >= 1M/s; "
        f"the build alone {build_margin / 1e6:.2f}M/s)"
    )
    small, large = make_repo(args.small), make_repo(args.large)
    t_small, b_small, n_small = timed_apply(small)
    t_large, b_large, n_large = timed_apply(large)
    margin = (n_large - n_small) / (t_large - t_small)
    print(f"payments, apply, {n_small:,} payments: {t_small:.2f} s (builds {b_small:.2f} s)")
    print(f"payments, apply, {n_large:,} payments: {t_large:.2f} s (builds {b_large:.2f} s)")
    print(
        f"payments, apply at the margin: {margin / 1e6:.2f}M payments/s (4 views: 3 over "
        "the payments, 14 windows, 14 aggregates; no target)"
    )
    ratios = key_and_aggregate_ratios(large)
    print(
        f"one view, counts and sums: int keys {ratios['int_key_s']:.2f} s, string keys "
        f"{ratios['string_key_s']:.2f} s: {ratios['string_over_int']:.2f}x (target <= 1.5x)"
    )
    print(
        f"min/max/count_distinct/last view {ratios['rich_s']:.2f} s: "
        f"{ratios['rich_over_simple']:.2f}x the counts and sums (target <= 3x)"
    )
    r = retrieval(large, args.rows)
    print(
        f"retrieval of 21 string/composite-key features, {r['rows']:,} rows: ours {r['ours_s']:.2f} s, "
        f"stock Feast {r['stock_s']:.2f} s: {r['speedup']:.1f}x (target >= 5x), "
        f"{r['mismatches']} mismatches"
    )
    peak = peak_build(large)
    print(
        f"build of card_spend ({n_large:,} payments, 5 windows, 7 aggregates): "
        f"{peak['seconds']:.2f} s, {peak['rows']:,} rows, peak {peak['peak_mb']:,.0f} MB"
    )
    peak = peak_build(ex_large, "user_activity")
    print(
        f"build of the example's user_activity ({peak['events']:,} events): "
        f"{peak['seconds']:.2f} s, {peak['rows']:,} rows, peak {peak['peak_mb']:,.0f} MB"
    )


if __name__ == "__main__":
    main()
