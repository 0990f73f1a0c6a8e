import pandas as pd
import pandas.testing as pdt

from tests.helpers import example_data

EVENT_TYPES, SOURCES = example_data().EVENT_TYPES, example_data().SOURCES
generate, write_example_data = example_data().generate, example_data().write_example_data


def test_same_seed_same_data_and_scales_with_users():
    a, b = generate(users=200, seed=1), generate(users=200, seed=1)
    pdt.assert_frame_equal(a.events, b.events)
    pdt.assert_frame_equal(a.users, b.users)
    assert not generate(users=200, seed=2).events.equals(a.events)
    big = generate(users=800, seed=1)
    assert 3 * len(a.events) < len(big.events) < 5 * len(a.events)


def test_files_follow_the_contract(tmp_path):
    write_example_data(tmp_path, users=100, seed=4)
    events = pd.read_parquet(tmp_path / "events.parquet")
    users = pd.read_parquet(tmp_path / "users.parquet")
    assert list(events.columns) == ["user_id", "event_timestamp", "event_type", "source", "amount"]
    assert events.user_id.dtype == "int64" and events.amount.dtype == "float64"
    assert str(events.event_timestamp.dt.tz) == "UTC"
    assert set(events.event_type) <= set(EVENT_TYPES) and set(events.source) <= set(SOURCES)
    assert events.amount.notna().eq(events.event_type == "purchase").all()
    assert list(users.columns) == ["user_id", "signup_date", "plan", "country", "age"]
    assert users.user_id.is_unique and not events.duplicated().any()


def test_behaviour_is_realistic_enough_to_learn_from():
    d = generate(users=2000, seed=7)
    e = d.events
    assert len(e) > 100 * 2000  # about 110 events per user: 10k users give > 1M events
    assert 0.03 < d.users.age.isna().mean() < 0.15
    weekend = e.event_timestamp.dt.dayofweek >= 5
    per_day = e.groupby(weekend).size() / pd.Series({False: 5, True: 2})
    assert per_day[True] < 0.8 * per_day[False]  # quieter weekends
    by_month = e.groupby(e.event_timestamp.dt.month).size()
    assert by_month[12] > 1.2 * by_month[6]  # a December peak over a summer dip
    rate = e.assign(p=e.event_type == "purchase").groupby("source").p.mean()
    assert rate["email"] > 2 * rate["facebook"]  # sources differ
    last = e.groupby("user_id").event_timestamp.max()
    churned = (last < pd.Timestamp("2025-11-01", tz="UTC")).mean()
    assert 0.15 < churned < 0.7  # some users churn, most do not
