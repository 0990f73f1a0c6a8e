"""Forecast rows: one per (entity, origin t, horizon h), with what is known at t about
the target day d = day(t) + h (UTC days).

A forecast problem (label ``DailyTotal``) predicts a daily total for each of the
next H days. Training and batch prediction build the same extra features here:

- ``horizon_days`` (h) and the target day's calendar (``target_month``,
  ``target_day``, ``target_day_of_week``, ``target_is_weekend``,
  ``target_days_since_holiday``, ``target_days_until_holiday``; the label's country);
- ``naive_week``: the daily total on the latest day before t that falls on the
  target's weekday (d - 7k with the smallest k such that the day ended before t),
  and ``naive_year``: the total on d - 364 (the same weekday a year before) when that
  day ended before t. Days before the source's first day are unknown (NaN); a later
  day without events is 0.

The last day known at t is day(t) - 1 (a day ends at midnight; day(t) has not ended at
t), so nothing here reads an event after t.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from framework.common.times import US_PER_DAY
from framework.declare.dates import expand_dates
from framework.declare.expressions import filter_to_sql
from framework.errors import DataError

__all__ = [
    "HORIZON",
    "HORIZON_FEATURES",
    "TARGET_DATE",
    "DailySeries",
    "daily_series",
    "horizon_features",
    "training_horizons",
]

HORIZON = "horizon_days"
TARGET_DATE = "target_date"
CALENDAR = (
    "target_month",
    "target_day",
    "target_day_of_week",
    "target_is_weekend",
    "target_days_since_holiday",
    "target_days_until_holiday",
)
HORIZON_FEATURES = [HORIZON, *CALENDAR, "naive_week", "naive_year"]


def training_horizons(days: int) -> list[int]:
    """The horizons a training set samples: every day of the first four weeks, every 3rd
    to 13 weeks, every 5th after (3 and 5 are prime to 7: every weekday is reached)."""
    grid = set(range(1, min(days, 28) + 1))
    grid |= set(range(31, min(days, 91) + 1, 3)) | set(range(96, days + 1, 5)) | {days}
    return sorted(grid)


class DailySeries:
    """Daily totals per entity: a lookup of (entity, day) -> total, 0 for a day without
    events on or after ``first_day`` (the source's first day), NaN before it."""

    def __init__(self, keys: list[str], frame: pd.DataFrame, first_day: int, last_day: int):
        self.keys = keys
        self.first_day = first_day
        self.last_day = last_day  # the source's last day (it may not have ended)
        index = pd.MultiIndex.from_frame(frame[[*keys, "day"]]) if len(frame) else None
        self._values = (
            pd.Series(frame["value"].to_numpy(), index=index) if index is not None else None
        )

    def lookup(self, entities: pd.DataFrame, days: np.ndarray) -> np.ndarray:
        """The total of each row's entity (``entities[keys]``) on ``days[i]``."""
        days = np.asarray(days, dtype=np.int64)
        out = np.where(days >= self.first_day, 0.0, np.nan)
        if self._values is not None and len(days):
            probe = pd.MultiIndex.from_arrays(
                [entities[k].to_numpy() for k in self.keys] + [days], names=[*self.keys, "day"]
            )
            found = self._values.reindex(probe).to_numpy(dtype="float64")
            out = np.where(np.isnan(found), out, found)
        return out


def daily_series(
    source: Any,
    keys: list[str],
    *,
    where: str | None = None,
    column: str | None = None,
    until_us: int | None = None,
) -> DailySeries:
    """The daily totals (count of events matching ``where``, or sum of ``column``) per
    entity from an event source (a FileSource), over events at or before ``until_us``."""
    import duckdb

    path, ts = str(source.path), source.timestamp_field
    cond = filter_to_sql(where) if where else "TRUE"
    value = f'SUM(CAST("{column}" AS DOUBLE))' if column else "COUNT(*)"
    until = f"AND t <= {int(until_us)}" if until_us is not None else ""
    names = ", ".join(f'"{k}"' for k in keys)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            f'CREATE TEMP VIEW ev AS SELECT *, epoch_us(CAST("{ts}" AS TIMESTAMPTZ)) AS t '
            f"FROM read_parquet('{path.replace(chr(39), chr(39) * 2)}')"
        )
        bounds = con.execute(f"SELECT min(t), max(t) FROM ev WHERE TRUE {until}").fetchone()
        first, last = bounds if bounds else (None, None)
        frame = con.execute(
            f"SELECT {names}, CAST(floor(t / {US_PER_DAY}) AS BIGINT) AS day, {value} AS value "
            f"FROM ev WHERE ({cond}) {until} GROUP BY ALL"
        ).df()
    except duckdb.Error as exc:
        raise DataError(f"Reading the daily totals of {path} failed: {exc}") from exc
    finally:
        con.close()
    if first is None:
        raise DataError(f"The event source {path} has no events to forecast from.")
    return DailySeries(keys, frame, int(first // US_PER_DAY), int(last // US_PER_DAY))


def horizon_features(
    rows: pd.DataFrame, series: DailySeries, *, country: str, origin: str = "event_timestamp"
) -> pd.DataFrame:
    """``rows`` (keys, ``origin``, ``horizon_days``) with the target date and every column
    of ``HORIZON_FEATURES`` (see the module docstring)."""
    t_us = (
        pd.to_datetime(rows[origin], utc=True)
        .astype("datetime64[us, UTC]")
        .astype("int64")
        .to_numpy()
    )
    h = rows[HORIZON].to_numpy(dtype=np.int64)
    origin_day = t_us // US_PER_DAY
    target = origin_day + h
    known = origin_day - 1  # the last day that has ended at t
    week_back = target - 7 * -(-(h + 1) // 7)  # smallest k >= 1 with target - 7k <= known
    year_back = target - 364
    out = rows.copy()
    out[TARGET_DATE] = pd.to_datetime(target * US_PER_DAY, unit="us", utc=True).astype(
        "datetime64[us, UTC]"
    )
    calendar = expand_dates(
        pd.DataFrame({"d": out[TARGET_DATE].to_numpy()}, index=out.index),
        timestamp_field="d",
        country=country,
        prefix="target_",
    )
    for name in CALENDAR:
        out[name] = calendar[name].astype("int32")
    out["naive_week"] = series.lookup(out, week_back)
    naive_year = series.lookup(out, year_back)
    out["naive_year"] = np.where(year_back <= known, naive_year, np.nan)
    return out
