"""Point-in-time retrieval: both engines agree, match raw events, and never see the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from framework.errors import DataError, FeatureRepoError
from framework.features.historical import get_historical_features


def _entity_rows(repo, n=400, seed=0) -> pd.DataFrame:
    events = pd.read_parquet(repo.data_dir / "events.parquet")
    rng = np.random.default_rng(seed)
    users = np.r_[events.user_id.unique(), [10_000_000]]  # one unknown user
    sample = events.sample(n // 4, random_state=seed)
    rows = pd.DataFrame(
        {
            "user_id": np.r_[
                rng.choice(users, n - 2 * len(sample)), sample.user_id, sample.user_id
            ],
            "event_timestamp": np.r_[
                pd.Timestamp("2024-12-01", tz="UTC")
                + pd.to_timedelta(rng.integers(0, 500 * 86400, n - 2 * len(sample)), unit="s"),
                sample.event_timestamp,  # exactly at an event
                sample.event_timestamp
                + pd.Timedelta(days=30),  # exactly when it leaves the 30d window
            ],
        }
    )
    rows["event_timestamp"] = pd.to_datetime(rows.event_timestamp, utc=True).astype(
        "datetime64[us, UTC]"
    )
    rows["label"] = np.arange(n)  # an extra column passes through
    return rows


def test_fast_engine_equals_feast_get_historical_features(applied_repo):
    rows = _entity_rows(applied_repo)
    fast = get_historical_features(applied_repo, rows, "churn_model_v1", engine="direct")
    feast = get_historical_features(applied_repo, rows, "churn_model_v1", engine="feast")
    pdt.assert_frame_equal(fast, feast, check_exact=True)
    assert list(fast.label) == list(range(len(rows)))  # input order kept
    assert fast.shape[1] == 3 + 21 + 3 + 7


def test_features_match_raw_events_and_profile(applied_repo):
    rows = _entity_rows(applied_repo, n=120, seed=3)
    out = get_historical_features(applied_repo, rows, "spend_model_v1")
    events = pd.read_parquet(applied_repo.data_dir / "events.parquet")
    users = pd.read_parquet(applied_repo.data_dir / "users.parquet").set_index("user_id")
    for _, r in out.iterrows():
        for w in (7, 30, 90):
            e = events[
                (events.user_id == r.user_id)
                & (events.event_timestamp > r.event_timestamp - pd.Timedelta(days=w))
                & (events.event_timestamp <= r.event_timestamp)
            ]
            pv = e[e.event_type == "page_view"]
            assert r[f"user_events_count_{w}d"] == len(e)
            assert r[f"user_purchases_count_{w}d"] == (e.event_type == "purchase").sum()
            assert r[f"user_amount_sum_{w}d"] == pytest.approx(e.amount.sum(), abs=1e-9)
            assert r[f"user_page_views_google_count_{w}d"] == (pv.source == "google").sum()
            assert r[f"user_page_views_facebook_count_{w}d"] == (pv.source == "facebook").sum()
        known = r.user_id in users.index and users.signup_date[r.user_id] <= r.event_timestamp
        assert (r.plan == users.plan[r.user_id]) if known else r.plan is None


def test_changing_events_after_t_changes_no_feature_at_t(applied_repo, tmp_path):
    """No leakage: features at t are the same whatever happens after t."""
    import shutil

    from framework.declare.repo import FeatureRepo
    from framework.prepare.apply import apply

    clone = tmp_path / "repo"
    shutil.copytree(applied_repo.path, clone)
    rows = _entity_rows(applied_repo, n=200, seed=9)
    cut = pd.Timestamp("2025-06-15", tz="UTC")
    rows = rows[rows.event_timestamp <= cut].reset_index(drop=True)
    before = get_historical_features(applied_repo, rows, "churn_model_v1")
    path = clone / "data" / "events.parquet"
    events = pd.read_parquet(path)
    later = events.event_timestamp > cut
    events.loc[later, "event_type"] = "purchase"
    events.loc[later, "source"] = "google"
    events.loc[later, "amount"] = 1e6
    events = events[~later | (np.arange(len(events)) % 2 == 0)]  # and drop half of them
    events.to_parquet(path, index=False)
    repo = FeatureRepo(clone)
    apply(repo)
    after = get_historical_features(repo, rows, "churn_model_v1")
    pdt.assert_frame_equal(before, after)


def test_every_feature_without_a_service(applied_repo):
    rows = _entity_rows(applied_repo, n=20)
    out = get_historical_features(applied_repo, rows)
    assert {"user_events_count_7d", "plan", "age", "event_days_until_holiday"} <= set(out.columns)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda d: d.drop(columns=["user_id"]), DataError, r"missing column\(s\) \['user_id'\]"),
        (
            lambda d: d.assign(event_timestamp=d.event_timestamp.dt.tz_localize(None)),
            DataError,
            "timezone-naive",
        ),
        (lambda d: d.assign(event_timestamp="yesterday"), DataError, "must hold timestamps"),
        (lambda d: d.assign(user_id=d.user_id.astype(float)), DataError, "must hold integers"),
        (lambda d: d.head(0), DataError, "is empty"),
        (lambda d: d.assign(plan="x"), DataError, r"already have column\(s\) \['plan'\]"),
    ],
)
def test_bad_entity_rows(applied_repo, change, error, message):
    rows = _entity_rows(applied_repo, n=8)
    with pytest.raises(error, match=message):
        get_historical_features(applied_repo, change(rows), "churn_model_v1")


def test_unknown_service_names_the_known_ones(applied_repo):
    with pytest.raises(FeatureRepoError, match=r"Unknown feature service 'nope'.*churn_model_v1"):
        get_historical_features(applied_repo, _entity_rows(applied_repo, n=8), "nope")
