"""Benchmark drift monitoring: 1M current rows x 50 features against a 20k-row reference.

Ours: ``framework.drift.drift`` (PSI, exact KS or chi-square, Jensen-Shannon,
missing and out-of-range rates per feature, then the scores). Baseline in the
same run: the same tests computed with plain ``scipy.stats`` per column
(``ks_2samp`` for numbers, ``chi2_contingency`` on a crosstab for categories),
without PSI or the rest. 40 numeric features (half integer counts, half floats)
and 10 categorical ones; the scores are one more numeric column.

    .venv/bin/python benchmarks/monitoring.py [--rows 1000000] [--features 50]

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
    from framework.drift import drift

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


if __name__ == "__main__":
    main()
