"""apply: input checks before anything is written, rebuilt tables, a registry stock Feast reads."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from framework.declare.repo import FeatureRepo
from framework.errors import DataError
from framework.prepare.apply import apply

from .conftest import registry_state


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _corrupt_events(repo_path, change):
    path = repo_path / "data" / "events.parquet"
    df = pd.read_parquet(path)
    df = change(df)
    df.to_parquet(path, index=False)


def _with_naive(df):
    df["event_timestamp"] = df.event_timestamp.dt.tz_localize(None)
    return df


def _with_null_key(df):
    df["user_id"] = df.user_id.astype("Int64")
    df.loc[3, "user_id"] = pd.NA
    return df


def _with_row(df, row: int, **values):
    df = df.copy()
    for column, value in values.items():
        df.iloc[row, df.columns.get_loc(column)] = value
    return df


BAD_EVENTS = [
    (lambda df: df.drop(columns=["source"]), "missing column(s) ['source']"),
    (lambda df: df.assign(extra=1), "unexpected column(s) ['extra']"),
    (
        lambda df: df.assign(user_id=df.user_id.astype(str)),
        "'user_id' has type string; it must hold integers",
    ),
    (lambda df: df.assign(amount=df.amount.astype(str)), "'amount' has type string"),
    (_with_naive, "timezone-naive"),
    (_with_null_key, "user_id is missing: 1 row(s)"),
    (lambda df: _with_row(df, 1, amount=-5.0), "amount below 0: 1 row(s), e.g. row 2"),
    (
        lambda df: _with_row(
            df, 2, event_timestamp=pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
        ),
        "event_timestamp in the future",
    ),
    (lambda df: _with_row(df, 0, event_type="pageview"), "unknown event_type: 1 row(s)"),
    (lambda df: _with_row(df, 0, source="tiktok"), "unknown source"),
    (lambda df: pd.concat([df, df.head(2)]), "4 duplicate rows"),
    (lambda df: df.head(0), "is empty"),
]


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
