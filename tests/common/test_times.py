"""One parser for aware times: what it takes, what it refuses and how it says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from framework.common.times import to_utc
from framework.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-06-01T12:00:00Z", "2025-06-01T12:00:00+00:00"),
        ("2025-06-01T14:00:00+02:00", "2025-06-01T12:00:00+00:00"),
        (
            datetime(2025, 6, 1, 7, tzinfo=timezone(timedelta(hours=-5))),
            "2025-06-01T12:00:00+00:00",
        ),
        (pd.Timestamp("2025-06-01T12:00:00", tz="UTC"), "2025-06-01T12:00:00+00:00"),
    ],
)
def test_aware_times_become_utc(value, expected):
    out = to_utc(value, "--at")
    assert out.isoformat() == expected and out.tzinfo is not None
    assert out.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025-06-01T12:00:00", "--at 2025-06-01T12:00:00 has no time zone"),
        (datetime(2025, 6, 1), "has no time zone"),
        ("tomorrow", "--at 'tomorrow' is not a time"),
        ("2025-13-45", "is not a time"),
        ("", "is not a time"),
    ],
)
def test_naive_or_bad_times_are_refused_naming_the_option(value, message):
    with pytest.raises(ConfigError, match=message) as info:
        to_utc(value, "--at")
    assert "2025-06-01T00:00:00Z" in str(info.value)  # an example of what to write


def test_utc_is_kept_exactly():
    moment = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert to_utc(moment).to_pydatetime() == moment
