"""Spines: the observations of a problem, the times t (and entities) at which its
features look back and its labels look forward: periodic cutoffs (``Cutoffs``, any
period), events (``EventSpine``) or the rows of a table (``TableSpine``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from framework.declare.expressions import filter_to_sql
from framework.declare.labels import _us, span
from framework.errors import FeatureRepoError

__all__ = ["Cutoffs", "EventSpine", "Spine", "TableSpine", "WeeklyCutoffs"]


@dataclass(frozen=True)
class Cutoffs:
    """Observation spine: every ``every`` (a timedelta or days), the entities with an
    event in (t - active_within, t]. Cutoffs start ``warmup`` after the first event
    (so features have history), aligned to the period (midnight for a day or more),
    and stop where the label horizon leaves the data."""

    every: Any = 7
    active_within: Any = 90
    warmup: Any = 90

    def __post_init__(self) -> None:
        object.__setattr__(self, "every", span(self.every, "Cutoffs.every"))
        object.__setattr__(self, "active_within", span(self.active_within, "Cutoffs.active_within"))
        object.__setattr__(self, "warmup", span(self.warmup, "Cutoffs.warmup", zero=True))

    @property
    def every_us(self) -> int:
        return _us(self.every)

    @property
    def active_us(self) -> int:
        return _us(self.active_within)

    @property
    def warmup_us(self) -> int:
        return _us(self.warmup)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "every_seconds": self.every_us // 1_000_000,
            "active_within_seconds": self.active_us // 1_000_000,
            "warmup_seconds": self.warmup_us // 1_000_000,
        }


@dataclass(frozen=True)
class WeeklyCutoffs:
    """``Cutoffs`` in whole days (the older spelling): every ``every_days`` days, the
    entities with an event in the last ``active_within_days`` days, after
    ``warmup_days`` of warm-up."""

    active_within_days: int = 90
    every_days: int = 7
    warmup_days: int = 90

    def __post_init__(self) -> None:
        for name in ("active_within_days", "every_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise FeatureRepoError(
                    f"WeeklyCutoffs.{name} must be a whole number of days > 0; got {value!r}."
                )

    @property
    def every_us(self) -> int:
        return self.every_days * 86_400_000_000

    @property
    def active_us(self) -> int:
        return self.active_within_days * 86_400_000_000

    @property
    def warmup_us(self) -> int:
        return self.warmup_days * 86_400_000_000

    def to_dict(self) -> dict[str, Any]:
        return {"type": "WeeklyCutoffs", **self.__dict__}


@dataclass(frozen=True)
class EventSpine:
    """Observation spine: each event of ``source`` (default: the problem's events) that
    matches ``where`` is one observation. Its features are read as of just before the
    event (its time minus 1 microsecond), as a request made before the event is logged
    would see them; its label looks forward from the event's time, (t_event, t_event + H]."""

    where: str | None = None
    source: Any = None

    def __post_init__(self) -> None:
        if self.where:
            filter_to_sql(self.where)
        if self.source is not None and not getattr(self.source, "path", None):
            raise FeatureRepoError("EventSpine(source=...) must be a FileSource over an event log.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "EventSpine",
            "where": self.where,
            "source": getattr(self.source, "name", None),
        }


@dataclass(frozen=True)
class TableSpine:
    """Observation spine: the rows of a table (the problem's keys and a timestamp), e.g.
    the moments a product asks for a prediction."""

    source: Any

    def __post_init__(self) -> None:
        if not getattr(self.source, "path", None):
            raise FeatureRepoError("TableSpine(source=...) must be a FileSource over a table.")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "TableSpine", "source": self.source.name}


Spine = Cutoffs | WeeklyCutoffs | EventSpine | TableSpine
