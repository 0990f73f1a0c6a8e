"""LightGBM tuning on a busy machine: OpenMP's wait policy and thread count.

The demo's spend tuning once took 22 s on an idle machine and 462 s while two
other processes ran: OpenMP threads that spin while they wait (libgomp's default,
OMP_WAIT_POLICY=ACTIVE) steal the cores the other processes need and are
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
import lightgbm as lgb
rows = int(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.normal(size=(rows, 30))
y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=rows) > 1).astype(int)
t0 = time.perf_counter()
for num_leaves in (15, 31, 63, 15, 31, 63, 31, 15):
    for fold in range(3):
        end = rows * (fold + 2) // 5
        lgb.LGBMClassifier(n_estimators=100, num_leaves=num_leaves, n_jobs=thread_count(),
                           verbose=-1).fit(x[:end], y[:end])
print(json.dumps({"seconds": time.perf_counter() - t0, "threads": thread_count(),
                  "policy": os.environ.get("OMP_WAIT_POLICY")}))
"""

BUSY = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass\n"


def run(rows: int, policy: str | None, busy: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    env["FRAMEWORK_DEFAULTS"] = "1" if policy is None else "0"
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
    args = parser.parse_args()
    print(
        f"# contention benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, {args.rows:,} rows, {args.busy} busy processes"
    )
    for label, policy in (("ACTIVE (libgomp's default)", "ACTIVE"), ("framework default", None)):
        idle = run(args.rows, policy, 0)
        busy = run(args.rows, policy, args.busy)
        print(
            f"{label:<28} threads {idle['threads']}  policy {idle['policy']}: idle "
            f"{idle['seconds']:.1f} s, busy {busy['seconds']:.1f} s -> busy/idle "
            f"{busy['seconds'] / idle['seconds']:.2f} (its share: {(args.busy + 2) / 2:.1f})"
        )
        time.sleep(1)


if __name__ == "__main__":
    main()
