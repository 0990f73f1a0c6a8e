"""LightGBM tuning on a busy machine: OpenMP's wait policy and thread count.

The demo's spend tuning once took 22 s on an idle machine and 462 s while two
other processes ran: OpenMP threads that spin while they wait (libgomp spins
300,000 times before it sleeps) steal the cores the other processes need and are
descheduled in turn. This script fits the same LightGBM random search (the
framework's space, 8 configurations x 3 time folds, on a churn-like matrix) in a
fresh process per case, idle and beside N busy processes (pure-Python loops),
under each wait policy, and prints each busy/idle ratio: a policy that costs a
busy machine "its share of the cores" gives about (N + 2) / 2 on 2 cores.

    .venv/bin/python benchmarks/contention.py [--rows 100000] [--busy 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime

FIT = r"""
import json, os, sys, time
import numpy as np
from framework.common.threads import configure_openmp, thread_count
if os.environ.get('FRAMEWORK_DEFAULTS') == '1':
    configure_openmp()  # what the framework does before LightGBM loads
threads = int(os.environ.get('FIT_THREADS') or 0) or thread_count()
import lightgbm as lgb
rows = int(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.normal(size=(rows, 30))
y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=rows) > 1).astype(int)
t0 = time.perf_counter()
for num_leaves in (15, 31, 63, 15, 31, 63, 31, 15):
    for fold in range(3):
        end = rows * (fold + 2) // 5
        lgb.LGBMClassifier(n_estimators=100, num_leaves=num_leaves, n_jobs=threads,
                           verbose=-1).fit(x[:end], y[:end])
print(json.dumps({"seconds": time.perf_counter() - t0, "threads": threads,
                  "policy": os.environ.get("OMP_WAIT_POLICY"),
                  "spin": os.environ.get("GOMP_SPINCOUNT")}))
"""

BUSY = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass\n"


def run(rows: int, policy: str | None, busy: int, threads: int = 0) -> dict:
    """One fit in a fresh process: ``policy`` "framework" (what the framework sets),
    None (libgomp's own default) or an OMP_WAIT_POLICY value; ``threads`` 0: the
    framework's choice."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy not in (None, "framework"):
        env["OMP_WAIT_POLICY"] = policy
    env["FRAMEWORK_DEFAULTS"] = "1" if policy == "framework" else "0"
    env["FIT_THREADS"] = str(threads)
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        out = subprocess.run(
            [sys.executable, "-c", FIT, str(rows)], env=env, capture_output=True, text=True
        )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside the fit")
    parser.add_argument("--only-framework", action="store_true", help="only the framework's case")
    args = parser.parse_args()
    print(
        f"# contention benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, {args.rows:,} rows, {args.busy} busy processes"
    )
    cases = (
        ("libgomp's default", None, 0),
        ("PASSIVE", "PASSIVE", 0),
        ("the framework's choice", "framework", 0),
    )
    base = None
    for label, policy, threads in cases[-1:] if args.only_framework else cases:
        idle = run(args.rows, policy, 0, threads)
        busy = run(args.rows, policy, args.busy, threads)
        base = base or idle["seconds"]
        print(
            f"{label:<24} threads {idle['threads']}, idle: policy {idle['policy'] or 'unset'}, spin "
            f"{idle['spin'] or 'unset'}; busy: policy {busy['policy'] or 'unset'}, spin "
            f"{busy['spin'] or 'unset'}\n{'':<24} idle "
            f"{idle['seconds']:5.1f} s ({idle['seconds'] / base:.2f}x the first), busy "
            f"{busy['seconds']:5.1f} s -> busy/idle {busy['seconds'] / idle['seconds']:.2f} "
            f"(a fair share: {(args.busy + 2) / 2:.1f})"
        )
        time.sleep(1)


if __name__ == "__main__":
    main()
