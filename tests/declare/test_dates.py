from datetime import date, timedelta

import holidays
import numpy as np
import pandas as pd
import pytest

from framework.declare.dates import DATE_FEATURES, DateExpansions, expand_dates
from framework.errors import DataError, FeatureRepoError


def _oracle(ts: pd.Timestamp, country: str) -> dict:
    cal = holidays.country_holidays(country, years=range(ts.year - 1, ts.year + 2))
    d = ts.tz_convert("UTC").date()
    since = next(k for k in range(400) if d - timedelta(days=k) in cal)
    until = next(k for k in range(400) if d + timedelta(days=k) in cal)
    return {
        "year": d.year,
        "month": d.month,
        "day": d.day,
        "day_of_week": d.weekday(),
        "is_weekend": d.weekday() >= 5,
        "days_since_holiday": since,
        "days_until_holiday": until,
    }


@pytest.mark.parametrize("country", ["US", "DE"])
def test_expansions_match_a_per_date_oracle(country):
    rng = np.random.default_rng(0)
    ts = pd.Series(
        pd.Timestamp("2024-01-01", tz="UTC")
        + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, 200), unit="s")
    )
    # edges: on a holiday, the day before, the last second of a day, New Year
    ts = pd.concat(
        [
            ts,
            pd.Series(
                pd.to_datetime(
                    [
                        "2025-07-04T00:00:00Z",
                        "2025-07-03T23:59:59Z",
                        "2025-12-31T23:59:59Z",
                        "2026-01-01T00:00:00Z",
                    ]
                )
            ),
        ],
        ignore_index=True,
    )
    out = expand_dates(pd.DataFrame({"event_timestamp": ts}), country=country, prefix="")
    assert list(out.columns) == list(DATE_FEATURES)
    for i, t in enumerate(ts):
        assert out.iloc[i].to_dict() == _oracle(t, country), t


def test_non_utc_input_is_read_in_utc_and_ints_are_epoch_seconds():
    local = pd.Series([pd.Timestamp("2025-07-04T22:30:00-05:00")])  # 03:30 UTC on the 5th
    out = expand_dates(pd.DataFrame({"event_timestamp": local}), prefix="")
    assert (out.day[0], out.days_since_holiday[0]) == (5, 1)
    epoch = pd.Series([int(pd.Timestamp("2025-07-04T12:00:00Z").timestamp())])
    out = expand_dates(pd.DataFrame({"event_timestamp": epoch}), prefix="")
    assert (out.month[0], out.day[0], out.days_until_holiday[0]) == (7, 4, 0)


def test_missing_timestamp_is_an_error():
    with pytest.raises(DataError, match="missing timestamps"):
        expand_dates(
            pd.DataFrame({"event_timestamp": pd.Series([pd.NaT], dtype="datetime64[ns, UTC]")})
        )


def test_declaration_builds_an_on_demand_view_whose_source_runs_alone():
    view = DateExpansions(name="obs_dates", country="GB", prefix="obs_")
    assert [f.name for f in view.features] == [f"obs_{f}" for f in DATE_FEATURES]
    # Feast re-executes the UDF from its source text: it must work in a bare namespace
    ns: dict = {}
    exec(view.feature_transformation.udf_string, ns)
    frame = pd.DataFrame({"event_timestamp": pd.to_datetime(["2025-12-25T10:00:00Z"])})
    out = ns["obs_dates"](frame)
    assert out.obs_days_since_holiday[0] == 0
    assert date(2025, 12, 25) in holidays.country_holidays("GB", years=2025)


def test_unknown_country_is_refused():
    with pytest.raises(FeatureRepoError, match="no calendar for country 'XX'"):
        DateExpansions(name="d", country="XX")


@pytest.mark.parametrize("when", ["2194-06-01T00:00:00Z", "1700-06-01T00:00:00Z"])
def test_a_time_outside_the_holiday_calendar_is_a_clear_error(when):
    """No holiday within a year of the date: days since/until are undefined, not made up."""
    from framework.errors import DataError

    frame = pd.DataFrame({"event_timestamp": [pd.Timestamp("2025-06-01", tz="UTC"), when]})
    with pytest.raises(DataError, match="has no US holiday within a year"):
        expand_dates(frame)
