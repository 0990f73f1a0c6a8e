"""Thread counts and OpenMP's spinning for the model libraries (LightGBM's libgomp).

An OpenMP thread that waits for work spins for a while before it sleeps (libgomp:
300,000 spins by default). On an idle machine that saves microseconds; on a busy
one the spinning threads take the cores the other processes need, are
descheduled in turn, and a LightGBM search slows down about 20 times
(``benchmarks/contention.py``: 10.5 s idle, 218 s beside two busy processes).
Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) fixes the busy case (about 1x) but
makes the idle one 2.1-2.4 times slower; a short spin (``GOMP_SPINCOUNT=10000``)
is as fast as the default when idle but was 2.2x to 13x slower when busy, run to
run. So ``configure_openmp()`` looks at the machine when the process starts (the
CPUs' idle share over 0.1 s, from /proc/stat): busy (under half idle), threads
sleep at once; otherwise they spin briefly. A user's own ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT`` is kept. It must run before the model library loads, so the
modules that load one call it on import.
"""

from __future__ import annotations

import os

__all__ = ["BUSY_BELOW", "SPIN_COUNT", "configure_openmp", "idle_share", "thread_count"]


SPIN_COUNT = "10000"
BUSY_BELOW = 0.5  # the machine is busy when its CPUs are idle less than this share


def idle_share(seconds: float = 0.1) -> float | None:
    """The share of CPU time the machine spent idle over ``seconds`` (None: unknown)."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (idle1 - idle0) / max(total1 - total0, 1)


def configure_openmp() -> None:
    """Sleep at once on a busy machine, spin briefly on an idle one (see the module);
    a user's own settings are kept."""
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return
    share = idle_share()
    if share is not None and share < BUSY_BELOW:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT


def thread_count() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)
