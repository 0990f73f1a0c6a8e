"""A tiny single-file repo (tests/example_repos/newsletter.py: another domain, a string
key, filtered counts and a sum) through apply, point-in-time features against a
brute-force oracle, training, the online store and batch scoring, in seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework.declare.repo import FeatureRepo
from tests.helpers import cli, copy_tiny_repo

pytestmark = pytest.mark.stores


@pytest.fixture(scope="module")
def newsletter(tmp_path_factory):
    path = copy_tiny_repo(tmp_path_factory.mktemp("tiny") / "repo")
    result = cli(FeatureRepo(path), "apply")
    assert result.exit_code == 0, result.output
    return FeatureRepo(path)


def _oracle(events: pd.DataFrame, who: str, t: pd.Timestamp, days: int) -> dict[str, float]:
    mine = events[(events.subscriber == who) & (events.sent_at <= t)]
    mine = mine[mine.sent_at > t - pd.Timedelta(days=days)]
    return {
        f"subscriber_opens_count_{days}d": (mine.kind == "open").sum(),
        f"subscriber_clicks_count_{days}d": (mine.kind == "click").sum(),
        f"subscriber_app_opens_count_{days}d": (
            (mine.kind == "open") & (mine.client == "app")
        ).sum(),
        f"subscriber_read_seconds_sum_{days}d": mine.seconds.sum(),
    }


def test_point_in_time_features_match_the_oracle(newsletter):
    from framework.features.historical import get_historical_features

    events = pd.read_parquet(newsletter.data_dir / "mail_events.parquet")
    rng = np.random.default_rng(1)
    picks = events.sample(60, random_state=2)
    # at an event's own time (it counts), just before it, and a window later (it does not)
    shifts = rng.choice([0, -1, 7 * 86_400, 28 * 86_400], len(picks))
    rows = pd.DataFrame(
        {
            "subscriber": picks.subscriber.to_numpy(),
            "event_timestamp": picks.sent_at.reset_index(drop=True)
            + pd.to_timedelta(shifts, unit="s"),
        }
    )
    got = get_historical_features(newsletter, rows, "reading_v1")
    for row in got.itertuples(index=False):
        for days in (7, 28):
            want = _oracle(events, row.subscriber, row.event_timestamp, days)
            for name, value in want.items():
                assert getattr(row, name) == pytest.approx(value), (name, row)


def test_trains_serves_online_and_scores_in_batch(newsletter, tmp_path):
    from framework.features.materialize import materialize
    from framework.features.online import get_online_features
    from framework.models.registry import registry_of
    from framework.training.run import run_training

    run = run_training(newsletter, "unsubscribe")
    assert {c.name for c in run.result.candidates} == {"baseline", "logistic_regression"}
    registry_of(newsletter).promote("unsubscribe", run.artifact.version)
    end = pd.read_parquet(newsletter.data_dir / "mail_events.parquet").sent_at.max()
    materialize(newsletter, end=end.to_pydatetime())
    online = get_online_features(
        newsletter, [{"subscriber": "s001", "event_timestamp": end}], "reading_v1"
    )
    events = pd.read_parquet(newsletter.data_dir / "mail_events.parquet")
    for name, value in _oracle(events, "s001", end, 28).items():
        assert online[name].iloc[0] == pytest.approx(value), name  # online = the oracle at t
    db = f"sqlite:///{tmp_path / 'p.db'}"
    scored = cli(newsletter, "predict", "unsubscribe", "--at", "data", "--db", db)
    assert scored.exit_code == 0 and "predictions of unsubscribe" in scored.output, scored.output
