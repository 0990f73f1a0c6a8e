"""Benchmark the training stage against a baseline run in the same process.

For each example repo (see features.py; 1M and 10M events give about 157k and
1.5M observation rows): the training-set build (labels + point-in-time
features, rows/s) and the full ``train`` (every candidate, LightGBM random
search with time-series CV). Every estimator's ``fit`` is timed, so the report
splits ``train`` into model fitting and framework overhead (split, preprocessing,
scoring, metrics). Baseline: LightGBM fitted directly on the same prepared matrix.

    .venv/bin/python benchmarks/training.py [--sizes 1000000 10000000] [--rows N]

Run benchmarks/features.py first (it creates the repos under benchmarks/_work/).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


@contextmanager
def timed_fits(classes, bucket: list[float], method: str = "fit"):
    """Time every call of ``method`` on these estimator classes (outermost calls only)."""
    originals = {cls: getattr(cls, method) for cls in classes if hasattr(cls, method)}
    depth = [0]

    def wrap(original):
        def fit(self, *args, **kwargs):
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    bucket.append(time.perf_counter() - t0)

        return fit

    for cls, original in originals.items():
        setattr(cls, method, wrap(original))
    try:
        yield
    finally:
        for cls, original in originals.items():
            setattr(cls, method, original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="subsample the training set to about this many rows (by entity)",
    )
    parser.add_argument("--problem", default="churn")
    args = parser.parse_args()
    import warnings

    import feast  # noqa: F401
    import lightgbm as lgb
    import numpy as np
    from features import _repo
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    from framework.declare.repo import FeatureRepo
    from framework.models.scoring import to_model_frame
    from framework.prepare.apply import apply
    from framework.tasks.estimators import preprocessor as _preprocessor
    from framework.tasks.splitters import split_by_time
    from framework.training.candidates import train
    from framework.training.dataset import LABEL, TrainingSet, build_training_set

    warnings.filterwarnings("ignore")
    print(
        f"# training benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores"
    )
    classes = [
        lgb.LGBMClassifier,
        lgb.LGBMRegressor,
        DummyClassifier,
        DummyRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
        LogisticRegression,
        Ridge,
    ]
    for size in args.sizes:
        path = _repo(size)
        repo = FeatureRepo(path)
        apply(repo)
        problem = repo.problem(args.problem)
        t0 = time.perf_counter()
        ts = build_training_set(repo, problem)
        build = time.perf_counter() - t0
        built_rows = len(ts.frame)
        if (
            args.rows and len(ts.frame) > args.rows
        ):  # a random share of the entities, all times kept
            users = ts.frame[problem.entity].unique()
            share = int(len(users) * args.rows / len(ts.frame))
            keep = np.random.default_rng(0).choice(users, share, replace=False)
            frame = ts.frame[ts.frame[problem.entity].isin(keep)].reset_index(drop=True)
            ts = TrainingSet(ts.problem, frame, ts.features, ts.spec)
        from sklearn.model_selection import RandomizedSearchCV

        fits: list[float] = []
        library: list[float] = []  # outermost calls into the libraries, the search included
        with timed_fits(classes, fits), timed_fits([*classes, RandomizedSearchCV], library):
            t0 = time.perf_counter()
            result = train(ts, problem)
            total = time.perf_counter() - t0
        split = split_by_time(ts.frame, problem.horizon_days)
        x = to_model_frame(split.train, ts.features)
        prepared = _preprocessor(x).fit_transform(x)
        model = (lgb.LGBMClassifier if problem.task == "binary" else lgb.LGBMRegressor)(
            n_jobs=2, verbose=-1
        )
        t0 = time.perf_counter()
        model.fit(prepared, split.train[LABEL].to_numpy())
        direct = time.perf_counter() - t0
        fit_s = sum(fits)
        n_fits = len(fits)
        print(f"\n## {size:,} events: {len(ts.frame):,} observation rows ({problem.name})")
        print(
            f"training-set build : {build:.1f} s for {built_rows:,} rows ({built_rows / build:,.0f} rows/s)"
        )
        print(f"full train         : {total:.1f} s; {n_fits} estimator fits took {fit_s:.1f} s")
        print(
            f"   beyond estimator fits (split, preprocessing, CV scoring, metrics): {total - fit_s:.1f} s = {100 * (total - fit_s) / total:.0f}%"
        )
        lib_s = sum(library)
        print(
            f"   beyond library fit calls (the search with its CV scoring counted as fitting): {total - lib_s:.1f} s = {100 * (total - lib_s) / total:.0f}%"
        )
        print(
            f"   winner {result.winner.name}: test {problem.metric} {result.test[problem.metric]:.4f} (baseline {result.baseline_test[problem.metric]:.4f})"
        )
        print(
            f"baseline: one LightGBM fit on the prepared matrix ({prepared.shape[0]:,} x {prepared.shape[1]}): {direct:.1f} s -> full train = {total / direct:.1f}x one fit"
        )


if __name__ == "__main__":
    main()
