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


def _field(draw, lo: int, hi: int, names: tuple[str, ...] = ()) -> tuple[str, set[int]]:
    """A crontab field over [lo, hi] and the values it means: *, a value, a list, a
    range, a stepped range or a stepped star (names: day names for day of week)."""
    form = draw(st.sampled_from(["star", "one", "list", "range", "step", "starstep"]))
    if form == "star":
        return "*", set(range(lo, hi + 1))
    if form == "starstep":
        step = draw(st.integers(2, 4))
        return f"*/{step}", set(range(lo, hi + 1, step))
    if form == "one":
        v = draw(st.integers(lo, hi))
        return (names[v] if names and draw(st.booleans()) else str(v)), {v}
    if form == "list":
        values = sorted(draw(st.sets(st.integers(lo, hi), min_size=2, max_size=4)))
        return ",".join(map(str, values)), set(values)
    step = draw(st.integers(2, 3)) if form == "step" else 1
    a = draw(st.integers(lo, hi - step))
    b = draw(st.integers(a + step, hi))  # APScheduler refuses a step over the range
    if form == "range":
        return f"{a}-{b}", set(range(a, b + 1))
    return f"{a}-{b}/{step}", set(range(a, b + 1, step))


@st.composite
def crons(draw):
    minute, minutes = _field(draw, 0, 59)
    hour, hours = _field(draw, 0, 23)
    day, days = _field(draw, 1, 31)
    month, months = _field(draw, 1, 12)
    names = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
    dow, dows = _field(draw, 0, 6, names)
    assume_ok = not (
        day != "*" and dow != "*" and (day.startswith("*") or dow.startswith("*"))
    )  # refused: implementations disagree (tested below)
    return f"{minute} {hour} {day} {month} {dow}", (minutes, hours, days, months, dows), assume_ok


def _walk(sets, day_restricted: bool, dow_restricted: bool, after, until) -> list[datetime]:
    """Crontab's ticks by walking every minute: both day fields restricted -> either."""
    minutes, hours, days, months, dows = sets
    out, t = [], after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t <= until:
        dom_ok, dow_ok = t.day in days, (t.isoweekday() % 7) in dows
        day_ok = (dom_ok or dow_ok) if day_restricted and dow_restricted else dom_ok and dow_ok
        if t.minute in minutes and t.hour in hours and t.month in months and day_ok:
            out.append(t)
        t += timedelta(minutes=1)
    return out


@settings(max_examples=40, deadline=None)
@given(
    cron=crons(),
    start=st.datetimes(datetime(2024, 1, 1), datetime(2026, 12, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    days=st.integers(1, 45),
)
def test_any_crontab_ticks_as_crontab_and_croniter_do(cron, start, days):
    """All five fields drawn; a day that matches either restricted day field fires."""
    from croniter import croniter

    expr, sets, ok = cron
    if not ok:
        with pytest.raises(FeatureRepoError, match="read differently by cron implementations"):
            Job(name="j", command="materialize", cron=expr)
        return
    job = Job(name="j", command="materialize", cron=expr)
    until = start + timedelta(days=days)
    day, dow = expr.split()[2], expr.split()[4]
    expected = _walk(sets, day != "*", dow != "*", start, until)
    assert list(job.ticks(start, until)) == expected, expr
    it, seen = croniter(expr, start), []
    while (t := it.get_next(datetime)) <= until:
        seen.append(t)
    assert seen == expected, expr


def test_both_day_fields_restricted_fire_on_either():
    job = Job(name="j", command="materialize", cron="0 6 1 * 1")  # the 1st, and Mondays
    q1 = list(job.ticks(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 3, 31, tzinfo=UTC)))
    # Jan 1 (a Wednesday), Feb 1 and Mar 1 (Saturdays), and the 12 Mondays before Mar 31;
    # APScheduler alone (both fields must match) gives none
    assert len(q1) == 15 and {t.isoweekday() for t in q1} == {1, 3, 6}
    assert sum(t.day == 1 for t in q1) == 3
    with pytest.raises(FeatureRepoError, match=r"'1-31/2'"):
        Job(name="k", command="materialize", cron="0 6 */2 * 1")
