"""Date expansions: calendar features of the observation (or request) timestamp.

``DateExpansions(...)`` is a Feast on-demand feature view over a request field
(by default ``event_timestamp``, the entity-row timestamp of historical
retrieval). It yields, in UTC:

=============================  =====================================================
``<prefix>year``               calendar year
``<prefix>month``              1..12
``<prefix>day``                day of month, 1..31
``<prefix>day_of_week``        0 = Monday .. 6 = Sunday
``<prefix>is_weekend``         Saturday or Sunday
``<prefix>days_since_holiday`` days since the last public holiday (0 on a holiday)
``<prefix>days_until_holiday`` days until the next public holiday (0 on a holiday)
=============================  =====================================================

Holidays come from the ``holidays`` package for the configured country.
Feast re-executes on-demand functions from their source text, so the function
this module generates is self-contained: it imports the framework inside its body.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from framework.errors import DataError, FeatureRepoError

if TYPE_CHECKING:
    from feast import OnDemandFeatureView

__all__ = ["DATES_TAG", "DATE_FEATURES", "DateExpansions", "expand_dates", "to_utc_timestamps"]

DATES_TAG = "lifecycle.date_expansions"  # marks the calendar features

DATE_FEATURES = (
    "year",
    "month",
    "day",
    "day_of_week",
    "is_weekend",
    "days_since_holiday",
    "days_until_holiday",
)


@lru_cache(maxsize=32)
def _holiday_days(country: str, first_year: int, last_year: int) -> np.ndarray:
    import holidays

    try:
        calendar = holidays.country_holidays(country, years=range(first_year, last_year + 1))
    except NotImplementedError as exc:
        raise FeatureRepoError(
            f"The holidays package has no calendar for country {country!r}; "
            "use an ISO 3166 code such as 'US', 'GB' or 'DE'."
        ) from exc
    days = np.array(sorted(calendar.keys()), dtype="datetime64[D]")
    return days.astype(np.int64)


def to_utc_timestamps(values: pd.Series) -> pd.Series:
    """Timestamps as tz-aware UTC; integers are epoch seconds (how Feast sends them over HTTP)."""
    try:
        if pd.api.types.is_integer_dtype(values) or pd.api.types.is_float_dtype(values):
            return pd.to_datetime(values, unit="s", utc=True)
        return pd.to_datetime(values, utc=True)
    except (TypeError, ValueError, OverflowError) as exc:  # OutOfBoundsDatetime included
        raise DataError(f"Cannot read {values.name!r} as timestamps: {exc}") from exc


def expand_dates(
    inputs: pd.DataFrame,
    *,
    timestamp_field: str = "event_timestamp",
    country: str = "US",
    prefix: str = "event_",
) -> pd.DataFrame:
    """The date features of ``inputs[timestamp_field]`` (a pure function, vectorised)."""
    ts = to_utc_timestamps(inputs[timestamp_field])
    if ts.isna().any():
        raise DataError(f"{timestamp_field!r} has missing timestamps; every row needs one.")
    # Calendar fields with numpy's datetime64 units (UTC): no per-field pandas accessors.
    days = ts.dt.tz_convert(None).to_numpy().astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    day_numbers = days.astype(np.int64)
    dow = ((day_numbers + 3) % 7).astype("int32")  # 1970-01-01 was a Thursday; Monday is 0
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    out = {
        f"{prefix}year": years.astype("int32"),
        f"{prefix}month": (months.astype(np.int64) % 12 + 1).astype("int32"),
        f"{prefix}day": ((days - months).astype(np.int64) + 1).astype("int32"),
        f"{prefix}day_of_week": dow,
        f"{prefix}is_weekend": dow >= 5,
    }
    if len(days):
        holidays_ = _holiday_days(country, int(years.min()) - 1, int(years.max()) + 1)
        after = np.searchsorted(holidays_, day_numbers, side="left")  # first holiday >= day
        before = np.searchsorted(holidays_, day_numbers, side="right") - 1  # last holiday <= day
        outside = (before < 0) | (after >= len(holidays_))
        if outside.any():
            day = days[int(np.argmax(outside))]
            raise DataError(
                f"{timestamp_field!r} {day} has no {country} holiday within a year of it in the "
                "holidays package's calendar (it covers about 1777-2100 for most countries); "
                "days since/until a holiday are not defined there. Use times within its years."
            )
        since = day_numbers - holidays_[np.clip(before, 0, None)]
        until = holidays_[np.clip(after, None, len(holidays_) - 1)] - day_numbers
        out[f"{prefix}days_since_holiday"] = since.astype("int32")
        out[f"{prefix}days_until_holiday"] = until.astype("int32")
    else:
        out[f"{prefix}days_since_holiday"] = np.array([], dtype="int32")
        out[f"{prefix}days_until_holiday"] = np.array([], dtype="int32")
    return pd.DataFrame(out, index=inputs.index)


_UDF_TEMPLATE = """def {name}(inputs):
    from framework.declare.dates import expand_dates

    return expand_dates(
        inputs, timestamp_field={field!r}, country={country!r}, prefix={prefix!r}
    )
"""


def DateExpansions(
    *,
    name: str,
    timestamp_field: str = "event_timestamp",
    country: str = "US",
    prefix: str = "event_",
    request_source_name: str | None = None,
    description: str = "",
) -> OnDemandFeatureView:
    """Declare the date expansions of a request timestamp as an on-demand feature view."""
    from feast import Field, OnDemandFeatureView, RequestSource
    from feast.types import Bool, Int32, UnixTimestamp

    if not name.isidentifier():
        raise FeatureRepoError(f"DateExpansions name {name!r} must be a Python identifier.")
    _holiday_days(country, 2000, 2000)  # fail at declaration time on an unknown country
    source = RequestSource(
        name=request_source_name or f"{name}_request",
        schema=[Field(name=timestamp_field, dtype=UnixTimestamp)],
    )
    udf_string = _UDF_TEMPLATE.format(
        name=name, field=timestamp_field, country=country, prefix=prefix
    )
    namespace: dict[str, Any] = {}
    exec(udf_string, namespace)
    schema = [
        Field(name=f"{prefix}{f}", dtype=Bool if f == "is_weekend" else Int32)
        for f in DATE_FEATURES
    ]
    return OnDemandFeatureView(
        name=name,
        sources=[source],
        schema=schema,
        mode="pandas",
        udf=namespace[name],
        udf_string=udf_string,
        description=description
        or f"Calendar features of {timestamp_field} (UTC) with {country} public holidays.",
        tags={DATES_TAG: country},
    )
