"""Thread counts and OpenMP's wait policy for the model libraries (LightGBM, OpenMP).

OpenMP threads spin while they wait for work by default (libgomp's
``OMP_WAIT_POLICY=ACTIVE``): on an idle machine that saves microseconds, on a busy
one the spinning threads take the cores the other processes need and are
descheduled in turn, and a fit slows down many times over (measured in
``benchmarks/contention.py``). ``configure_openmp()`` makes them sleep instead
(``PASSIVE``) unless the user chose a policy; it must run before the model
library is loaded, so the modules that load one call it on import.
"""

from __future__ import annotations

import os

__all__ = ["configure_openmp", "thread_count"]


def configure_openmp() -> None:
    """Default OMP_WAIT_POLICY to PASSIVE (a user's own setting is kept)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def thread_count() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)
