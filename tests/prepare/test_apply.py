"""apply: input checks before anything is written, rebuilt tables, a registry stock Feast reads."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from framework.declare.repo import FeatureRepo
from framework.errors import DataError
from framework.prepare.apply import apply
from tests.helpers import BAD_EVENTS, registry_state


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _corrupt_events(repo_path, change):
    path = repo_path / "data" / "events.parquet"
    df = pd.read_parquet(path)
    df = change(df)
    df.to_parquet(path, index=False)


@pytest.mark.parametrize(("change", "message"), BAD_EVENTS, ids=[m for _, m in BAD_EVENTS])
def test_bad_event_files_are_refused_and_nothing_is_rewritten(fresh_repo, change, message):
    repo = FeatureRepo(fresh_repo)
    apply(repo)
    table = fresh_repo / "data" / "derived" / "user_activity.parquet"
    before = (_digest(table), registry_state(fresh_repo))
    assert before[1]
    _corrupt_events(fresh_repo, change)
    with pytest.raises(
        DataError,
        match=message.replace("(", r"\(")
        .replace(")", r"\)")
        .replace("[", r"\[")
        .replace("]", r"\]"),
    ) as info:
        apply(FeatureRepo(fresh_repo))
    assert "events.parquet" in str(info.value)
    assert (_digest(table), registry_state(fresh_repo)) == before
    assert not list((fresh_repo / "data" / "derived").glob(".*tmp"))


def test_bad_profile_file_names_file_and_column(fresh_repo):
    path = fresh_repo / "data" / "users.parquet"
    users = pd.read_parquet(path)
    pd.concat([users, users.head(1)]).to_parquet(path, index=False)
    with pytest.raises(
        DataError, match=r"users.parquet has 2 duplicate values of \['user_id', 'signup_date'\]"
    ):
        apply(FeatureRepo(fresh_repo))
    users.drop(columns=["plan"]).to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) \['plan'\]"):
        apply(FeatureRepo(fresh_repo))


def test_unreadable_file_is_a_data_error(fresh_repo):
    (fresh_repo / "data" / "events.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot be read as parquet"):
        apply(FeatureRepo(fresh_repo))


def test_apply_rebuilds_from_the_files_and_stock_feast_reads_the_repo(fresh_repo):
    from feast import FeatureStore

    result = apply(FeatureRepo(fresh_repo))
    (stats,) = result.tables
    events = pd.read_parquet(fresh_repo / "data" / "events.parquet")
    assert stats.events == len(events) and stats.entities == events.user_id.nunique()
    assert {"user_activity", "user_profile", "event_dates", "churn_model_v1"} <= set(
        result.registered
    )
    # a new event counts after the next apply
    user = int(events.user_id.iloc[0])
    t = events.event_timestamp.max() + pd.Timedelta(hours=1)
    new = pd.DataFrame(
        {
            "user_id": [user],
            "event_timestamp": [t],
            "event_type": ["purchase"],
            "source": ["email"],
            "amount": [99.5],
        }
    )
    pd.concat([events, new]).to_parquet(fresh_repo / "data" / "events.parquet", index=False)
    apply(FeatureRepo(fresh_repo))
    store = FeatureStore(repo_path=str(fresh_repo))
    assert {v.name for v in store.list_feature_views()} == {"user_activity", "user_profile"}
    rows = pd.DataFrame({"user_id": [user], "event_timestamp": [t]})
    df = store.get_historical_features(
        rows, features=["user_activity:user_purchases_count_7d", "user_activity:user_amount_sum_7d"]
    ).to_df()
    before = events[(events.user_id == user) & (events.event_timestamp > t - pd.Timedelta(days=7))]
    assert df.user_purchases_count_7d[0] == (before.event_type == "purchase").sum() + 1
    assert df.user_amount_sum_7d[0] == pytest.approx(before.amount.sum() + 99.5)
    assert np.isfinite(df.user_amount_sum_7d[0])
