"""Served features are exact hours after the materialization, and fresh after /events."""

from __future__ import annotations

import json

import pandas as pd
import requests

from tests.helpers import T, cli, user_ids


def _online(repo, user: int, at: pd.Timestamp, features: list[str]) -> dict:
    from framework.features.online import get_online_features

    row = {"user_id": user, "event_timestamp": at}
    return get_online_features(repo, [row], features=features).iloc[0].to_dict()


def test_skew_is_zero_days_after_the_materialization(served, tmp_path):
    """The store was loaded at T; served at T + 6 h and T + 3 d, every windowed value
    equals the offline one at the request time (the windows slid since T)."""
    from framework.deploy.service import create_app
    from framework.features.historical import get_historical_features
    from framework.monitor.skew import skew
    from tests.helpers import serve_app

    repo, _ = served
    db = tmp_path / "skew.db"
    users = user_ids(repo)[:60]
    later = [T + pd.Timedelta(hours=6), T + pd.Timedelta(days=3)]
    server, thread, url = serve_app(create_app(repo, log_url=f"sqlite:///{db}"))
    try:
        for at in later:
            body = {
                "problem": "churn",
                "entities": [{"user_id": u, "event_timestamp": int(at.timestamp())} for u in users],
            }
            response = requests.post(f"{url}/predict", json=body, timeout=30)
            assert response.status_code == 200, response.text
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    report = skew(repo, "churn", db=f"sqlite:///{db}")
    assert report.rows == 2 * len(users) and report.skewed == [], report
    # The test can fail: three days on, the 7-day windows of many users changed.
    feature = "user_events_count_7d"
    frame = pd.DataFrame({"user_id": users * 2, "event_timestamp": [T] * 60 + [later[1]] * 60})
    offline = get_historical_features(repo, frame, features=[feature])[feature].to_numpy()
    assert (offline[:60] != offline[60:]).sum() >= 5


def test_an_event_posted_counts_online_at_once(served):
    repo, url = served
    user = user_ids(repo)[0]
    at = T + pd.Timedelta(hours=1)
    features = ["user_events_count_7d", "user_amount_sum_7d", "user_purchases_count_90d"]
    before = _online(repo, user, at, features)
    event = {
        "user_id": user,
        "event_timestamp": (T + pd.Timedelta(minutes=30)).isoformat(),
        "event_type": "purchase",
        "source": "direct",
        "amount": 12.5,
    }
    response = requests.post(f"{url}/events", json={"events": [event]}, timeout=30)
    assert response.status_code == 202 and response.json() == {"accepted": 1, "online": "updated"}
    after = _online(repo, user, at, features)
    assert after["user_events_count_7d"] == before["user_events_count_7d"] + 1
    assert after["user_amount_sum_7d"] == before["user_amount_sum_7d"] + 12.5
    assert after["user_purchases_count_90d"] == before["user_purchases_count_90d"] + 1
    # Read before the event's time: not counted yet.
    early = _online(repo, user, T + pd.Timedelta(minutes=29), features)
    assert early["user_events_count_7d"] == before["user_events_count_7d"]
    # Sent again with the same Idempotency-Key: counted once.
    for _ in range(2):
        again = requests.post(
            f"{url}/events",
            json={"events": [{**event, "amount": 1.0}]},
            headers={"Idempotency-Key": "fresh-1"},
            timeout=30,
        )
        assert again.status_code == 202
    twice = _online(repo, user, at, features)
    assert twice["user_events_count_7d"] == before["user_events_count_7d"] + 2


def test_cli_reads_at_a_chosen_time_and_refuses_one_before_the_materialization(served):
    repo, _ = served
    user = user_ids(repo)[1]
    at = T + pd.Timedelta(days=2)
    result = cli(
        repo,
        "features",
        "online",
        "--entity",
        f"user_id={user}",
        "--at",
        at.isoformat(),
        "--feature",
        "user_events_count_7d",
        "--json",
    )
    assert result.exit_code == 0, result.output
    from framework.features.historical import get_historical_features

    frame = pd.DataFrame({"user_id": [user], "event_timestamp": [at]})
    offline = get_historical_features(repo, frame, features=["user_events_count_7d"])
    assert json.loads(result.stdout)["user_events_count_7d"] == offline.iloc[0, -1]
    early = cli(
        repo, "features", "online", "--entity", f"user_id={user}", "--at", "2025-09-01T00:00:00Z"
    )
    assert early.exit_code == 2 and "before the last materialization" in early.output


def test_cli_ingest_counts_online_at_once(served, tmp_path):
    repo, _ = served
    user = user_ids(repo)[2]
    at = T + pd.Timedelta(hours=2)
    before = _online(repo, user, at, ["user_page_views_google_count_7d"])
    path = tmp_path / "new.csv"
    event = {
        "user_id": user,
        "event_timestamp": (T + pd.Timedelta(hours=1)).isoformat(),
        "event_type": "page_view",
        "source": "google",
        "amount": None,
    }
    pd.DataFrame([event, event]).to_csv(path, index=False)
    out = cli(repo, "events", "ingest", str(path))
    assert out.exit_code == 0 and "count them now" in out.output, out.output
    after = _online(repo, user, at, ["user_page_views_google_count_7d"])
    assert after["user_page_views_google_count_7d"] == (
        before["user_page_views_google_count_7d"] + 2
    )
