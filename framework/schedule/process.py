"""``lifecycle schedule run``: the long-running scheduler, on APScheduler.

One APScheduler job fires at every tick of every declared job (an
``OrTrigger`` of their triggers) and once at start (to catch up); another
fires every ``poll`` seconds (housekeeping: crashed runs are marked, a tick
held back by a run that took long gets its turn). Each firing calls
:meth:`Runner.due` with the wall clock, which runs what is due from the
records, so APScheduler decides when to look and ``job_runs`` decides what
runs. Jobs run one at a time, in a worker thread; this process renews the
heartbeat of its run every 15 s.

SIGTERM (or SIGINT): no new run starts; the run in flight finishes and is
recorded, then the process exits 0. A second SIGTERM abandons it: the run is
recorded ``abandoned`` and the process exits 143 at once (a batch prediction's
transaction is rolled back with the connection: nothing half-written).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from framework.declare.repo import FeatureRepo
from framework.errors import ConfigError
from framework.schedule.job_runs import RunStore
from framework.schedule.runner import Runner

__all__ = ["serve_schedule"]


def serve_schedule(
    repo: FeatureRepo,
    *,
    db: str | Path | None = None,
    poll: float = 60.0,
    say: Callable[[str], None] = print,
) -> int:
    """Run the scheduler until SIGTERM/SIGINT; returns the exit code."""
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    jobs = [j for j in repo.jobs.values() if j.active]
    if not jobs:
        raise ConfigError(
            f"No active jobs in {repo.path}: declare framework.Job(...) objects, e.g. in "
            "schedules.py (see `lifecycle schedule --help`)."
        )
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # not each skipped firing
    url = str(db or repo.prediction_db)
    store = RunStore(url)
    store.start_heartbeat()
    runner = Runner(repo, store, url, say=say, fresh_repo=True)
    scheduler = BlockingScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )

    def look() -> None:
        try:
            runner.due(datetime.now(UTC))
        except Exception as exc:
            say(f"scheduler: could not run the due jobs ({exc}); trying again at the next tick")

    scheduler.add_job(
        look,
        OrTrigger([j.trigger for j in jobs]),
        id="ticks",
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(look, IntervalTrigger(seconds=poll, timezone=UTC), id="poll")
    signals = {"count": 0}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals["count"] += 1
        if signals["count"] == 1:
            runner.stop.set()
            in_flight = runner.current
            say(
                f"scheduler: {signal.Signals(signum).name}: "
                + (
                    "finishing the run in flight (send it again to abandon the run)"
                    if in_flight
                    else "stopping"
                )
            )
            scheduler.shutdown(wait=False)
            return
        run_id = runner.current
        if run_id is not None:
            store.finish(
                run_id, "abandoned", error=f"{signal.Signals(signum).name} twice: abandoned"
            )
            say(f"scheduler: abandoned run {run_id}")
        os._exit(128 + signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    names = ", ".join(f"{j.name} ({j.schedule_text})" for j in jobs)
    say(f"scheduler: pid {os.getpid()}, runs recorded in {store.where}; jobs: {names}")
    scheduler.start()  # returns after shutdown
    while runner._busy.locked():  # the run in flight finishes (signals still arrive here)
        time.sleep(0.1)
    # APScheduler's worker threads end with their (finished) work
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(timeout=5)
    store.close()
    say("scheduler: stopped")
    return 0
