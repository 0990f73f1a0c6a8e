"""Run the declared jobs: the ticks that are due, one tick, a backfill.

The clock is a parameter: ``run_due(repo, now=T)`` runs what a scheduler
watching the clock would have run by ``T``, so tests (and a replay) drive time
themselves; :mod:`framework.schedule.process` calls it from APScheduler's
triggers with the wall clock.

What is due for a job is read from its records (``job_runs``), not from memory:
the ticks after its latest recorded tick, up to ``now``. A job never seen
before starts with its latest tick (if at most ``grace`` late, or with
missed='catch_up'). With missed='skip' every tick but the latest (and the latest
too, when more than ``grace`` late) is recorded ``missed`` in one row; with
missed='catch_up' each runs, oldest first, as of its own time. At one tick,
jobs run upstream first; a job whose upstream did not succeed at that tick is
recorded ``skipped``. An upstream tick held by another process is waited for;
one recorded missed is run when a job after it needs it (a catch-up).

Every run claims its (job, tick) row first (:class:`RunStore`): two processes
calling ``run_due`` on one database run each tick once.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from framework.common.times import to_utc
from framework.declare.repo import FeatureRepo
from framework.declare.schedules import Job
from framework.errors import ConfigError
from framework.schedule.job_runs import FINAL, JobRun, RunStore

__all__ = ["BACKFILL_COMMANDS", "Runner", "backfill", "run_at", "run_due", "run_now"]

# A backfill reruns past ticks of these: each is a pure function of its tick. The others
# (apply, materialize, performance, retrain) act on the present state, whatever the tick.
BACKFILL_COMMANDS = ("predict", "monitor", "skew")
MAX_TICKS = 100_000  # ticks looked at per job and call (a per-second job down for a day)
POLL_SECONDS = 1.0  # waiting for another process's run of an upstream tick


def _utc(ts: datetime | str) -> datetime:
    return to_utc(ts, "time").to_pydatetime()


def _error_text(exc: BaseException) -> str:
    tail = "".join(traceback.format_exception(exc)[-3:]).strip()
    return f"{type(exc).__name__}: {exc}\n{tail}"[:4000]


@dataclass
class Runner:
    """Runs jobs of ``repo`` and records them in ``store`` (see the module docstring)."""

    repo: FeatureRepo
    store: RunStore
    db: str
    say: Callable[[str], None] = lambda _m: None
    stop: threading.Event = field(default_factory=threading.Event)
    fresh_repo: bool = False  # a long-running process reads the repo anew for every run
    current: str | None = None  # the run in flight
    ran: list[JobRun] = field(default_factory=list)  # the runs this runner made, in order
    _busy: threading.Lock = field(default_factory=threading.Lock)

    @property
    def jobs(self) -> dict[str, Job]:
        return {n: j for n, j in self.repo.jobs.items() if j.active}

    # --- one run ------------------------------------------------------------------

    def run_job(
        self,
        job: Job,
        tick: datetime,
        trigger: str,
        *,
        replace: bool = False,
        upstream: bool = True,
        over: JobRun | None = None,
    ) -> JobRun | None:
        """Claim (job, tick), wait for its upstream jobs at the tick, run it with its
        retries, record the outcome. None when stopped before it started; the existing
        record when the tick was taken already. ``over``: the finished record the caller
        read and decided to rerun (taken over only if it is still that record)."""
        if self.stop.is_set():
            return None
        states = {u: self.ensure(u, tick, trigger) for u in job.after} if upstream else {}
        if self.stop.is_set():
            return None
        run_id = self.store.claim(job.name, tick, trigger, replace=replace, over=over)
        if run_id is None:
            return self.store.get(job.name, tick)
        at = tick.isoformat().replace("+00:00", "Z")
        failed = {u: s for u, s in states.items() if s != "succeeded"}
        if failed:
            why = ", ".join(f"{u} {s}" for u, s in failed.items())
            self.store.finish(run_id, "skipped", error=f"upstream not succeeded at {at}: {why}")
            self.say(f"{job.name} @ {at}: skipped ({why})")
            return self._made(job.name, tick)
        self.current = run_id
        try:
            self._attempts(job, tick, run_id, at)
        except Exception as exc:  # the outcome could not be written: say so if we still can
            with contextlib.suppress(Exception):
                self.store.finish(
                    run_id, "crashed", error=f"its outcome could not be recorded: {exc}"
                )
            raise
        except BaseException:  # interrupted (Ctrl-C): the record says so, then it goes on up
            self.store.finish(run_id, "abandoned", error="interrupted while running")
            raise
        finally:
            self.current = None
        return self._made(job.name, tick)

    def _made(self, job: str, tick: datetime) -> JobRun | None:
        record = self.store.get(job, tick)
        if record is not None:
            self.ran.append(record)
        return record

    def _attempts(self, job: Job, tick: datetime, run_id: str, at: str) -> None:
        from framework.schedule.tasks import execute

        assert isinstance(job.backoff, timedelta)
        for attempt in range(1, job.retries + 2):
            t0 = time.perf_counter()
            try:
                repo = (
                    FeatureRepo(self.repo.path, self.repo.fs_yaml) if self.fresh_repo else self.repo
                )
                produced = execute(repo, job, tick, self.db)
            except Exception as exc:
                error = _error_text(exc)
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if attempt > job.retries:
                    self.store.finish(run_id, "failed", error=error, attempts=attempt)
                    self.say(f"{job.name} @ {at}: failed after {attempt} attempt(s): {first}")
                    return
                delay = job.backoff.total_seconds() * 2 ** (attempt - 1)
                self.store.retrying(run_id, attempt + 1, error)
                self.say(
                    f"{job.name} @ {at}: attempt {attempt} failed ({first}); retry in {delay:g}s"
                )
                if self.stop.wait(delay):
                    self.store.finish(
                        run_id,
                        "abandoned",
                        error=f"stopped before retry {attempt}\n{error}",
                        attempts=attempt,
                    )
                    return
                continue
            self.store.finish(run_id, "succeeded", produced=produced, attempts=attempt)
            summary = ", ".join(
                f"{k} {v}" for k, v in produced.items() if not isinstance(v, dict | list)
            )
            self.say(f"{job.name} @ {at}: succeeded in {time.perf_counter() - t0:.1f}s ({summary})")
            return

    def ensure(self, name: str, tick: datetime, trigger: str) -> str:
        """The status of upstream job ``name`` at ``tick``, running it first when nobody
        has (or its tick was recorded missed), waiting when another process is."""
        record = self.store.get(name, tick)
        if record is None or record.status == "missed":  # a tick this job needs is run now
            record = self.run_job(
                self.repo.job(name), tick, trigger, replace=record is not None, over=record
            )
            if record is None:
                return "abandoned"
        waited = 0.0
        while record is not None and record.status not in FINAL:
            if self.stop.wait(POLL_SECONDS):
                return "abandoned"
            waited += POLL_SECONDS
            if waited % 30 < POLL_SECONDS:
                self.store.reap()
            record = self.store.get(name, tick)
        return record.status if record is not None else "abandoned"

    # --- what is due --------------------------------------------------------------

    def plan(self, now: datetime, only: str | None = None) -> dict[datetime, list[tuple[str, str]]]:
        """The (job, trigger) pairs to run per tick by ``now``; records the missed ticks."""
        plan: dict[datetime, list[tuple[str, str]]] = {}
        for name, job in self.jobs.items():
            if only is not None and name != only:
                continue
            assert isinstance(job.grace, timedelta)
            last = self.store.latest_tick(name)
            if last is None:
                first = job.last_tick(now)
                due = (
                    [first]
                    if first and (job.missed == "catch_up" or now - first <= job.grace)
                    else []
                )
            else:
                due = []
                for tick in job.ticks(last, now):
                    due.append(tick)
                    if len(due) >= MAX_TICKS:
                        break
            if not due:
                continue
            if job.missed == "skip":
                runnable = due[-1:] if now - due[-1] <= job.grace else []
                late = due[: len(due) - len(runnable)]
                if late:
                    span = f"{late[0].isoformat()} to {late[-1].isoformat()}"
                    self.store.record(
                        name,
                        late[-1],
                        "schedule",
                        "missed",
                        f"{len(late)} tick(s) from {span} passed while no scheduler ran "
                        f"(missed='skip'; declare missed='catch_up' to run them later, or "
                        f"`lifecycle schedule backfill {name}`)",
                    )
                    self.say(f"{name}: {len(late)} tick(s) missed, up to {late[-1].isoformat()}")
            else:
                runnable = due
            for tick in runnable:
                trigger = "schedule" if tick == due[-1] else "catch_up"
                plan.setdefault(tick, []).append((name, trigger))
        return plan

    def due(self, now: datetime, only: str | None = None) -> list[JobRun]:
        """Run everything due by ``now`` (see the module docstring); one call at a time.
        Returns the runs it made (upstream runs at a tick included), in order."""
        if not self._busy.acquire(blocking=False):
            return []  # a call in flight covers it
        try:
            self.store.reap()
            first = len(self.ran)
            order = list(self.jobs)
            plan = self.plan(now, only)
            for tick in sorted(plan):
                for name, trigger in sorted(plan[tick], key=lambda p: order.index(p[0])):
                    if self.run_job(self.repo.job(name), tick, trigger) is None:
                        return self.ran[first:]  # stopped
            return self.ran[first:]
        finally:
            self._busy.release()


def _runner(repo: FeatureRepo, db: str | Path | None, say: Callable[[str], None] | None) -> Runner:
    url = str(db or repo.prediction_db)
    store = RunStore(url)
    store.start_heartbeat()  # a long run is not taken for crashed by another process
    return Runner(repo, store, url, say=say or (lambda _m: None))


def run_due(
    repo: FeatureRepo,
    now: datetime | str | None = None,
    *,
    db: str | Path | None = None,
    only: str | None = None,
    say: Callable[[str], None] | None = None,
) -> list[JobRun]:
    """Run every job tick due by ``now`` (default: the wall clock) and return the runs
    made, in order; ``only``: one job (its upstream jobs run at its ticks as needed)."""
    runner = _runner(repo, db, say)
    try:
        if only is not None:
            repo.job(only)
        return runner.due(_utc(now) if now is not None else datetime.now(UTC), only)
    finally:
        runner.store.close()


def run_at(
    repo: FeatureRepo,
    name: str,
    tick: datetime | str,
    *,
    db: str | Path | None = None,
    say: Callable[[str], None] | None = None,
    trigger: str = "external",
) -> JobRun | None:
    """Run ``name`` for its tick at ``tick`` (else the latest before it: an orchestrator's
    manual run), upstream jobs first;
    a tick that succeeded already is not run again, one that failed, crashed or was
    skipped or missed is run again."""
    job = repo.job(name)
    asked = _utc(tick)
    found = asked if job.is_tick(asked) else job.last_tick(asked)
    if found is None:
        raise ConfigError(f"Job {name!r} ({job.schedule_text}) has no tick before {asked}.")
    at = found
    runner = _runner(repo, db, say)
    try:
        runner.store.reap()
        record = runner.store.get(name, at)
        rerun = record is not None and record.status not in ("succeeded", "running")
        return runner.run_job(job, at, trigger, replace=rerun, over=record if rerun else None)
    finally:
        runner.store.close()


def run_now(
    repo: FeatureRepo,
    name: str,
    *,
    db: str | Path | None = None,
    say: Callable[[str], None] | None = None,
    at: datetime | None = None,
) -> JobRun | None:
    """Run ``name`` once now (a manual run: as of now, upstream jobs not waited for)."""
    job = repo.job(name)
    runner = _runner(repo, db, say)
    try:
        return runner.run_job(job, at or datetime.now(UTC), "manual", upstream=False)
    finally:
        runner.store.close()


def backfill(
    repo: FeatureRepo,
    name: str,
    start: datetime | str,
    end: datetime | str,
    *,
    db: str | Path | None = None,
    say: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[JobRun]:
    """Run ``name`` for each of its ticks in [start, end], oldest first, each as of its own
    tick; a tick run before is run again and its record replaced (a batch prediction
    replaces its run: idempotent). Upstream jobs are not rerun for past ticks."""
    job = repo.job(name)
    if not callable(job.command) and job.command not in BACKFILL_COMMANDS:
        raise ConfigError(
            f"Job {name!r} runs {job.command!r}, which acts on the present state whatever "
            f"the tick; a backfill is for {list(BACKFILL_COMMANDS)} and functions (each as "
            "of its tick)."
        )
    lo, hi = _utc(start), _utc(end)
    if hi < lo:
        raise ConfigError(f"--to {hi.isoformat()} is before --from {lo.isoformat()}.")
    ticks = list(job.ticks(lo - timedelta(microseconds=1), hi))
    if not ticks:
        raise ConfigError(
            f"Job {name!r} ({job.schedule_text}) has no tick between {lo.isoformat()} and "
            f"{hi.isoformat()}."
        )
    if len(ticks) > MAX_TICKS:
        raise ConfigError(f"{len(ticks):,} ticks: backfill at most {MAX_TICKS:,} at a time.")
    runner = _runner(repo, db, say)
    done: list[JobRun] = []
    try:
        for i, tick in enumerate(ticks, start=1):
            run = runner.run_job(job, tick, "backfill", replace=True, upstream=False)
            if run is None:
                break
            done.append(run)
            if progress is not None:
                progress(i, len(ticks))
    finally:
        runner.store.close()
    return done
