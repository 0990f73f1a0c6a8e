"""Splitters: train / validation / test by observation time, with a purge between them.

- ``split_by_time``: the last 15% of observation times test, the 15% before them
  validate, the rest train, with the rows whose label window (t, t + horizon]
  reaches into the next part purged in between (no label sees the period it is
  judged on); validation and test each keep at least ``min_times`` observation
  times after the purge.
- ``split_rows_by_time``: the same when each row's label becomes known at a time of
  its own (a forecast: the end of its target day).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from framework.common.columns import TIMESTAMP
from framework.errors import DataError

__all__ = ["Split", "split_by_time", "split_rows_by_time"]

# a part this small (rows, or days between its first and last observation) gives a
# noisy metric; a purge that takes this share of the rows wastes most of the data
SMALL_ROWS = 200
SMALL_DAYS = 7.0
LARGE_PURGE = 0.2


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    purged: int = 0  # rows in none of the parts: their label window reaches the next part

    def ranges(self) -> dict[str, list[Any]]:
        """Each part's [first time, last time, rows, distinct observation times, days]."""
        out: dict[str, list[Any]] = {}
        for name, part in (
            ("train", self.train),
            ("validation", self.validation),
            ("test", self.test),
        ):
            ts = part[TIMESTAMP]
            days = (ts.max() - ts.min()).total_seconds() / 86_400
            out[name] = [
                ts.min().isoformat(),
                ts.max().isoformat(),
                len(part),
                int(ts.nunique()),
                round(days, 2),
            ]
        return out

    def warnings(self) -> list[str]:
        """What a reader of the numbers should know: a small validation or test part, a
        purge that took a large share of the rows, a test part that outweighs train."""
        out = []
        total = len(self.train) + len(self.validation) + len(self.test) + self.purged
        if total and self.purged / total > LARGE_PURGE:
            out.append(
                f"the purge between the parts removed {self.purged / total:.0%} of the rows "
                f"({self.purged:,} of {total:,}): their label windows reach into the next part; "
                "a shorter label horizon or a longer span of data keeps more of them"
            )
        ranges = self.ranges()
        for part in ("validation", "test"):
            rows, days = ranges[part][2], ranges[part][4]
            if rows < SMALL_ROWS or days < SMALL_DAYS:
                out.append(
                    f"{part} holds only {rows:,} rows over {days:g} days: its metric is noisy "
                    "(a longer span of data makes it firmer)"
                )
        if len(self.test) > len(self.train):
            out.append(
                f"test ({len(self.test):,} rows) outweighs train ({len(self.train):,}): the "
                "traffic grew toward the end of the data, so the model learns from less than "
                "it is judged on"
            )
        return out


def _observation_times(frame: pd.DataFrame, min_times: int) -> tuple[np.ndarray, int, int]:
    """The sorted distinct observation times, their number, and the minimum per part
    (refused when three parts cannot each have it)."""
    times = np.sort(frame[TIMESTAMP].unique())
    n = len(times)
    need = max(1, min_times)
    if n < 3 * need:
        raise DataError(
            f"A time-based split needs at least {3 * need} observation times ({need} each for "
            f"train, validation and test); the training set has {n}. Use more data, or lower "
            "the problem's min_split_times."
        )
    return times, n, need


def split_by_time(
    frame: pd.DataFrame,
    horizon_days: float,
    fractions: tuple[float, float] = (0.15, 0.15),
    *,
    min_times: int = 3,
) -> Split:
    """Train / validation / test by observation time, with a purge between them.

    Test is the last ``fractions[1]`` of the distinct observation times (at least
    ``min_times``). Validation is the last ``fractions[0]`` (at least ``min_times``) of the
    times whose label window (t, t + horizon] ends before test starts, and training is
    every time whose label window ends before validation starts: the purge gap is taken
    between the parts, so validation and test keep their share of observation times.
    Too little data for that is refused with the numbers.
    """
    times, n, need = _observation_times(frame, min_times)
    horizon = pd.Timedelta(days=horizon_days)
    n_test = max(need, round(n * fractions[1]))
    test_start = times[n - n_test]
    before = times[times + horizon < test_start]  # label windows end before test starts
    n_val = max(need, round(n * fractions[0]))
    span = (pd.Timestamp(times[-1]) - pd.Timestamp(times[0])).total_seconds() / 86_400
    if len(before) < need + n_val and len(before) >= 2 * need:
        n_val = len(before) - need  # fewer than the share, at least the minimum
    if len(before) < 2 * need:
        raise DataError(
            f"The training set spans {span:g} days ({n} observation times): after the test "
            f"split's {n_test} times and a {horizon_days:g}-day purge, {len(before)} times are "
            f"left for train and validation, which need at least {need} each (min_split_times)."
            " Use more data, a shorter label horizon, or lower min_split_times."
        )
    val_start = before[len(before) - n_val]
    ts = frame[TIMESTAMP]
    train = frame[ts + horizon < val_start]
    validation = frame[(ts >= val_start) & (ts + horizon < test_start)]
    test = frame[ts >= test_start]
    if train[TIMESTAMP].nunique() < need:
        raise DataError(
            f"The training set spans {span:g} days ({n} observation times): the train split "
            f"keeps {train[TIMESTAMP].nunique()} observation times after the {horizon_days:g}-day "
            f"purge before validation (needs {need}). Use more data, a shorter label horizon, "
            "or lower min_split_times."
        )
    purged = len(frame) - len(train) - len(validation) - len(test)
    return Split(train, validation, test, purged)


def split_rows_by_time(
    frame: pd.DataFrame,
    ends: pd.Series,
    fractions: tuple[float, float] = (0.15, 0.15),
    *,
    min_times: int = 3,
) -> Split:
    """Train / validation / test by observation time when each row's label becomes known
    at its own time ``ends`` (a forecast: the end of its target day). Test is the last
    ``fractions[1]`` of the observation times, validation the ``fractions[0]`` before it
    (each at least ``min_times``); a validation row is kept when its label is known
    before test starts, a training row when its label is known before validation starts."""
    times, n, need = _observation_times(frame, min_times)
    n_test = max(need, round(n * fractions[1]))
    test_start = times[n - n_test]
    ts = frame[TIMESTAMP]
    test = frame[ts >= test_start]
    known = frame[(ts < test_start) & (ends < test_start)]  # labels known before test
    # validation: the last fractions[0] of the times (at least ``need``) that keep a row
    kept = np.sort(known[TIMESTAMP].unique())
    n_val = max(need, round(n * fractions[0]))
    if len(kept) < n_val + need:
        raise DataError(
            f"The training set has {n} observation times: after the {n_test} of test, "
            f"{len(kept)} have a label known before test starts; validation and train need "
            f"{n_val} and {need}. Use more data or lower min_split_times."
        )
    val_start = kept[len(kept) - n_val]
    validation = known[known[TIMESTAMP] >= val_start]
    train = frame[(ts < val_start) & (ends < val_start)]
    if train[TIMESTAMP].nunique() < need:
        raise DataError(
            f"The training set has {n} observation times: {n_test} go to test and {n_val} to "
            f"validation, which leaves {train[TIMESTAMP].nunique()} with a label known before "
            f"validation starts (needs {need}). Use more data or lower min_split_times."
        )
    purged = len(frame) - len(train) - len(validation) - len(test)
    return Split(train, validation, test, purged)
