"""OpenMP's spin and the thread count: set for the model libraries unless the user chose."""

from __future__ import annotations

import os

import pytest

from framework.common.threads import SPIN_COUNT, configure_openmp, idle_share, thread_count


@pytest.mark.parametrize(
    ("given", "idle", "expected"),
    [
        ({}, 0.9, {"GOMP_SPINCOUNT": SPIN_COUNT}),  # idle: spin briefly
        ({}, 0.1, {"OMP_WAIT_POLICY": "PASSIVE"}),  # busy: sleep at once
        ({}, None, {"GOMP_SPINCOUNT": SPIN_COUNT}),  # unknown (no /proc): as idle
        ({"GOMP_SPINCOUNT": "0"}, 0.1, {"GOMP_SPINCOUNT": "0"}),  # the user's own
        ({"OMP_WAIT_POLICY": "ACTIVE"}, 0.1, {"OMP_WAIT_POLICY": "ACTIVE"}),  # the user's
    ],
)
def test_the_wait_follows_the_machine_unless_the_user_chose(monkeypatch, given, idle, expected):
    import framework.common.threads as threads

    monkeypatch.setattr(threads, "idle_share", lambda seconds=0.1: idle)
    for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    configure_openmp()
    seen = {n: os.environ[n] for n in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY") if n in os.environ}
    assert seen == expected


def test_the_thread_count_is_the_cores_this_process_may_use():
    assert thread_count() == len(os.sched_getaffinity(0)) >= 1


def test_the_idle_share_is_a_share():
    share = idle_share(0.05)
    assert share is None or 0.0 <= share <= 1.0
