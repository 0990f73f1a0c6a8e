"""Time: one parser for aware times, and the microsecond units the tables use.

Every time the framework takes from a user (a CLI option, a library argument)
goes through ``to_utc``: text in ISO 8601 or a datetime, with a time zone.
A naive time is refused as ambiguous; the error names what was given and how to
write it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from framework.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXAMPLE_TIME", "US_PER_DAY", "to_utc"]

US_PER_DAY = 86_400 * 1_000_000  # event times are stored as microseconds since the epoch
EXAMPLE_TIME = "2025-06-01T00:00:00Z"


def to_utc(value: datetime | str, what: str = "time") -> pd.Timestamp:
    """``value`` as a UTC ``pandas.Timestamp``.

    Raises ``ConfigError`` naming ``what`` when the text is not a time or has no
    time zone.
    """
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{what} {value!r} is not a time; write ISO 8601 with a zone, e.g. {EXAMPLE_TIME}."
        ) from exc
    if ts is pd.NaT:
        raise ConfigError(f"{what} {value!r} is not a time; write e.g. {EXAMPLE_TIME}.")
    if ts.tzinfo is None:
        raise ConfigError(
            f"{what} {value!s} has no time zone; add one, e.g. {EXAMPLE_TIME} "
            "(naive times are refused as ambiguous)."
        )
    return ts.tz_convert("UTC")
