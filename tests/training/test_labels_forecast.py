"""Forecast labels (DailyTotal) against brute force, and the forecast's time split."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from feast import FileSource
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.declare.problems import Cutoffs, DailyTotal, Problem
from framework.errors import FeatureRepoError
from framework.features.horizons import training_horizons
from framework.tasks.splitters import split_rows_by_time
from framework.training.labels import build_observations

T0 = pd.Timestamp("2025-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)


def _problem(path, horizon=40, column=None, **kw):
    source = FileSource(name="ev", path=str(path), timestamp_field="event_timestamp")
    args = {
        "name": "f",
        "task": "forecast",
        "events": source,
        "label": DailyTotal(horizon_days=horizon, where='kind == "buy"', column=column),
        "spine": Cutoffs(every=5, active_within=10, warmup=10),
        "feature_service": "fs",
        "metric": "mae",
        "success_threshold": 1.0,
        "entity": "k",
    }
    return Problem(**{**args, **kw})


def _brute_force(events, horizon, column):
    """Cutoffs every 5 days from (first event's midnight + 10 days) while day(c) + 1 has
    ended by the last event; entities with an event in (c - 10 days, c]; one row per
    training horizon h whose target day ends before the last event's day starts."""
    first, last = events.event_timestamp.min(), events.event_timestamp.max()
    start = first.floor("D") + 10 * DAY
    last_day = last.floor("D")
    out = {}
    c = start
    while c <= last - 2 * DAY:
        active = events[(events.event_timestamp > c - 10 * DAY) & (events.event_timestamp <= c)]
        for key in sorted(active.k.unique()):
            for h in training_horizons(horizon):
                target = c.floor("D") + h * DAY
                if target >= last_day:
                    continue
                on = events[
                    (events.k == key)
                    & (events.kind == "buy")
                    & (events.event_timestamp >= target)
                    & (events.event_timestamp < target + DAY)
                ]
                out[(key, c, h)] = float(on[column].sum()) if column else float(len(on))
        c += 5 * DAY
    return out


@pytest.mark.slow  # over 8 s: left out of the fast subset
@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    string_keys=st.booleans(),
    column=st.sampled_from([None, "qty"]),
    horizon=st.sampled_from([3, 30, 40]),
)
def test_daily_labels_match_brute_force(tmp_path_factory, seed, string_keys, column, horizon):
    rng = np.random.default_rng(seed)
    keys = ["p1", "p2", "p3"] if string_keys else [1, 2, 3]
    n = 400
    events = pd.DataFrame(
        {
            "k": rng.choice(keys, n),
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 80 * 86_400, n), unit="s"),
            "kind": rng.choice(["buy", "look"], n, p=[0.7, 0.3]),
            "qty": rng.integers(1, 5, n).astype(float),
        }
    ).astype({"event_timestamp": "datetime64[us, UTC]"})
    path = tmp_path_factory.mktemp("f") / "events.parquet"
    events.to_parquet(path)
    got = build_observations(_problem(path, horizon, column))
    expected = _brute_force(events, horizon, column)
    have = {(r.k, r.event_timestamp, r.horizon_days): r.label for r in got.itertuples(index=False)}
    assert have == expected
    assert len(have) > 50  # the working path: many labelled rows


def test_a_forecast_needs_cutoffs_and_whole_days(tmp_path):
    from framework.declare.problems import EventSpine, Sum

    path = tmp_path / "e.parquet"
    with pytest.raises(FeatureRepoError, match="spine must be Cutoffs"):
        _problem(path, spine=EventSpine())
    with pytest.raises(FeatureRepoError, match=r"its label must be DailyTotal\(...\)"):
        _problem(path, label=Sum("qty", horizon=timedelta(days=3)))
    with pytest.raises(FeatureRepoError, match="must be one of"):
        _problem(path, metric="r2")


def test_forecast_split_keeps_rows_whose_target_is_known_before_the_next_part():
    origins = pd.date_range("2025-01-01", periods=20, freq="7D", tz="UTC")
    frame = pd.DataFrame(
        {
            "event_timestamp": np.repeat(origins, 30),
            "horizon_days": np.tile(np.arange(1, 31), 20),
        }
    )
    ends = frame.event_timestamp + pd.to_timedelta(frame.horizon_days + 1, unit="D")
    split = split_rows_by_time(frame, ends)
    test_start = split.test.event_timestamp.min()
    val_start = split.validation.event_timestamp.min()
    assert split.test.event_timestamp.nunique() == 3 and len(split.test) == 90  # all horizons
    assert split.validation.event_timestamp.nunique() == 3
    v_end = split.validation.event_timestamp + pd.to_timedelta(
        split.validation.horizon_days + 1, "D"
    )
    t_end = split.train.event_timestamp + pd.to_timedelta(split.train.horizon_days + 1, "D")
    assert (v_end < test_start).all() and (t_end < val_start).all()
    # the origin just before test keeps its horizons that end before test: h + 1 < 7
    last_val = split.validation[split.validation.event_timestamp == origins[16]]
    assert last_val.horizon_days.tolist() == [1, 2, 3, 4, 5]
    assert len(split.train) + len(split.validation) + len(split.test) + split.purged == len(frame)
