"""Online equals offline after materialize, on SQLite and on Redis."""

from __future__ import annotations

import pandas as pd
import pandas.testing as pdt
import pytest

from framework.features.historical import get_historical_features
from framework.features.materialize import materialize
from framework.features.online import get_online_features
from tests.helpers import clone_repo, redis_yaml, user_ids

T = pd.Timestamp("2025-09-17T13:45:10.123456Z")


@pytest.fixture(params=["sqlite", "redis"])
def store_repo(request, applied_repo, tmp_path):
    if request.param == "redis":
        request.getfixturevalue("redis_server")
        return clone_repo(applied_repo, tmp_path / "repo", fs_yaml=redis_yaml)  # a new project
    return clone_repo(applied_repo, tmp_path / "repo")


def test_online_equals_offline_at_materialization_time(store_repo):
    result = materialize(store_repo, end=T)
    assert result.rows["user_activity"] > 0 and result.rows["user_profile"] > 0
    users = [*user_ids(store_repo), 10_000_000]  # and one the store does not know
    online = get_online_features(
        store_repo, [{"user_id": u, "event_timestamp": T} for u in users], "churn_model_v1"
    )
    offline = get_historical_features(
        store_repo, pd.DataFrame({"user_id": users, "event_timestamp": T}), "churn_model_v1"
    )
    pdt.assert_frame_equal(
        online[offline.columns], offline, check_exact=False, rtol=1e-9, atol=1e-9
    )
    status = dict(zip(online.user_id, online.feature_status, strict=True))
    assert status[10_000_000] == "defaults"
    assert online.set_index("user_id").loc[10_000_000, "user_events_count_90d"] == 0
    assert set(status.values()) <= {"ok", "partial", "defaults"}


def test_incremental_materialize_catches_up(store_repo):
    early = T - pd.Timedelta(days=40)
    materialize(store_repo, end=early)
    materialize(store_repo, start=early, end=T)
    users = [*user_ids(store_repo), 10_000_000]  # and one the store does not know
    online = get_online_features(
        store_repo, [{"user_id": u, "event_timestamp": T} for u in users], "spend_model_v1"
    )
    offline = get_historical_features(
        store_repo, pd.DataFrame({"user_id": users, "event_timestamp": T}), "spend_model_v1"
    )
    # entities whose last change was before `early` keep the value written then: still exact at T
    pdt.assert_frame_equal(
        online[offline.columns], offline, check_exact=False, rtol=1e-9, atol=1e-9
    )


def test_registry_records_the_interval(store_repo):
    materialize(store_repo, end=T)
    view = store_repo.store.get_feature_view("user_activity")
    assert view.materialization_intervals[-1][1] == T.to_pydatetime()


def test_naive_or_reversed_interval_is_refused(applied_repo):
    from framework.errors import ConfigError

    with pytest.raises(ConfigError, match="no time zone"):
        materialize(applied_repo, end="2025-01-01T00:00:00")
    with pytest.raises(ConfigError, match="is after"):
        materialize(applied_repo, start="2025-02-01T00:00:00Z", end="2025-01-01T00:00:00Z")


def test_fast_online_reads_equal_feasts_own(store_repo):
    materialize(store_repo, end=T)
    rows = [{"user_id": u, "event_timestamp": T} for u in [*user_ids(store_repo), 10_000_000]]
    for service in ("churn_model_v1", "spend_model_v1"):
        fast = get_online_features(store_repo, rows, service, engine="direct")
        feast = get_online_features(store_repo, rows, service, engine="feast")
        # Values agree at T (float sums up to rounding: the online state adds the events,
        # the table subtracts prefix sums). feature_status may not: for a windowed view the
        # online state knows an entity with an event in its longest window (or ever, with
        # a lifetime window); Feast's table also one whose last change is within the ttl.
        status = fast.pop("feature_status"), feast.pop("feature_status")
        pdt.assert_frame_equal(fast, feast, check_exact=False, rtol=1e-9, atol=1e-9)
        assert (status[0] == status[1]).mean() > 0.7 and status[0].iloc[-1] == "defaults"
    some = ["user_events_count_7d", "plan", "event_day_of_week"]
    pdt.assert_frame_equal(
        get_online_features(store_repo, rows[:5], features=some, engine="direct")[some],
        get_online_features(store_repo, rows[:5], features=some, engine="feast")[some],
        check_exact=False,
        rtol=1e-9,
        atol=1e-9,
    )
