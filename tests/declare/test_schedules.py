"""Job declarations: their checks, and their ticks against a brute-force oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.declare.schedules import Job, ancestors, check_jobs, order, parse_duration
from framework.errors import FeatureRepoError


def _oracle(minute, hour, dow):
    """Ticks of a cron job by walking every minute (dow: 0 = Sunday as in crontab)."""

    def ticks(after: datetime, until: datetime) -> list[datetime]:
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        out = []
        while t <= until:
            if t.minute in minute and t.hour in hour and (t.isoweekday() % 7) in dow:
                out.append(t)
            t += timedelta(minutes=1)
        return out

    return ticks


CRONS = {
    "*/15 * * * *": _oracle(range(0, 60, 15), range(24), range(7)),
    "0 6 * * *": _oracle([0], [6], range(7)),
    "30 2 * * 1": _oracle([30], [2], [1]),
    "5 */6 * * 0,6": _oracle([5], range(0, 24, 6), [0, 6]),
    "0 9 * * 1-5": _oracle([0], [9], range(1, 6)),
    "0 0 * * 7": _oracle([0], [0], [0]),  # 7 is Sunday too
    "0 12 * * sun,wed": _oracle([0], [12], [0, 3]),
    "45 23 * * */2": _oracle([45], [23], [0, 2, 4, 6]),
}


@settings(max_examples=60, deadline=None)
@given(
    expr=st.sampled_from(sorted(CRONS)),
    start=st.datetimes(datetime(2024, 1, 1), datetime(2026, 12, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    hours=st.integers(1, 24 * 9),
)
def test_cron_ticks_equal_a_minute_by_minute_walk(expr, start, hours):
    job = Job(name="j", command="materialize", cron=expr)
    until = start + timedelta(hours=hours)
    expected = CRONS[expr](start, until)
    assert list(job.ticks(start, until)) == expected
    if expected:
        assert job.last_tick(until) == expected[-1]
        assert all(job.is_tick(t) for t in expected)
        assert not job.is_tick(expected[0] + timedelta(minutes=1))


@settings(max_examples=25, deadline=None)
@given(
    every=st.sampled_from(["15m", "6h", "1d", "90m", "2w"]),
    start=st.datetimes(datetime(2024, 1, 1), datetime(2026, 12, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    hours=st.integers(1, 24 * 30),
)
def test_interval_ticks_are_counted_from_the_epoch(every, start, hours):
    job = Job(name="j", command="materialize", every=every)
    step = parse_duration(every, "every")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    until = start + timedelta(hours=hours)
    k = (start - epoch) // step + 1
    expected = []
    while epoch + k * step <= until:
        expected.append(epoch + k * step)
        k += 1
    assert list(job.ticks(start, until)) == expected


def test_durations():
    assert parse_duration("90s", "x") == timedelta(seconds=90)
    assert parse_duration(" 2 W", "x") == timedelta(weeks=2)
    assert parse_duration(timedelta(hours=3), "x") == timedelta(hours=3)
    for bad in ("1 day", "0m", "-5m", "", 5):
        with pytest.raises(FeatureRepoError):
            parse_duration(bad, "every")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command": "materialize"}, "exactly one of cron"),
        ({"command": "materialize", "cron": "0 6 * * *", "every": "1d"}, "exactly one of cron"),
        ({"command": "materialize", "cron": "0 25 * * *"}, "not a crontab expression"),
        ({"command": "materialize", "cron": "every day"}, "not a crontab expression"),
        ({"command": "train", "cron": "0 6 * * *"}, "must be one of"),
        ({"command": "predict", "cron": "0 6 * * *"}, "needs problem="),
        ({"command": "materialize", "problem": "churn", "cron": "0 6 * * *"}, "takes no problem"),
        ({"command": "monitor", "problem": "p", "cron": "0 6 * * *", "missed": "later"}, "missed="),
        ({"command": "materialize", "cron": "0 6 * * *", "retries": -1}, "retries="),
        ({"command": "materialize", "cron": "0 6 * * *", "backoff": "soon"}, "not a duration"),
        ({"command": "materialize", "every": "0s"}, "longer than zero"),
        ({"command": "monitor", "problem": "p", "cron": "0 6 * * *", "horizon": 7}, "horizon="),
        ({"command": "materialize", "cron": "0 6 * * *", "window": "1d"}, "window= is for"),
        ({"command": "materialize", "cron": "0 6 * * *", "after": "j"}, "after= names other"),
        ({"command": print, "problem": "p", "cron": "0 6 * * *"}, "function job"),
    ],
)
def test_bad_declarations_name_the_problem(kwargs, message):
    with pytest.raises(FeatureRepoError, match=message):
        Job(name="j", **kwargs)
    with pytest.raises(FeatureRepoError, match="lower_snake_case"):
        Job(name="Nightly-Load", command="materialize", cron="0 6 * * *")


class _Problem:
    def __init__(self, task):
        from framework.tasks import task_of

        self.task = task
        self.kind = task_of(task)


def test_jobs_across_each_other():
    problems = {"churn": _Problem("binary"), "demand": _Problem("forecast")}
    load = Job(name="load", command="materialize", cron="0 6 * * *")
    score = Job(name="score", command="predict", problem="churn", cron="0 6 * * *", after="load")
    weekly = Job(name="weekly", command="retrain", problem="churn", cron="0 6 * * 1", after="score")
    check_jobs({"load": load, "score": score, "weekly": weekly}, problems)
    jobs = {"weekly": weekly, "score": score, "load": load}
    assert order(jobs) == ["load", "score", "weekly"]
    assert ancestors(jobs, "weekly") == ["load", "score"]
    with pytest.raises(FeatureRepoError, match="unknown problem 'spend'"):
        check_jobs({"x": Job(name="x", command="skew", problem="spend", every="1h")}, problems)
    with pytest.raises(FeatureRepoError, match="unknown job 'load'"):
        check_jobs({"score": score}, problems)
    late = Job(name="late", command="predict", problem="churn", cron="0 7 * * *", after="load")
    with pytest.raises(FeatureRepoError, match="'load' has no tick at 2025-01-01T07:00"):
        check_jobs({"load": load, "late": late}, problems)
    # an hourly upstream covers a daily job's ticks
    hourly = Job(name="load", command="materialize", every="1h")
    check_jobs({"load": hourly, "score": score}, problems)
    a = Job(name="a", command="materialize", cron="0 6 * * *", after="b")
    b = Job(name="b", command="materialize", cron="0 6 * * *", after="a")
    with pytest.raises(FeatureRepoError, match="cycle: a -> b -> a"):
        check_jobs({"a": a, "b": b}, problems)
    with pytest.raises(FeatureRepoError, match="applies to a forecast"):
        bad = Job(name="h", command="predict", problem="churn", horizon=7, cron="0 6 * * *")
        check_jobs({"h": bad}, problems)
    check_jobs(
        {"h": Job(name="h", command="predict", problem="demand", horizon=7, cron="0 6 * * *")},
        problems,
    )


def test_the_example_declares_its_jobs(applied_repo):
    jobs = applied_repo.jobs
    assert list(jobs)[:2] == ["materialize", "predict_churn"]
    assert jobs["predict_churn"].after == ("materialize",)
    assert jobs["predict_churn"].missed == "catch_up"
    assert jobs["retrain_churn"].schedule_text == "cron '0 6 * * 1'"
    # a Monday 06:00 is a tick of the weekly retrain and of the daily monitor before it
    monday = datetime(2025, 12, 1, 6, tzinfo=UTC)
    assert jobs["retrain_churn"].is_tick(monday) and jobs["monitor_churn"].is_tick(monday)
