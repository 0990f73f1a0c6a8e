"""Job: a lifecycle command on a schedule, declared in Python beside the problems.

Declared in the feature repo (for example ``feature_repo/schedules.py``; Feast
ignores these objects)::

    materialize = Job(name="materialize", command="materialize", cron="0 6 * * *")
    predict_churn = Job(
        name="predict_churn",
        command="predict",
        problem="churn",
        cron="0 6 * * *",          # UTC, the five crontab fields
        after="materialize",       # only once materialize succeeded for the same tick
        missed="catch_up",         # a day the scheduler was down is run later, as of its day
        retries=2,                 # then recorded failed; backoff doubles from 5 minutes
        backoff="5m",
    )
    hourly = Job(name="monitor_churn", command="monitor", problem="churn", every="1h")

``command`` is one of :data:`COMMANDS` (each run as of the job's tick: ``predict``
scores the population at the tick, ``materialize`` loads values up to it,
``monitor`` and ``skew`` read the predictions of the last period) or a Python
function ``f(repo, tick) -> dict | None`` for a step of the product's own (its
dict is recorded as what the run produced). ``cron`` (five crontab fields) or
``every`` (``"15m"``, ``"6h"``, ``"1d"``, counted from 1970-01-01T00:00Z, so
``every="6h"`` ticks at 00, 06, 12 and 18) says when, in UTC.

``missed`` says what a tick the scheduler did not see in time becomes:
``"skip"`` (default: recorded as missed; the latest tick still runs when it is
at most ``grace`` late) or ``"catch_up"`` (every missed tick runs once, oldest
first, each as of its own time). A failure is retried ``retries`` times, the
first after ``backoff``, each next after twice as long; then the run is recorded
failed and the other jobs go on. ``after`` names jobs that must have succeeded
at the same tick first (their ticks must include this job's).

Scheduling, records and exports are :mod:`framework.schedule`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from framework.errors import FeatureRepoError

__all__ = [
    "COMMANDS",
    "PROBLEM_COMMANDS",
    "TICK_COMMANDS",
    "Job",
    "ancestors",
    "check_jobs",
    "order",
    "parse_duration",
]

# The commands a job runs; those in PROBLEM_COMMANDS name a problem.
COMMANDS = ("apply", "materialize", "predict", "monitor", "performance", "skew", "retrain")
PROBLEM_COMMANDS = ("predict", "monitor", "performance", "skew", "retrain")
# Commands whose result depends on the tick (a backfill of the others repeats one run).
TICK_COMMANDS = ("materialize", "predict", "monitor", "skew")
MISSED = ("skip", "catch_up")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: str | timedelta, what: str) -> timedelta:
    """``"30s"``, ``"15m"``, ``"6h"``, ``"1d"``, ``"2w"`` or a timedelta; > 0."""
    if isinstance(value, timedelta):
        delta = value
    elif isinstance(value, str) and (m := _DURATION.match(value.lower())):
        delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    else:
        raise FeatureRepoError(
            f"{what}={value!r} is not a duration: write e.g. '30s', '15m', '6h', '1d', '2w' "
            "or a datetime.timedelta."
        )
    if delta <= timedelta(0):
        raise FeatureRepoError(f"{what}={value!r} must be longer than zero.")
    return delta


@dataclass(frozen=True)
class Job:
    """A command on a schedule (see the module docstring)."""

    name: str
    command: str | Callable[..., Any]
    cron: str | None = None
    every: str | timedelta | None = None
    problem: str | None = None
    horizon: int | None = None  # days ahead: a forecast problem's predict
    after: str | tuple[str, ...] = ()
    missed: str = "skip"
    grace: str | timedelta = "1h"  # how late the latest tick may still start (missed='skip')
    retries: int = 0
    backoff: str | timedelta = "1m"  # before the first retry; doubled for each next one
    window: str | timedelta | None = None  # monitor/skew: predictions of (tick - window, tick]
    active: bool = True
    description: str = ""
    _trigger: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise FeatureRepoError(
                f"Job name {self.name!r} must be lower_snake_case (a-z, 0-9, _; at most 63)."
            )
        where = f"Job {self.name!r}"
        if callable(self.command):
            if self.problem is not None or self.horizon is not None:
                raise FeatureRepoError(
                    f"{where}: a function job gets (repo, tick); problem= and horizon= are "
                    "for the built-in commands."
                )
        elif self.command not in COMMANDS:
            raise FeatureRepoError(
                f"{where}: command={self.command!r} must be one of {list(COMMANDS)} or a "
                "function f(repo, tick) -> dict | None."
            )
        elif (self.command in PROBLEM_COMMANDS) != (self.problem is not None):
            need = "needs problem='NAME'" if self.problem is None else "takes no problem="
            raise FeatureRepoError(f"{where}: command {self.command!r} {need}.")
        if self.horizon is not None and (
            self.command != "predict" or not isinstance(self.horizon, int) or self.horizon < 1
        ):
            raise FeatureRepoError(
                f"{where}: horizon= is the days ahead of a forecast's predict (an int >= 1)."
            )
        if (self.cron is None) == (self.every is None):
            raise FeatureRepoError(
                f"{where}: give exactly one of cron='0 6 * * *' (UTC) or every='1d'."
            )
        if self.missed not in MISSED:
            raise FeatureRepoError(f"{where}: missed={self.missed!r} must be 'skip' or 'catch_up'.")
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise FeatureRepoError(f"{where}: retries={self.retries!r} must be an int >= 0.")
        after = (self.after,) if isinstance(self.after, str) else tuple(self.after)
        if any(not isinstance(a, str) for a in after) or self.name in after:
            raise FeatureRepoError(f"{where}: after= names other jobs, e.g. after='materialize'.")
        object.__setattr__(self, "after", after)
        object.__setattr__(self, "grace", parse_duration(self.grace, f"{where}: grace"))
        object.__setattr__(self, "backoff", parse_duration(self.backoff, f"{where}: backoff"))
        if self.window is not None:
            if self.command not in ("monitor", "skew"):
                raise FeatureRepoError(f"{where}: window= is for monitor and skew jobs.")
            object.__setattr__(self, "window", parse_duration(self.window, f"{where}: window"))
        if self.every is not None:
            object.__setattr__(self, "every", parse_duration(self.every, f"{where}: every"))
        object.__setattr__(self, "_trigger", self._make_trigger())

    # --- when -----------------------------------------------------------------------

    def _make_trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        if self.every is not None:
            assert isinstance(self.every, timedelta)
            return IntervalTrigger(
                seconds=self.every.total_seconds(), start_date=EPOCH, timezone=UTC
            )
        try:
            fields = str(self.cron).split()
            if len(fields) != 5:
                raise ValueError(f"{len(fields)} fields, not 5")
            minute, hour, day, month, dow = fields
            days = [(day, "*"), ("*", dow)] if _restricted(day, dow, self.name) else [(day, dow)]
            triggers = [
                CronTrigger(
                    minute=minute,
                    hour=hour,
                    day=d,
                    month=month,
                    day_of_week=_weekdays(w),
                    timezone=UTC,
                )
                for d, w in days
            ]
        except FeatureRepoError:
            raise
        except ValueError as exc:
            raise FeatureRepoError(
                f"Job {self.name!r}: cron={self.cron!r} is not a crontab expression "
                f"({exc}); write five fields in UTC, e.g. '0 6 * * *' (daily at 06:00) or "
                "'*/15 * * * *'."
            ) from None
        if len(triggers) == 1:
            return triggers[0]
        from apscheduler.triggers.combining import OrTrigger

        return OrTrigger(triggers)  # crontab: either day field matching fires

    @property
    def trigger(self) -> Any:
        """The APScheduler trigger of this job's ticks (UTC)."""
        return self._trigger

    @property
    def schedule_text(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron}'"
        assert isinstance(self.every, timedelta)
        return f"every {_duration_text(self.every)}"

    @property
    def command_name(self) -> str:
        if callable(self.command):
            return f"{self.command.__module__}.{getattr(self.command, '__qualname__', '?')}"
        return self.command if self.problem is None else f"{self.command} {self.problem}"

    def next_tick(self, after: datetime) -> datetime | None:
        """The first tick strictly after ``after``."""
        fire = self._trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
        return None if fire is None else fire.astimezone(UTC)

    def ticks(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """The ticks in (after, until], oldest first."""
        tick = self.next_tick(after)
        while tick is not None and tick <= until:
            yield tick
            tick = self.next_tick(tick)

    def last_tick(self, at: datetime) -> datetime | None:
        """The latest tick at or before ``at`` (None: none in the last 16 years)."""
        back = timedelta(minutes=1)
        while back < timedelta(days=366 * 16):
            found = None
            for found in self.ticks(at - back, at):  # noqa: B007 - the last one is wanted
                pass
            if found is not None:
                return found
            back *= 2
        return None

    def is_tick(self, at: datetime) -> bool:
        return self.next_tick(at - timedelta(microseconds=1)) == at

    def period_before(self, tick: datetime) -> timedelta:
        """The time since the tick before ``tick`` (a monitor's default window)."""
        before = self.last_tick(tick - timedelta(microseconds=1))
        return tick - before if before is not None else timedelta(days=1)


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab: 0 (and 7) is Sunday


def _restricted(day: str, dow: str, job: str) -> bool:
    """Whether both day fields are restricted, in which case crontab fires on a day that
    matches either (cron(8), croniter, Kubernetes and Airflow alike). A stepped star
    (``*/2``) beside a restricted other day field is read differently by those
    implementations, so it is refused with a spelling they all read the same way."""
    if day == "*" or dow == "*":
        return False
    for text, full in ((day, "1-31"), (dow, "0-6")):
        if text.startswith("*"):
            raise FeatureRepoError(
                f"Job {job!r}: a stepped day field ({text!r}) beside a restricted other one is "
                f"read differently by cron implementations; write it as a range, e.g. "
                f"{full + text[1:]!r} (then a day matching either field fires, as in crontab)."
            )
    return True


def _weekdays(field: str) -> str:
    """A crontab day-of-week field as APScheduler's names (its numbers start at Monday:
    APScheduler 3's ``from_crontab`` reads '1' as Tuesday)."""
    if field == "*":
        return field

    def number(text: str) -> int:
        text = text.lower()
        if text in _DAYS:
            return _DAYS.index(text)
        if text.isdigit() and int(text) <= 7:
            return int(text) % 7 if int(text) == 7 else int(text)
        raise ValueError(f"day of week {text!r} is not 0-7 or sun..sat")

    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} must be >= 1")
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            a, b = span.split("-", 1)
            lo, hi = number(a), (7 if b.strip() == "7" else number(b))
            if hi < lo:
                raise ValueError(f"day-of-week range {span!r} runs backwards")
        else:
            lo = hi = number(span)
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def _duration_text(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def check_jobs(jobs: dict[str, Job], problems: dict[str, Any]) -> None:
    """Checks across jobs: known problems and upstream jobs, no cycle, a forecast's
    horizon, and an upstream with a tick at each of its downstream's ticks."""
    for job in jobs.values():
        where = f"Job {job.name!r}"
        if job.problem is not None and job.problem not in problems:
            raise FeatureRepoError(
                f"{where} names unknown problem {job.problem!r}; the repo declares "
                f"{sorted(problems)}."
            )
        if job.horizon is not None and problems[str(job.problem)].kind.route != "horizon":
            raise FeatureRepoError(
                f"{where}: horizon= applies to a forecast problem; {job.problem!r} is a "
                f"{problems[str(job.problem)].task} problem."
            )
        for upstream in job.after:
            if upstream not in jobs:
                raise FeatureRepoError(
                    f"{where} runs after unknown job {upstream!r}; the repo declares "
                    f"{sorted(jobs)}."
                )
            probe = datetime(2025, 1, 1, tzinfo=UTC)
            for tick in _first(job.ticks(probe, probe + timedelta(days=800)), 24):
                if not jobs[upstream].is_tick(tick):
                    raise FeatureRepoError(
                        f"{where} runs after {upstream!r}, but {upstream!r} has no tick at "
                        f"{tick.isoformat()} ({job.schedule_text} against "
                        f"{jobs[upstream].schedule_text}): give {upstream!r} a schedule whose "
                        "ticks include this job's."
                    )
    order(jobs)  # refuses a cycle


def _first(ticks: Iterator[datetime], n: int) -> list[datetime]:
    out = []
    for tick in ticks:
        out.append(tick)
        if len(out) == n:
            break
    return out


def order(jobs: dict[str, Job]) -> list[str]:
    """Job names with every job after the ones it names (then by name)."""
    done: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise FeatureRepoError(f"Jobs wait for each other in a cycle: {cycle}.")
        state[name] = 1
        for upstream in sorted(jobs[name].after):
            if upstream in jobs:
                visit(upstream, (*path, name))
        state[name] = 2
        done.append(name)

    for name in sorted(jobs):
        visit(name, ())
    return done


def ancestors(jobs: dict[str, Job], name: str) -> list[str]:
    """The jobs ``name`` waits for, directly or not, upstream first."""
    seen: set[str] = set()

    def walk(n: str) -> None:
        for upstream in jobs[n].after:
            if upstream not in seen:
                seen.add(upstream)
                walk(upstream)

    walk(name)
    return [n for n in order(jobs) if n in seen]
