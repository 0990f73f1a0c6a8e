"""The scheduler's rules with a controllable clock, on jobs that are Python functions.

Each job appends a line ``job tick pid`` to calls.txt: the oracle of what ran,
written by the job itself, independently of the records (``job_runs``) that
the tests compare it with. The records live in the profile's database (SQLite,
or PostgreSQL with ``--profile production``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from framework.declare.repo import FeatureRepo
from framework.declare.scaffold import init_repo
from framework.errors import ConfigError
from framework.schedule.job_runs import RunStore
from framework.schedule.runner import backfill, run_at, run_due, run_now

JOBS = """
import os
import time
from pathlib import Path

from framework import Job

CALLS = Path(__file__).parent / "calls.txt"


def named(name, seconds=0.0):
    def run(repo, tick):
        time.sleep(seconds)
        with open(CALLS, "a") as f:
            f.write(f"{name} {tick.isoformat()} {os.getpid()}\\n")
        return {"tick": tick.isoformat(), "pid": os.getpid()}

    run.__name__ = run.__qualname__ = name
    return run


def broken(repo, tick):
    with open(CALLS, "a") as f:
        f.write(f"broken {tick.isoformat()} {os.getpid()}\\n")
    raise RuntimeError("the upstream API answered 503")
"""


def jobs_repo(tmp_path: Path, jobs: str) -> FeatureRepo:
    init_repo(tmp_path / "repo")
    (tmp_path / "repo" / "jobs.py").write_text(JOBS + textwrap.dedent(jobs))
    return FeatureRepo(tmp_path / "repo")


def calls(repo: FeatureRepo) -> list[tuple[str, str]]:
    path = repo.path / "calls.txt"
    if not path.exists():
        return []
    return [tuple(line.split()[:2]) for line in path.read_text().splitlines()]  # type: ignore[misc]


def records(db: str, job: str | None = None) -> list:
    store = RunStore(db)
    try:
        return sorted(store.runs(job, limit=None), key=lambda r: (r.scheduled_for, r.job))
    finally:
        store.close()


def day(n: int, hour: int = 6, minute: int = 0) -> datetime:
    return datetime(2025, 3, 1, hour, minute, tzinfo=UTC) + timedelta(days=n - 1)


def iso(ts: datetime) -> str:
    return ts.isoformat()


DAILY = """
predict = Job(name="predict", command=named("predict"), cron="0 6 * * *", missed="catch_up")
report = Job(name="report", command=named("report"), cron="0 6 * * *")
"""


def test_catch_up_runs_each_missed_day_once_and_skip_records_them_missed(tmp_path, prediction_db):
    repo = jobs_repo(tmp_path, DAILY)
    assert [r.job for r in run_due(repo, day(1, 6, 5), db=prediction_db)] == ["predict", "report"]
    # the scheduler is down on day 2 and comes back on day 3 at 06:20
    done = run_due(repo, day(3, 6, 20), db=prediction_db)
    assert [(r.job, r.scheduled_for, r.trigger) for r in done] == [
        ("predict", day(2), "catch_up"),
        ("predict", day(3), "schedule"),
        ("report", day(3), "schedule"),
    ]
    # asking again at the same or a later time before the next tick runs nothing more
    assert run_due(repo, day(3, 6, 20), db=prediction_db) == []
    assert run_due(repo, day(4, 5, 59), db=prediction_db) == []
    ran = calls(repo)
    assert sorted(t for j, t in ran if j == "predict") == [iso(day(n)) for n in (1, 2, 3)]
    assert sorted(t for j, t in ran if j == "report") == [iso(day(n)) for n in (1, 3)]
    rows = records(prediction_db)
    by_job = {
        j: [(r.scheduled_for, r.status) for r in rows if r.job == j] for j in ("predict", "report")
    }
    assert by_job["predict"] == [(day(n), "succeeded") for n in (1, 2, 3)]
    # report (missed='skip') has day 2 recorded as missed, not run
    assert by_job["report"] == [(day(1), "succeeded"), (day(2), "missed"), (day(3), "succeeded")]
    missed = next(r for r in rows if r.status == "missed")
    assert "1 tick(s)" in missed.error and missed.attempts == 0
    # more than the grace (1h) late: a skip job does not run the tick, a catch-up job does
    done = run_due(repo, day(4, 9), db=prediction_db)
    assert [(r.job, r.status) for r in done] == [("predict", "succeeded")]
    assert [(r.scheduled_for, r.status) for r in records(prediction_db, "report")][-1] == (
        day(4),
        "missed",
    )


def test_a_failing_job_is_retried_then_recorded_failed_while_the_others_go_on(
    tmp_path, prediction_db
):
    repo = jobs_repo(
        tmp_path,
        """
        load = Job(name="load", command=broken, cron="0 6 * * *", retries=2, backoff="1s")
        after_load = Job(name="after_load", command=named("after_load"), cron="0 6 * * *", after="load")
        other = Job(name="other", command=named("other"), cron="0 6 * * *")
        """,
    )
    t0 = time.monotonic()
    done = {r.job: r for r in run_due(repo, day(1), db=prediction_db)}
    took = time.monotonic() - t0
    assert done["load"].status == "failed" and done["load"].attempts == 3
    assert "RuntimeError: the upstream API answered 503" in done["load"].error
    assert done["after_load"].status == "skipped" and "load failed" in done["after_load"].error
    assert done["other"].status == "succeeded"
    ran = [j for j, _ in calls(repo)]
    assert ran.count("broken") == 3 and "after_load" not in ran and "other" in ran
    assert took >= 1 + 2  # backoff 1 s, then doubled
    # the next day the job is tried again from scratch
    done = {r.job: r for r in run_due(repo, day(2), db=prediction_db)}
    assert done["load"].status == "failed" and [j for j, _ in calls(repo)].count("broken") == 6


def test_upstream_jobs_run_first_at_the_same_tick(tmp_path, prediction_db):
    repo = jobs_repo(
        tmp_path,
        """
        c = Job(name="c", command=named("c"), cron="0 6 * * *", after=("b", "a"))
        b = Job(name="b", command=named("b"), cron="0 6 * * *", after="a")
        a = Job(name="a", command=named("a"), cron="0 */6 * * *")
        """,
    )
    assert list(repo.jobs) == ["a", "b", "c"]
    run_due(repo, day(1), db=prediction_db)
    assert calls(repo) == [("a", iso(day(1))), ("b", iso(day(1))), ("c", iso(day(1)))]
    # c alone at a tick (as cron or Kubernetes call it): its upstream jobs run first, once
    (repo.path / "calls.txt").unlink()
    runs = run_due(repo, day(2), db=prediction_db, only="c")
    assert calls(repo) == [("a", iso(day(2))), ("b", iso(day(2))), ("c", iso(day(2)))]
    assert [r.job for r in runs] == ["a", "b", "c"]
    assert run_due(repo, day(2), db=prediction_db, only="c") == []
    # a's 12:00 tick is its own: only a runs
    run_due(repo, day(2, 12), db=prediction_db)
    assert calls(repo)[-1] == ("a", iso(day(2, 12))) and len(calls(repo)) == 4


def test_a_catch_up_job_runs_the_missed_tick_of_its_upstream(tmp_path, prediction_db):
    repo = jobs_repo(
        tmp_path,
        """
        load = Job(name="load", command=named("load"), cron="0 6 * * *")
        score = Job(name="score", command=named("score"), cron="0 6 * * *", after="load",
                    missed="catch_up")
        """,
    )
    run_due(repo, day(1), db=prediction_db)
    done = run_due(repo, day(3, 6, 30), db=prediction_db)  # day 2 missed
    assert [(r.job, r.scheduled_for, r.status) for r in done] == [
        ("load", day(2), "succeeded"),
        ("score", day(2), "succeeded"),
        ("load", day(3), "succeeded"),
        ("score", day(3), "succeeded"),
    ]
    assert calls(repo)[2:] == [
        ("load", iso(day(2))),
        ("score", iso(day(2))),
        ("load", iso(day(3))),
        ("score", iso(day(3))),
    ]
    load = records(prediction_db, "load")
    assert [(r.scheduled_for, r.status) for r in load] == [
        (day(n), "succeeded") for n in (1, 2, 3)
    ]  # day 2 was recorded missed first, then run for score


SLOW = """
a = Job(name="a", command=named("a", 0.05), cron="0 * * * *", missed="catch_up")
b = Job(name="b", command=named("b", 0.05), cron="0 * * * *", after="a", missed="catch_up")
c = Job(name="c", command=named("c", 0.02), every="30m", missed="catch_up")
"""

TWO_SCHEDULERS = """
import sys
from datetime import datetime, timedelta, UTC
from framework.declare.repo import FeatureRepo
from framework.schedule.runner import run_due

repo = FeatureRepo(sys.argv[1])
start = datetime(2025, 3, 1, tzinfo=UTC)
for step in range(1, 13):   # the clock moves in 2-hour steps; both processes see every step
    run_due(repo, start + timedelta(hours=2 * step), db=sys.argv[2])
"""


@pytest.mark.slow  # over 8 s: left out of the fast subset
def test_two_schedulers_on_one_database_run_each_tick_once(tmp_path, prediction_db):
    repo = jobs_repo(tmp_path, SLOW)
    store = RunStore(prediction_db)  # the first tick: the catch-up starts there
    for name in ("a", "b", "c"):
        store.record(name, datetime(2025, 3, 1, tzinfo=UTC), "schedule", "succeeded", "seed")
    store.close()
    script = tmp_path / "scheduler.py"
    script.write_text(TWO_SCHEDULERS)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(repo.path), prediction_db], env=env)
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    ran = calls(repo)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    hourly = [iso(start + timedelta(hours=h)) for h in range(1, 25)]
    half = [iso(start + timedelta(minutes=30 * k)) for k in range(1, 49)]
    assert sorted(t for j, t in ran if j == "a") == hourly  # each tick once, none lost
    assert sorted(t for j, t in ran if j == "b") == hourly
    assert sorted(t for j, t in ran if j == "c") == half
    pids = {line.split()[2] for line in (repo.path / "calls.txt").read_text().splitlines()}
    assert len(pids) == 2, "both processes ran jobs"
    rows = [r for r in records(prediction_db) if r.error != "seed"]
    assert len(rows) == 24 + 24 + 48 and {r.status for r in rows} == {"succeeded"}
    # b ran after a at every tick, whichever process ran it
    order = {(j, t): i for i, (j, t) in enumerate(ran)}
    assert all(order[("a", t)] < order[("b", t)] for t in hourly)


CRASHER = """
import sys
from framework.declare.repo import FeatureRepo
from framework.schedule.runner import run_now
run_now(FeatureRepo(sys.argv[1]), "slow", db=sys.argv[2])
"""


def _wait_for(db: str, job: str, status: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in records(db, job) if r.status == status]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {status} run of {job} within {timeout}s: {records(db, job)}")


def test_a_crash_mid_run_is_marked_crashed_not_left_running(tmp_path, prediction_db):
    repo = jobs_repo(
        tmp_path, 'slow = Job(name="slow", command=named("slow", 60), cron="0 6 * * *")'
    )
    script = tmp_path / "crash.py"
    script.write_text(CRASHER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(script), str(repo.path), prediction_db], env=env)
    try:
        _wait_for(prediction_db, "slow", "running")
    finally:
        proc.kill()
        proc.wait()
    store = RunStore(prediction_db)
    assert [r.status for r in store.runs("slow")] == ["running"]  # until someone looks
    assert store.reap() == 1
    (run,) = store.runs("slow")
    store.close()
    assert run.status == "crashed" and "its process is gone" in run.error
    assert run.ended_at is not None and calls(repo) == []


def test_a_stale_heartbeat_is_crashed_after_the_lease(tmp_path, prediction_db):
    import sqlalchemy as sa

    store = RunStore(prediction_db)
    run_id = store.claim("x", day(1), "schedule")
    other = RunStore(prediction_db)
    assert other.reap() == 0  # alive: this process holds it and beats
    t = store.table
    with store.engine.begin() as conn:  # another host's run, silent for ten minutes
        conn.execute(
            t.update()
            .where(t.c.id == run_id)
            .values(owner="elsewhere:1", heartbeat_at=datetime(2000, 1, 1))
        )
    store._held.clear()
    assert other.reap(lease=timedelta(minutes=5)) == 1
    assert other.get("x", day(1)).status == "crashed"
    assert "no heartbeat since" in other.get("x", day(1)).error
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() == 1
    store.close()
    other.close()


def _scheduler(repo: FeatureRepo, db: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "framework.cli",
            "--repo",
            str(repo.path),
            "schedule",
            "run",
            "--db",
            db,
            "--poll",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


SIGTERM_JOBS = """
slow = Job(name="slow", command=named("slow", 4), every="2s")
"""


@pytest.mark.slow  # over 8 s: left out of the fast subset
def test_sigterm_mid_job_finishes_the_run_then_stops(tmp_path, prediction_db):
    repo = jobs_repo(tmp_path, SIGTERM_JOBS)
    proc = _scheduler(repo, prediction_db)
    try:
        (running,) = _wait_for(prediction_db, "slow", "running", timeout=120)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "finishing the run in flight" in out and "scheduler: stopped" in out
    rows = records(prediction_db, "slow")
    assert [r.status for r in rows] == ["succeeded"], rows  # no run started after SIGTERM
    assert rows[0].id == running.id
    assert calls(repo) == [("slow", iso(rows[0].scheduled_for))]


@pytest.mark.slow  # over 8 s: left out of the fast subset
def test_a_second_sigterm_abandons_the_run_and_records_it(tmp_path, prediction_db):
    repo = jobs_repo(tmp_path, SIGTERM_JOBS)
    proc = _scheduler(repo, prediction_db)
    try:
        _wait_for(prediction_db, "slow", "running", timeout=120)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, out
    (run,) = records(prediction_db, "slow")
    assert run.status == "abandoned" and "SIGTERM twice" in run.error
    assert calls(repo) == []  # the job's work did not finish
    store = RunStore(prediction_db)
    assert store.reap() == 0  # nothing left running
    store.close()


def test_backfill_equals_single_runs_and_is_idempotent(tmp_path, prediction_db):
    jobs = 'daily = Job(name="daily", command=named("daily"), cron="30 2 * * *")'
    repo = jobs_repo(tmp_path / "a", jobs)
    filled = backfill(
        repo, "daily", "2025-03-01T00:00:00Z", "2025-03-30T23:59:00Z", db=prediction_db
    )
    assert len(filled) == 30 and {r.status for r in filled} == {"succeeded"}
    assert {r.trigger for r in filled} == {"backfill"}
    single = jobs_repo(tmp_path / "b", jobs)
    db_b = f"sqlite:///{tmp_path / 'b.db'}"
    for n in range(1, 31):
        run_at(single, "daily", day(n, 2, 30), db=db_b)
    a = [(r.job, r.scheduled_for, r.status, r.produced["tick"]) for r in records(prediction_db)]
    b = [(r.job, r.scheduled_for, r.status, r.produced["tick"]) for r in records(db_b)]
    assert a == b and len(a) == 30
    assert [t for _, t in calls(repo)] == [t for _, t in calls(single)]
    # again over a part: those ticks run again and replace their records (no duplicates)
    again = backfill(
        repo, "daily", "2025-03-10T00:00:00Z", "2025-03-12T23:59:00Z", db=prediction_db
    )
    assert [r.scheduled_for for r in again] == [day(n, 2, 30) for n in (10, 11, 12)]
    assert len(records(prediction_db)) == 30 and len(calls(repo)) == 33


def test_once_at_a_tick_and_manual_runs(tmp_path, prediction_db):
    repo = jobs_repo(
        tmp_path,
        """
        flaky = Job(name="flaky", command=broken, cron="0 6 * * *")
        fine = Job(name="fine", command=named("fine"), cron="0 6 * * *")
        """,
    )
    # a time between ticks means the latest tick before it (an orchestrator's manual run)
    run = run_at(repo, "fine", day(3, 11, 17), db=prediction_db)
    assert run.scheduled_for == day(3) and run.trigger == "external"
    again = run_at(repo, "fine", day(3), db=prediction_db)
    assert again.id == run.id and len(calls(repo)) == 1  # succeeded: not run again
    failed = run_at(repo, "flaky", day(3), db=prediction_db)
    assert failed.status == "failed"
    retried = run_at(repo, "flaky", day(3), db=prediction_db)  # failed: run again
    assert retried.status == "failed" and [j for j, _ in calls(repo)].count("broken") == 2
    assert len(records(prediction_db, "flaky")) == 1
    manual = run_now(repo, "fine", db=prediction_db)
    assert manual.trigger == "manual" and manual.status == "succeeded"
    # a manual run does not move the schedule: the next due tick is still day 4's
    assert [r.scheduled_for for r in run_due(repo, day(4), db=prediction_db, only="fine")] == [
        day(4)
    ]
    other = jobs_repo(tmp_path / "m", 'm = Job(name="m", command="materialize", cron="0 6 * * *")')
    with pytest.raises(ConfigError, match="acts on the present state"):
        backfill(other, "m", day(1), day(3), db=prediction_db)


def test_a_database_that_blinks_at_the_end_of_a_run_still_gets_its_record(
    tmp_path, prediction_db, monkeypatch
):
    from framework.errors import StoreError

    repo = jobs_repo(tmp_path, 'j = Job(name="j", command=named("j"), cron="0 6 * * *")')
    original = RunStore._update
    failures = {"left": 2}

    def blinking(self, run_id, **values):
        if values.get("status") == "succeeded" and failures["left"]:
            failures["left"] -= 1
            raise StoreError("connection refused")
        return original(self, run_id, **values)

    monkeypatch.setattr(RunStore, "_update", blinking)
    (run,) = run_due(repo, day(1), db=prediction_db)
    assert run.status == "succeeded" and failures["left"] == 0
    # down for good (for this run's outcome): the error goes up, the record says what
    # happened instead of 'running'
    failures["left"] = 99
    monkeypatch.setattr("time.sleep", lambda _s: None)
    with pytest.raises(StoreError, match="connection refused"):
        run_due(repo, day(2), db=prediction_db)
    store = RunStore(prediction_db)
    stuck = store.get("j", day(2))
    assert stuck.status == "crashed" and "could not be recorded" in stuck.error
    store.close()


def test_a_finished_run_is_taken_over_once_by_processes_that_read_it(prediction_db):
    """Two schedulers read the same failed tick and both decide to retry it: the
    takeover is a compare-and-set on the row they read, so one runs it and the other
    gets nothing, also when the first has already failed again (the row is finished
    once more, as the second's stale read still says)."""
    tick = datetime(2025, 3, 1, 6, tzinfo=UTC)
    first, second = RunStore(prediction_db), RunStore(prediction_db)
    try:
        first.record("load", tick, "schedule", "failed", "upstream API 503")
        read_a, read_b = first.get("load", tick), second.get("load", tick)
        assert read_a.status == read_b.status == "failed" and read_a.id == read_b.id
        taken = first.claim("load", tick, "schedule", replace=True, over=read_a)
        assert taken is not None
        first.finish(taken, "failed", error="503 again")  # the retry failed again, fast
        assert second.claim("load", tick, "schedule", replace=True, over=read_b) is None
        # a fresh read of the new failure may be retried: once
        fresh = second.get("load", tick)
        assert fresh.id == taken and fresh.status == "failed"
        again = second.claim("load", tick, "schedule", replace=True, over=fresh)
        assert again is not None
        assert first.claim("load", tick, "schedule", replace=True, over=fresh) is None
        # without a read of its own the takeover reads the row: a running row is left alone
        assert first.claim("load", tick, "backfill", replace=True) is None
        second.finish(again, "succeeded")
        third = first.claim("load", tick, "backfill", replace=True)
        assert third is not None and first.get("load", tick).status == "running"
        first.finish(third, "succeeded")
    finally:
        first.close()
        second.close()
