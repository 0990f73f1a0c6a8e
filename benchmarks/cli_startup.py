"""Benchmark the CLI's start-up: whole processes, against ``feast --help`` as the baseline.

Each command runs ``--runs`` times as a fresh process (median wall time) on a copy of
the example repo's declarations (no data needed). Commands that need no feature store
(the model registry, the declared jobs and experiments, every ``--help``) should
answer in at most 1 s on a quiet 2-core machine; the ones that import the repo (and
Feast with it) pay that once, like ``feast --help`` does. ``schedule list`` and
``experiment list`` read the declarations' snapshot (``framework.declare.loader``):
the first run after a change of the repo's files imports the repo and is timed
separately ("cold").

    .venv/bin/python benchmarks/cli_startup.py [--runs 7]

Machines are shared and noisy: read the ratio to the baseline, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

COMMANDS = [
    ["--help"],
    ["train", "--help"],
    ["serve", "--help"],
    ["models", "list"],
    ["schedule", "list"],
    ["schedule", "runs"],
    ["experiment", "list"],
]


def _time(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def _median(argv: list[str], env: dict[str, str], runs: int) -> float:
    return statistics.median(_time(argv, env) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cli_startup_"))
    repo = work / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data"))
    (repo / "data").mkdir()
    env = {**os.environ, "LIFECYCLE_REPO": str(repo)}
    lifecycle = str(BIN / "lifecycle")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores")
    baseline = _median([str(BIN / "feast"), "--help"], env, args.runs)
    print(f"baseline `feast --help`: {baseline:.2f} s (median of {args.runs})")
    print(f"  {'command':<32} {'median s':>9} {'/ feast --help':>15}")
    cold = _time([lifecycle, "schedule", "list"], env)  # imports the repo, writes the snapshot
    print(f"  {'schedule list (cold)':<32} {cold:>9.2f} {cold / baseline:>15.2f}")
    try:
        for command in COMMANDS:
            seconds = _median([lifecycle, *command], env, args.runs)
            name = " ".join(command)
            print(f"  {name:<32} {seconds:>9.2f} {seconds / baseline:>15.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
