"""The window tables against a brute-force oracle: value at t covers events in (t - W, t]."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from feast import Entity, FileSource, ValueType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.declare.windows import Aggregate, WindowedFeatureView, WindowSpec
from framework.features.pit import load_index
from framework.prepare.window_index import load_window_index
from framework.prepare.window_tables import build_window_table

BASE = pd.Timestamp("2025-03-01", tz="UTC")
WINDOWS = [1, 7, 30]
AGGREGATES = [
    Aggregate("events", "count"),
    Aggregate("purchases", "count", where='event_type == "purchase"'),
    Aggregate("amount", "sum", column="amount"),
    Aggregate("basket", "mean", column="amount"),
    Aggregate("pv_google", "count", where='event_type == "page_view" and source == "google"'),
    # purchases per page view, leaning to 1 in 8 (null before a user's first event: the
    # retrieval fills 1/8 there)
    Aggregate(
        "conversion",
        "ratio",
        where='event_type == "purchase"',
        per='event_type == "page_view"',
        prior=(1, 8),
    ),
]


def _empty(name: str) -> float:
    """What a feature is where no change point is in reach (before the retrieval's fill)."""
    return np.nan if "mean" in name or "ratio" in name else 0


def _spec(tmp_path, events: pd.DataFrame) -> WindowSpec:
    path = tmp_path / "events.parquet"
    events.to_parquet(path, index=False)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(name="ev", path=str(path), timestamp_field="event_timestamp")
    view = WindowedFeatureView(
        name="acts",
        entity=user,
        source=source,
        windows=WINDOWS,
        aggregates=AGGREGATES,
        table_path=tmp_path / "acts.parquet",
    )
    return WindowSpec.from_feature_view(view)


def _oracle(events: pd.DataFrame, user: int, t: pd.Timestamp) -> dict[str, float]:
    out = {}
    for w in WINDOWS:
        e = events[
            (events.user_id == user)
            & (events.event_timestamp > t - pd.Timedelta(days=w))
            & (events.event_timestamp <= t)
        ]
        purchases = e[e.event_type == "purchase"]
        out[f"user_events_count_{w}d"] = len(e)
        out[f"user_purchases_count_{w}d"] = len(purchases)
        out[f"user_amount_sum_{w}d"] = float(e.amount.fillna(0).sum())
        out[f"user_basket_mean_{w}d"] = float(e.amount.mean()) if e.amount.notna().any() else np.nan
        out[f"user_pv_google_count_{w}d"] = int(
            ((e.event_type == "page_view") & (e.source == "google")).sum()
        )
        bought, viewed = (e.event_type == "purchase").sum(), (e.event_type == "page_view").sum()
        out[f"user_conversion_ratio_{w}d"] = (bought + 1) / (viewed + 8)
    return out


def _queries(events: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Edges (at events, at event + W, a microsecond either side), random times, far future."""
    us = pd.Timedelta(microseconds=1)
    rows = []
    for _, ev in events.iterrows():
        for shift in [pd.Timedelta(0), -us, us] + [pd.Timedelta(days=w) for w in WINDOWS]:
            rows.append((ev.user_id, ev.event_timestamp + shift))
        rows.append((ev.user_id, ev.event_timestamp + pd.Timedelta(days=WINDOWS[-1]) - us))
    users = [*sorted(events.user_id.unique()), 999]
    for _ in range(20):
        rows.append((rng.choice(users), BASE + pd.Timedelta(seconds=int(rng.integers(-5e6, 2e7)))))
    rows += [(u, BASE + pd.Timedelta(days=2000)) for u in users]
    return pd.DataFrame(rows, columns=["user_id", "t"])


def _check(tmp_path, events: pd.DataFrame, chunk_events: int, seed: int = 0) -> None:
    spec = _spec(tmp_path, events)
    stats = build_window_table(spec, chunk_events=chunk_events)
    assert stats.events == len(events)
    names = spec.feature_names
    index = load_index(spec.table_path, "user_id", "event_timestamp", names, presorted=True)
    q = _queries(events, np.random.default_rng(seed))
    times = q.t.astype("datetime64[us, UTC]").astype("int64").to_numpy()
    rows = index.lookup(q.user_id.to_numpy(dtype="int64"), times)
    got = {k: v.to_numpy(zero_copy_only=False) for k, v in index.take(rows, names).items()}
    # The compact index answers bit-identically to the table, change-point times included.
    windows = load_window_index(spec)
    assert windows is not None
    compact, changed = windows.at(q.user_id.to_numpy(dtype="int64"), times)
    table_times = np.where(rows >= 0, np.asarray(index.times)[np.maximum(rows, 0)], -1)
    np.testing.assert_array_equal(changed, table_times)
    for name in names:
        expected = np.where(rows >= 0, got[name], _empty(name))
        np.testing.assert_array_equal(
            compact[name], expected.astype(compact[name].dtype), err_msg=name
        )
    for i, (user, t) in enumerate(zip(q.user_id, q.t, strict=True)):
        expected = _oracle(events, user, t)
        for name, value in expected.items():
            actual = got[name][i]
            if rows[i] < 0:  # no row at or before t: counts and sums are 0, means null
                actual = 1 / 8 if "ratio" in name else _empty(name)
            if np.isnan(value):
                assert np.isnan(actual), (name, user, t)
            else:
                assert actual == pytest.approx(value, abs=1e-9), (name, user, t, actual, value)


events_strategy = st.lists(
    st.tuples(
        st.integers(1, 3),  # user
        st.integers(0, 80),  # half-days from BASE: many ties and exact window edges
        st.sampled_from([0, 0, 0, 1, 59_999_999]),  # sometimes off the grid (microseconds)
        st.sampled_from(["page_view", "purchase", "add_to_cart"]),
        st.sampled_from(["google", "facebook", "direct"]),
        st.floats(0.5, 500, allow_nan=False),
    ),
    min_size=1,
    max_size=30,
)


def _frame(raw) -> pd.DataFrame:
    df = pd.DataFrame(raw, columns=["user_id", "half_days", "us", "event_type", "source", "amount"])
    ts = BASE + pd.to_timedelta(df.half_days * 12, unit="h") + pd.to_timedelta(df.us, unit="us")
    return pd.DataFrame(
        {
            "user_id": df.user_id.astype("int64"),
            "event_timestamp": ts.astype("datetime64[us, UTC]"),
            "event_type": df.event_type,
            "source": df.source,
            "amount": np.where(df.event_type == "purchase", df.amount.round(2), np.nan),
        }
    )


@pytest.mark.slow  # over 8 s: left out of the fast subset
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=events_strategy, chunk=st.sampled_from([1, 3, 1 << 18]))
def test_windows_match_brute_force_oracle(tmp_path, raw, chunk):
    _check(tmp_path, _frame(raw), chunk_events=chunk)


def test_same_timestamp_events_and_long_after_last_event(tmp_path):
    t = BASE + pd.Timedelta(hours=5, microseconds=7)
    events = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2],
            "event_timestamp": [t, t, t + pd.Timedelta(days=7), t],
            "event_type": ["purchase", "page_view", "purchase", "page_view"],
            "source": ["google", "google", "email", "facebook"],
            "amount": [10.0, np.nan, 2.5, np.nan],
        }
    )
    events["event_timestamp"] = events.event_timestamp.astype("datetime64[us, UTC]")
    _check(tmp_path, events, chunk_events=1 << 18)
    spec = _spec(tmp_path, events)
    table = pd.read_parquet(spec.table_path)
    # the last row of each entity holds zeros for good: nothing lingers
    last = table.groupby("user_id").tail(1)
    assert (last[[c for c in spec.feature_names if "count" in c or "sum" in c]] == 0).all().all()
    # change points of user 1 (windows 1, 7, 30 days; events at t, t, t+7d):
    # t, t+1d, t+7d (enter, and 7d leave at once), t+8d, t+14d, t+30d, t+37d
    times = table[table.user_id == 1].event_timestamp - t
    assert list(times.dt.days) == [0, 1, 7, 8, 14, 30, 37]


@pytest.mark.slow  # over 8 s: left out of the fast subset
def test_the_example_log_matches_the_oracle_at_random_times(tmp_path):
    from tests.helpers import example_data

    generate = example_data().generate

    events = generate(users=40, seed=11).events
    _check(tmp_path, events.head(400), chunk_events=97, seed=5)


def test_ttl_is_the_largest_gap_between_windows():
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(name="ev", path="/x/events.parquet", timestamp_field="event_timestamp")
    view = WindowedFeatureView(
        name="v", entity=user, source=source, windows=[90, 7, 30], aggregates=[Aggregate("e")]
    )
    assert view.ttl == pd.Timedelta(days=60)
    assert [f.name for f in view.features] == [
        "user_e_count_7d",
        "user_e_count_30d",
        "user_e_count_90d",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"windows": []}, "at least one window"),
        ({"windows": [7, 7]}, "distinct"),
        ({"windows": [0]}, "a whole number of days"),
        ({"windows": [1.5]}, "a whole number of days"),
        ({"windows": [timedelta(milliseconds=500)]}, "at least 1 s"),
        ({"windows": [timedelta(hours=24), 1]}, "distinct"),
        ({"windows": ["forever"]}, "LIFETIME"),
        ({"aggregates": []}, "at least one aggregate"),
        ({"aggregates": [Aggregate("a"), Aggregate("a")]}, "must differ by name or function"),
        ({"entity": None}, "needs entity="),
    ],
)
def test_bad_declarations_are_refused(kwargs, message):
    from framework.errors import FeatureRepoError

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(name="ev", path="/x/events.parquet", timestamp_field="event_timestamp")
    args = {
        "name": "v",
        "entity": user,
        "source": source,
        "windows": [7],
        "aggregates": [Aggregate("e")],
    }
    with pytest.raises(FeatureRepoError, match=message):
        WindowedFeatureView(**{**args, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"function": "median", "column": "amount"}, "must be one of"),
        ({"function": "sum"}, "needs a 'column'"),
        ({"where": "amount >"}, "not a valid expression"),
        ({"function": "ratio", "where": "amount > 1"}, "over those passing per="),
        ({"function": "ratio", "per": "amount > 1"}, "over those passing per="),
        ({"function": "ratio", "where": "a > 1", "per": "b > 1", "column": "c"}, "no column"),
        ({"function": "ratio", "where": "a > 1", "per": "b >"}, "not a valid expression"),
        ({"function": "ratio", "where": "a > 1", "per": "b > 1", "prior": (1, 0)}, "b > 0"),
        ({"function": "ratio", "where": "a > 1", "per": "b > 1", "prior": (-1, 5)}, ">= 0"),
        ({"function": "ratio", "where": "a > 1", "per": "b > 1", "prior": (1,)}, "two pseudo"),
        ({"function": "count", "per": "b > 1"}, "belong to a ratio"),
        ({"function": "count", "prior": (1, 2)}, "belong to a ratio"),
    ],
)
def test_bad_aggregates_are_refused(kwargs, message):
    from framework.errors import FeatureRepoError

    with pytest.raises(FeatureRepoError, match=message):
        Aggregate("a", **kwargs)


def test_a_stale_or_foreign_index_is_not_used(tmp_path):
    events = _frame([(1, 0, 0, "purchase", "google", 5.0), (2, 3, 0, "page_view", "email", 1.0)])
    spec = _spec(tmp_path, events)
    build_window_table(spec)
    assert load_window_index(spec) is not None
    other = _spec(tmp_path, events)
    changed = type(other)(**{**other.__dict__, "windows": (2 * 86400, 7 * 86400, 30 * 86400)})
    assert load_window_index(changed) is None  # built for another declaration
    table = pd.read_parquet(spec.table_path)
    table.to_parquet(spec.table_path)  # rewritten by someone else: size/mtime differ
    assert load_window_index(spec) is None


def test_a_ratio_reads_both_filters_and_round_trips_as_json():
    agg = Aggregate("ctr", "ratio", where='kind == "click"', per='kind == "view"', prior=[1, 20])
    assert agg.prior == (1.0, 20.0) and agg.empty_value == 0.05
    assert agg.columns == {"kind"}
    assert Aggregate("r", "ratio", where="a > 1", per="b > 1").empty_value is None
