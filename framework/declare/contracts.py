"""Declare data contracts: what a repo's events may hold.

``EventContract`` is declared in the feature repo (e.g. ``sources.py``); the checks
that apply it live in :mod:`framework.collect.checks`. A failed check is a
``framework.errors.Violation`` (a ``Problem`` is an ML problem, see
:mod:`framework.declare.problems`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from framework.errors import ConfigError

__all__ = ["EVENT_COLUMNS", "Column", "EventContract"]


@dataclass(frozen=True)
class Column:
    """An expected column: its kind (int, float, string, timestamp, bool) and nullability."""

    name: str
    kind: str
    nullable: bool = False


EVENT_COLUMNS = (
    Column("user_id", "int"),
    Column("event_timestamp", "timestamp"),
    Column("event_type", "string"),
    Column("source", "string"),
    Column("amount", "float", nullable=True),
)


@dataclass(frozen=True)
class EventContract:
    """What the repo's events may hold, beyond the column types.

    Declare one in the feature repo (e.g. in ``sources.py``); without one, any event
    type and source is accepted and only the timestamp and amount rules apply.

    - ``event_types`` / ``sources``: the accepted values (None: any value);
    - ``max_future``: how far past the current time a timestamp may be (clock skew);
    - ``min_amount``: the smallest amount (None: no bound); a missing amount is fine.
    """

    event_types: tuple[str, ...] | None = None
    sources: tuple[str, ...] | None = None
    max_future: timedelta = timedelta(minutes=5)
    min_amount: float | None = 0.0
    name: str = "events"

    def __post_init__(self) -> None:
        for attr in ("event_types", "sources"):
            values = getattr(self, attr)
            if values is None:
                continue
            if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
                raise ConfigError(
                    f"EventContract({attr}=...) must be a list of non-empty strings, "
                    f"got {values!r}."
                )
            object.__setattr__(self, attr, tuple(values))
        if not isinstance(self.max_future, timedelta) or self.max_future < timedelta(0):
            raise ConfigError(
                f"EventContract(max_future=...) must be a timedelta >= 0, got {self.max_future!r}."
            )
