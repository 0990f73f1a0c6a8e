"""Benchmark drift monitoring: 1M current rows x 50 features against a 20k-row reference.

Ours: ``framework.monitor.drift_stats.drift`` (PSI, exact KS or chi-square, Jensen-Shannon,
missing and out-of-range rates per feature, then the scores). Baseline in the
same run: the same tests computed with plain ``scipy.stats`` per column
(``ks_2samp`` for numbers, ``chi2_contingency`` on a crosstab for categories),
without PSI or the rest. 40 numeric features (half integer counts, half floats)
and 10 categorical ones; the scores are one more numeric column.

    .venv/bin/python benchmarks/monitoring.py [--rows 1000000] [--features 50]

Then the delayed-label join: ``framework.training.labels.labels_at`` for --rows predictions
(random users and times of the serving benchmark's 10k-user repo) against a
pandas ``merge_asof`` computing the same churn labels.

Machines are shared and noisy: read the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd


def _data(rows: int, reference_rows: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref, cur = {}, {}
    for i in range(features):
        name = f"f{i:02d}"
        if i % 5 == 0:
            cats = np.array(["google", "facebook", "direct", "email", "other"], dtype=object)
            ref[name], cur[name] = rng.choice(cats, reference_rows), rng.choice(cats, rows)
        elif i % 2:
            ref[name] = rng.normal(size=reference_rows)
            cur[name] = rng.normal(0.02, 1, size=rows)
        else:
            ref[name] = rng.poisson(3, reference_rows).astype("int32")
            cur[name] = rng.poisson(3, rows).astype("int32")
    ref["score"], cur["score"] = rng.beta(2, 5, reference_rows), rng.beta(2, 5, rows)
    return pd.DataFrame(ref), pd.DataFrame(cur)


def baseline(reference: pd.DataFrame, current: pd.DataFrame, features: list[str]) -> dict:
    from scipy import stats

    out = {}
    for name in [*features, "score"]:
        r, c = reference[name], current[name]
        if r.dtype == object:
            groups = np.r_[np.zeros(len(r)), np.ones(len(c))]
            table = pd.crosstab(groups, np.r_[r.to_numpy(), c.to_numpy()])
            out[name] = stats.chi2_contingency(table, correction=False)[1]
        else:
            out[name] = stats.ks_2samp(r, c, method="asymp").pvalue
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from framework.monitor.drift_stats import drift

    print(
        f"# monitoring benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    reference, current = _data(args.rows, args.reference_rows, args.features)
    features = [c for c in reference.columns if c != "score"]
    ours, base = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        report = drift(reference, current, features)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        p_values = baseline(reference, current, features)
        base.append(time.perf_counter() - t0)
    mismatched = [
        f.name for f in report.features if not np.isclose(f.p_value, p_values[f.name], rtol=1e-6)
    ]
    best, best_base = min(ours), min(base)
    verdict = "meets" if best < 5 else "MISSES"
    print(
        f"drift of {args.rows:,} rows x {len(features)} features (+ scores) against "
        f"{args.reference_rows:,} reference rows: {best:.2f}s best of {args.repeat} "
        f"({verdict} the 5 s target); plain scipy.stats per column: {best_base:.2f}s; "
        f"ours / baseline = {best / best_base:.2f}x; p-values differing from scipy's: "
        f"{len(mismatched)}; action {report.action}"
    )
    bench_label_join(args.rows)


def bench_label_join(predictions: int) -> None:
    """``labels_at`` for ``predictions`` (entity, time) points on the example repo of the
    serving benchmark, beside a pandas merge_asof computing the same churn labels."""
    import warnings

    warnings.filterwarnings("ignore")
    from pathlib import Path

    from framework.declare.repo import FeatureRepo
    from framework.training.labels import labels_at

    path = Path(__file__).resolve().parent / "_work" / "serving" / "feature_repo"
    if not (path / "data" / "events.parquet").exists():
        print("label join: run benchmarks/serving.py first (it makes the 10k-user repo)")
        return
    repo = FeatureRepo(path)
    problem = repo.problem("churn")
    events = pd.read_parquet(
        path / "data" / "events.parquet", columns=["user_id", "event_timestamp"]
    )
    rng = np.random.default_rng(0)
    lo, hi = events.event_timestamp.min().value // 1000, events.event_timestamp.max().value // 1000
    points = pd.DataFrame(
        {
            "user_id": rng.choice(events.user_id.unique(), predictions),
            "event_timestamp": pd.to_datetime(
                rng.integers(lo, hi, predictions), unit="us", utc=True
            ).astype("datetime64[us, UTC]"),
        }
    )
    t0 = time.perf_counter()
    ours = labels_at(problem, points)
    took = time.perf_counter() - t0
    # Baseline: the next event after t per row (merge_asof forward, strict), label 1 when
    # there is none within 30 days; "complete" when t + 30 days <= the last event.
    t0 = time.perf_counter()
    left = points.reset_index().sort_values("event_timestamp")
    right = events.rename(columns={"event_timestamp": "next_event"}).sort_values("next_event")
    right["event_timestamp"] = right["next_event"]
    joined = (
        pd.merge_asof(
            left,
            right,
            on="event_timestamp",
            by="user_id",
            direction="forward",
            allow_exact_matches=False,
        )
        .set_index("index")
        .sort_index()
    )
    horizon = pd.Timedelta(days=problem.horizon_days)
    label = (
        joined["next_event"].isna() | (joined["next_event"] > joined["event_timestamp"] + horizon)
    ).astype(float)
    base = time.perf_counter() - t0
    mismatches = int((label.to_numpy() != ours["label"].to_numpy()).sum())
    print(
        f"delayed-label join of {predictions:,} predictions against {len(events):,} events: "
        f"{took:.2f}s ({predictions / took:,.0f} rows/s); pandas merge_asof baseline {base:.2f}s; "
        f"ours / baseline = {took / base:.2f}x; label mismatches: {mismatches}; "
        f"complete: {int(ours['complete'].sum()):,}"
    )


if __name__ == "__main__":
    main()
