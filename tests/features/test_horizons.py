"""Forecast rows: horizon features against a brute-force oracle written from the
definitions (days end at midnight UTC; a day is known at t once it has ended)."""

from __future__ import annotations

from datetime import timedelta

import holidays
import numpy as np
import pandas as pd
import pytest
from feast import FileSource
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.features.horizons import (
    HORIZON_FEATURES,
    daily_series,
    horizon_features,
    training_horizons,
)

T0 = pd.Timestamp("2025-03-01", tz="UTC")


def test_training_horizons_reach_every_weekday():
    grid = training_horizons(365)
    assert grid[:28] == list(range(1, 29)) and grid[-1] == 365
    assert {h % 7 for h in grid if h > 28} == set(range(7))  # long horizons too
    assert training_horizons(7) == list(range(1, 8))
    assert 90 < len(grid) < 120


def _events(rng, keys, days, n):
    return pd.DataFrame(
        {
            "k": rng.choice(keys, n),
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, days * 86_400, n), unit="s"),
            "kind": rng.choice(["buy", "look"], n),
            "qty": rng.integers(1, 4, n).astype(float),
        }
    )


def _oracle(events, key, t, h, column, first_day):
    """The definitions, one row at a time, in plain Python dates."""
    rows = events[(events.k == key) & (events.kind == "buy")]
    origin = t.date()
    target = origin + timedelta(days=h)
    known = origin - timedelta(days=1)

    def total(day):
        if day < first_day:
            return float("nan")
        on = rows[rows.event_timestamp.dt.date == day]
        return float(on[column].sum()) if column else float(len(on))

    k = 1
    while target - timedelta(days=7 * k) > known:
        k += 1
    week = total(target - timedelta(days=7 * k))
    back = target - timedelta(days=364)
    year = total(back) if back <= known else float("nan")
    return target, week, year


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    string_keys=st.booleans(),
    column=st.sampled_from([None, "qty"]),
    midnight=st.booleans(),
)
def test_horizon_features_match_the_definitions(
    tmp_path_factory, seed, string_keys, column, midnight
):
    rng = np.random.default_rng(seed)
    keys = ["a", "b", "c"] if string_keys else [1, 2, 3]
    events = _events(rng, keys, 420, 1_500)
    path = tmp_path_factory.mktemp("ev") / "events.parquet"
    events.to_parquet(path)
    source = FileSource(name="ev", path=str(path), timestamp_field="event_timestamp")
    series = daily_series(source, ["k"], where='kind == "buy"', column=column)
    first_day = events.event_timestamp.min().date()
    origins = T0 + pd.to_timedelta(rng.integers(30, 400, 6), unit="D")
    if not midnight:
        origins = origins + pd.to_timedelta(rng.integers(1, 86_400, 6), unit="s")
    rows = pd.DataFrame(
        {
            "k": rng.choice(keys, 6),
            "event_timestamp": origins,
            "horizon_days": rng.choice([1, 6, 7, 8, 13, 14, 30, 200, 363, 364, 365], 6),
        }
    )
    out = horizon_features(rows, series, country="US")
    assert set(HORIZON_FEATURES) <= set(out.columns)
    us = holidays.country_holidays("US", years=range(2024, 2028))
    for row in out.itertuples():
        target, week, year = _oracle(
            events, row.k, row.event_timestamp, row.horizon_days, column, first_day
        )
        assert row.target_date.date() == target
        assert row.target_day_of_week == target.weekday() and row.target_month == target.month
        since = min((target - d).days for d in us if d <= target)
        assert row.target_days_since_holiday == since
        assert np.isclose(row.naive_week, week, equal_nan=True), (row, week)
        assert np.isclose(row.naive_year, year, equal_nan=True), (row, year)


def test_nothing_after_the_origin_is_read(tmp_path):
    """Events after t change no horizon feature at t (they change the label only)."""
    rng = np.random.default_rng(1)
    events = _events(rng, [1, 2], 200, 2_000)
    t = T0 + pd.Timedelta(days=120, hours=9)
    paths = {}
    for name, frame in (("all", events), ("until_t", events[events.event_timestamp <= t])):
        paths[name] = tmp_path / f"{name}.parquet"
        frame.to_parquet(paths[name])
    rows = pd.DataFrame(
        {"k": [1, 2] * 3, "event_timestamp": t, "horizon_days": [1, 1, 7, 7, 60, 60]}
    )
    outs = [
        horizon_features(
            rows,
            daily_series(
                FileSource(name=n, path=str(p), timestamp_field="event_timestamp"),
                ["k"],
                where='kind == "buy"',
            ),
            country="US",
        )
        for n, p in paths.items()
    ]
    pd.testing.assert_frame_equal(outs[0], outs[1])
    # and the series read with until_us equals the truncated file's
    cut = daily_series(
        FileSource(name="x", path=str(paths["all"]), timestamp_field="event_timestamp"),
        ["k"],
        where='kind == "buy"',
        until_us=int(t.value // 1_000),
    )
    pd.testing.assert_frame_equal(horizon_features(rows, cut, country="US"), outs[0])


def test_a_day_without_events_is_zero_and_before_the_data_unknown(tmp_path):
    events = pd.DataFrame(
        {
            "k": ["x", "x"],
            "event_timestamp": [T0 + pd.Timedelta(hours=5), T0 + pd.Timedelta(days=3, hours=1)],
        }
    )
    events.to_parquet(tmp_path / "e.parquet")
    series = daily_series(
        FileSource(name="e", path=str(tmp_path / "e.parquet"), timestamp_field="event_timestamp"),
        ["k"],
    )
    t = T0 + pd.Timedelta(days=10)
    rows = pd.DataFrame({"k": ["x"] * 4, "event_timestamp": t, "horizon_days": [1, 7, 14, 21]})
    out = horizon_features(rows, series, country="US")
    # events on days 0 and 3; origin day 10 knows days <= 9. Targets 11, 17, 24, 31 ->
    # the latest same weekday known: days 4 (no event), 3, 3, 3 (one event each)
    assert out.naive_week.tolist() == [0.0, 1.0, 1.0, 1.0]
    # origin day 2 knows days <= 1: targets 3, 6 reach back before day 0 (unknown);
    # targets 7 and 8 reach days 0 (one event) and 1 (none)
    early = rows.assign(event_timestamp=T0 + pd.Timedelta(days=2), horizon_days=[1, 4, 5, 6])
    naive = horizon_features(early, series, country="US").naive_week.tolist()
    assert np.isnan(naive[:2]).all() and naive[2:] == [1.0, 0.0]


def test_an_unknown_entity_has_zero_totals(tmp_path):
    events = pd.DataFrame({"k": [1], "event_timestamp": [T0]})
    events.to_parquet(tmp_path / "e.parquet")
    series = daily_series(
        FileSource(name="e", path=str(tmp_path / "e.parquet"), timestamp_field="event_timestamp"),
        ["k"],
    )
    rows = pd.DataFrame(
        {"k": [99], "event_timestamp": [T0 + pd.Timedelta(days=30)], "horizon_days": [3]}
    )
    assert horizon_features(rows, series, country="US").naive_week.tolist() == [0.0]


def test_forecast_horizons_are_whole_days():
    from framework.declare.problems import DailyTotal
    from framework.errors import FeatureRepoError

    for bad in (timedelta(hours=5), timedelta(days=4_000)):
        with pytest.raises(FeatureRepoError, match="whole days"):
            DailyTotal(horizon=bad)
    assert DailyTotal(horizon_days=365).days == 365
