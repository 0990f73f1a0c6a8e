"""Labels look forward over (t, t + H]; the spine keeps only complete horizons."""

from __future__ import annotations

import pandas as pd
import pytest
from feast import FileSource

from framework.declare.problems import NoEvents, Problem, Sum, WeeklyCutoffs
from framework.errors import DataError, FeatureRepoError
from framework.training.labels import build_observations

D = pd.Timedelta(days=1)
T0 = pd.Timestamp("2025-01-01", tz="UTC")


def _problem(tmp_path, events, task="binary", **kw):
    path = tmp_path / "events.parquet"
    events = events.assign(event_timestamp=events.event_timestamp.astype("datetime64[us, UTC]"))
    events.to_parquet(path, index=False)
    source = FileSource(name="ev", path=str(path), timestamp_field="event_timestamp")
    label = (
        NoEvents(horizon_days=10)
        if task == "binary"
        else Sum("amount", horizon_days=10, where='event_type == "purchase"')
    )
    args = {
        "name": "p",
        "task": task,
        "events": source,
        "label": label,
        "spine": WeeklyCutoffs(active_within_days=7, every_days=7, warmup_days=7),
        "feature_service": "fs",
        "metric": "pr_auc" if task == "binary" else "mae",
        "success_threshold": 0.5,
        "entity": "user_id",
    }
    return Problem(**{**args, **kw})


def _events(rows):
    """The rows, plus an event of user 0 at T0: cutoffs then fall on days 7, 14, 21, ..."""
    rows = [(0, T0, "page_view", None), *rows]
    return pd.DataFrame(rows, columns=["user_id", "event_timestamp", "event_type", "amount"])


def _brute_force(rows, horizon, active, cutoff_days):
    out = {}
    for c in cutoff_days:
        t = T0 + c * D
        for user in sorted({r[0] for r in rows} | {0}):
            ts = [r[1] for r in rows if r[0] == user] + ([T0] if user == 0 else [])
            if not any(t - active * D < x <= t for x in ts):
                continue
            out[(user, c)] = int(not any(t < x <= t + horizon * D for x in ts))
    return out


def test_churn_matches_brute_force(tmp_path):
    rows = [
        (1, T0 + 1 * D, "page_view", None),
        (1, T0 + 7 * D, "page_view", None),
        (1, T0 + 17 * D, "page_view", None),
        (2, T0 + 3 * D, "page_view", None),
        (3, T0 + 20 * D, "purchase", 5.0),
        (3, T0 + 31 * D, "page_view", None),
        (4, T0 + 14 * D + pd.Timedelta(microseconds=1), "page_view", None),
        (9, T0 + 41 * D, "page_view", None),
    ]
    obs = build_observations(_problem(tmp_path, _events(rows)))
    got = {(r.user_id, (r.event_timestamp - T0).days): r.label for r in obs.itertuples()}
    # cutoffs at 7, 14, 21, 28 (28 + 10 <= 41; 35 + 10 > 41)
    assert got == _brute_force(rows, 10, 7, [7, 14, 21, 28])
    assert got[(1, 7)] == 0  # an event exactly at t + H is inside the window
    assert (4, 14) not in got  # an event a microsecond after t is not "active before t"
    assert got[(2, 7)] == 1


def test_spend_sums_purchases_in_the_window(tmp_path):
    rows = [
        (1, T0 + 6 * D, "purchase", 100.0),  # before t: not in the label
        (1, T0 + 7 * D, "purchase", 1.0),  # exactly at t: not in (t, t+H]
        (1, T0 + 8 * D, "purchase", 2.5),
        (1, T0 + 17 * D, "purchase", 4.0),  # exactly at t + H: in
        (1, T0 + 17 * D, "page_view", None),
        (1, T0 + 18 * D, "purchase", 8.0),  # after the horizon
        (9, T0 + 30 * D, "page_view", None),
    ]
    obs = build_observations(_problem(tmp_path, _events(rows), task="regression"))
    got = {(r.user_id, (r.event_timestamp - T0).days): r.label for r in obs.itertuples()}
    assert got[(1, 7)] == pytest.approx(6.5)
    assert got[(1, 14)] == pytest.approx(12.0)  # 17d and 18d purchases, in (14d, 24d]
    assert obs.label.dtype == "float64"


def test_horizon_longer_than_the_data_is_an_empty_spine(tmp_path):
    rows = [(1, T0, "page_view", None), (1, T0 + 12 * D, "page_view", None)]
    with pytest.raises(DataError, match=r"empty spine.*12 days"):
        build_observations(_problem(tmp_path, _events(rows)))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"task": "rank"}, "must be 'binary', 'multiclass', 'regression', 'forecast' or 'ranking'"),
        ({"metric": "mae"}, "must be one of"),
        ({"label": Sum("amount", horizon_days=3)}, "label must be NoEvents"),
        ({"candidates": ("xgboost",)}, "unknown candidate"),
        ({"name": "Churn!"}, "lower_snake_case"),
    ],
)
def test_bad_problem_declarations(tmp_path, kw, message):
    with pytest.raises(FeatureRepoError, match=message):
        _problem(tmp_path, _events([(1, T0, "page_view", None)]), **kw)


def test_bad_horizon():
    with pytest.raises(FeatureRepoError, match="whole number of days > 0"):
        NoEvents(horizon_days=0)
