"""A problem over the card-payments repo: string keys, one observation per payment
(features as of just before it), the label from another source (chargebacks)."""

from __future__ import annotations

import pandas as pd
import pytest

from framework.declare.repo import FeatureRepo
from framework.prepare.apply import apply
from framework.training.dataset import build_training_set
from tests.helpers import copy_payments_repo

pytestmark = pytest.mark.stores  # touches a store, a registry or a database (see conftest)


@pytest.fixture(scope="module")
def payments(tmp_path_factory):
    path = copy_payments_repo(tmp_path_factory.mktemp("p") / "feature_repo", cards=40, days=60)
    problems = path / "problems.py"  # the LightGBM search is tested elsewhere: keep this fast
    problems.write_text(
        problems.read_text().replace(
            'candidates=("baseline", "lightgbm", "logistic_regression")',
            'candidates=("baseline", "logistic_regression")',
        )
    )
    repo = FeatureRepo(path)
    apply(repo)
    return repo


def test_the_dispute_training_set_matches_brute_force(payments):
    repo = payments
    problem = repo.problem("dispute")
    assert problem.entity == "card_id"  # from the feature service's join key
    pay = pd.read_parquet(repo.path / "data" / "payments.parquet")
    cb = pd.read_parquet(repo.path / "data" / "chargebacks.parquet")
    ts = build_training_set(repo, problem)
    frame = ts.frame
    week = pd.Timedelta(days=7)
    last = cb.reported_at.max()
    kept = pay[pay.ts + week <= last]
    assert len(frame) == len(kept)
    us = pd.Timedelta(microseconds=1)
    expected = sorted(
        (
            p.card_id,
            p.ts - us,
            int(
                (
                    (cb.card_id == p.card_id)
                    & (cb.reported_at > p.ts)
                    & (cb.reported_at <= p.ts + week)
                ).any()
            ),
        )
        for p in kept.itertuples()
    )
    actual = sorted(zip(frame.card_id, frame.event_timestamp, frame.label, strict=True))
    assert actual == expected
    assert frame.label.nunique() == 2
    # Features as of just before the payment: the payment itself is not counted yet.
    for row in frame.sample(30, random_state=0).itertuples():
        before = ((pay.card_id == row.card_id) & (pay.ts <= row.event_timestamp)).sum()
        assert row.card_payments_count_lifetime == before
    assert ts.summary()["entities"] == frame.card_id.nunique()


def test_training_registers_a_model_keyed_by_the_string_key(payments):
    from framework.training.run import run_training

    run = run_training(payments, "dispute")
    meta = run.artifact.meta
    assert meta.entity == "card_id" and meta.label["type"] == "AnyEvent"
    assert meta.spine == {"type": "EventSpine", "where": None, "source": None}
    assert meta.winner in ("baseline", "logistic_regression")
    assert set(meta.metrics["test"]) >= {"pr_auc", "precision", "recall"}
    assert (payments.models_dir / "dispute" / meta.version).exists()
