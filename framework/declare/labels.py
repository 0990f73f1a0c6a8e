"""Labels: what a problem learns, looking forward from each observation time t.

Labels look forward over (t, t + horizon] (``NoEvents``, ``AnyEvent``, ``Count``,
``Sum``, ``Mean`` of any event source, with a ``where`` filter; ``DailyTotal`` per day
for a forecast), or come from a table (``LabelTable``). Which labels a problem takes is
its task kind's choice (``framework.tasks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from framework.declare.expressions import filter_to_sql
from framework.errors import FeatureRepoError

__all__ = [
    "AnyEvent",
    "Count",
    "DailyTotal",
    "Label",
    "LabelTable",
    "Mean",
    "NoEvents",
    "Sum",
    "span",
]


def span(value: Any, what: str, *, zero: bool = False) -> timedelta:
    """A duration declared as a ``timedelta`` (whole seconds) or a whole number of days."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds == int(seconds) and (seconds > 0 or (zero and seconds == 0)):
            return value
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (value > 0 or (zero and value == 0))
    ):
        return timedelta(days=value)
    bound = ">= 0" if zero else "> 0"
    raise FeatureRepoError(
        f"{what} is a timedelta of whole seconds or a whole number of days {bound}; got {value!r}."
    )


def _us(value: timedelta) -> int:
    return int(value.total_seconds()) * 1_000_000


@dataclass(frozen=True, kw_only=True)
class _EventLabel:
    """A label computed from the events of a source in (t, t + horizon] matching ``where``.

    ``horizon`` is a timedelta or whole days (``horizon_days=`` is the older spelling);
    ``source`` is an event source (a FileSource), by default the problem's ``events``.
    """

    horizon: Any = None
    where: str | None = None
    source: Any = None
    horizon_days: int | None = None
    kind = "event"

    def __post_init__(self) -> None:
        if (self.horizon is None) == (self.horizon_days is None):
            raise FeatureRepoError(
                f"{type(self).__name__} needs a horizon: horizon=timedelta(hours=1) or "
                "horizon_days=30 (labels cover (t, t + horizon])."
            )
        value = self.horizon if self.horizon is not None else self.horizon_days
        object.__setattr__(self, "horizon", span(value, "A label horizon"))
        object.__setattr__(self, "horizon_days", None)
        if self.where:
            filter_to_sql(self.where)
        if self.source is not None and not getattr(self.source, "path", None):
            raise FeatureRepoError(
                f"{type(self).__name__}(source=...) must be a FileSource over an event log."
            )

    def _matching(self) -> str:
        what = f"event matching {self.where!r}" if self.where else "event"
        src = f" of {self.source.name}" if self.source is not None else ""
        return what + src

    def window(self) -> str:
        return f"(t, t + {_describe(self.horizon)}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "horizon_seconds": int(self.horizon.total_seconds()),
            "where": self.where,
            "source": getattr(self.source, "name", None),
            **{k: getattr(self, k) for k in ("column",) if hasattr(self, k)},
        }


def _describe(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class NoEvents(_EventLabel):
    """Binary label: 1 when the entity has no matching event in (t, t + horizon]."""

    task = "binary"

    def describe(self) -> str:
        return f"1 when no {self._matching()} in {self.window()}"


@dataclass(frozen=True)
class AnyEvent(_EventLabel):
    """Binary label: 1 when the entity has at least one matching event in (t, t + horizon]."""

    task = "binary"

    def describe(self) -> str:
        return f"1 when at least one {self._matching()} in {self.window()}"


@dataclass(frozen=True)
class Count(_EventLabel):
    """Regression label: the number of matching events in (t, t + horizon]."""

    task = "regression"

    def describe(self) -> str:
        return f"number of {self._matching()}s in {self.window()}"


@dataclass(frozen=True)
class Sum(_EventLabel):
    """Regression label: the sum of ``column`` over matching events in (t, t + horizon]
    (0 when there is none)."""

    column: str
    task = "regression"

    def __post_init__(self) -> None:
        if not self.column:
            raise FeatureRepoError("Sum(column, ...) needs the column to add up.")
        super().__post_init__()

    def describe(self) -> str:
        cond = f" where {self.where}" if self.where else ""
        return f"sum of {self.column}{cond} in {self.window()}"


@dataclass(frozen=True)
class Mean(_EventLabel):
    """Regression label: the mean of ``column`` over matching events in (t, t + horizon];
    an observation without such an event has no label and is left out."""

    column: str
    task = "regression"

    def __post_init__(self) -> None:
        if not self.column:
            raise FeatureRepoError("Mean(column, ...) needs the column to average.")
        super().__post_init__()

    def describe(self) -> str:
        cond = f" where {self.where}" if self.where else ""
        return f"mean of {self.column}{cond} in {self.window()} (rows without one left out)"


@dataclass(frozen=True)
class DailyTotal(_EventLabel):
    """Forecast label: for each day d = day(t) + h, h = 1 .. horizon (whole days, UTC),
    the number of matching events on d, or the sum of ``column`` over them (0 when there
    is none). One observation per (entity, t, h); a target day is kept once the data
    covers it, so long horizons need no year of data after the last origin. Calendar
    features of d use the public holidays of ``country``."""

    column: str | None = None
    country: str = "US"
    task = "forecast"

    def __post_init__(self) -> None:
        super().__post_init__()
        days = self.horizon.total_seconds() / 86_400
        if days != int(days) or not 1 <= days <= 3_660:
            raise FeatureRepoError(
                f"DailyTotal forecasts whole days: its horizon must be 1 to 3660 days; got "
                f"{_describe(self.horizon)}."
            )

    @property
    def days(self) -> int:
        return int(self.horizon.total_seconds() // 86_400)

    def describe(self) -> str:
        what = f"sum of {self.column}" if self.column else f"number of {self._matching()}s"
        return f"{what} per day (UTC), for each of the {self.days} days after t"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "column": self.column, "country": self.country}


@dataclass(frozen=True)
class LabelTable:
    """Labels taken as given from a table: each row (keys, timestamp, ``column``) is one
    observation, with features as of its timestamp.

    ``horizon`` is how long after the row's timestamp its label can be known (a
    chargeback 60 days after a payment): the time split purges that much between
    training and evaluation rows, so no training label comes from their future.
    """

    source: Any
    column: str
    horizon: Any = 0
    kind = "table"
    task = "any"

    def __post_init__(self) -> None:
        if not getattr(self.source, "path", None):
            raise FeatureRepoError("LabelTable(source=...) must be a FileSource over a table.")
        if not self.column:
            raise FeatureRepoError("LabelTable(column=...) names the label column.")
        object.__setattr__(self, "horizon", span(self.horizon, "A label horizon", zero=True))

    def describe(self) -> str:
        return f"{self.column} of {self.source.name} (a label table)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "LabelTable",
            "source": self.source.name,
            "column": self.column,
            "horizon_seconds": int(self.horizon.total_seconds()),
        }


Label = NoEvents | AnyEvent | Count | Sum | Mean | DailyTotal | LabelTable
