"""The position-aware learner (``lightgbm_position``) on a domain whose click model is
known (tests/tasks/click_model.py): trained on clicks logged by a popularity order with a
little exploration, its order's true expected CTR beats popularity's, and beats today's
LambdaRank where the position bias is strong."""

from __future__ import annotations

import numpy as np
import pytest

from framework.tasks.estimators import lightgbm
from framework.tasks.lists import group_sizes
from framework.tasks.position_ranker import PositionAwareRanker
from tests.tasks import click_model as cm


def _true_ctrs(strength: float) -> dict[str, float]:
    d = cm.domain(strength=strength, seed=1)
    rng = np.random.default_rng(4)
    logged = cm.log(d, cm.lists(d, 6_000, rng), explore=0.1, rng=rng)

    def features(frame):
        r, c = frame["recipe"].to_numpy(), frame["cook"].to_numpy()
        rating = d.appeal[r] + rng.normal(0, 0.05, len(r))  # a noisy view of appeal
        return np.c_[d.popularity[r], rating, (d.cuisine[r] == d.taste[c]).astype(float)]

    x, y = features(logged), logged["click"].to_numpy()
    sizes = group_sizes(logged["list"].to_numpy())
    today = lightgbm("ranker", 0, n_estimators=100).fit(x, y, group=sizes)
    aware = PositionAwareRanker(n_estimators=100).fit(x, y, sizes, logged["position"].to_numpy())
    test = cm.lists(d, 20_000, np.random.default_rng(9))
    xt = features(test)
    orders = {
        "popularity": d.popularity[test["recipe"].to_numpy()],
        "today": today.predict(xt),
        "aware": aware.predict(xt),
    }
    return {name: cm.true_ctr(d, test, cm.ranks_by(test, s), 3) for name, s in orders.items()}


@pytest.mark.parametrize("strength", [1.0, 2.0])
def test_the_position_aware_order_earns_more_where_position_bias_is_strong(strength):
    ctr = _true_ctrs(strength)
    assert ctr["aware"] > ctr["popularity"] * 1.05, ctr
    assert ctr["aware"] > ctr["today"] + 0.005, ctr


def test_without_position_bias_it_learns_what_lambdarank_learns():
    ctr = _true_ctrs(0.0)
    assert ctr["aware"] > ctr["popularity"] * 1.05, ctr
    assert abs(ctr["aware"] - ctr["today"]) < 0.01, ctr


def test_it_refuses_to_fit_without_positions():
    with pytest.raises(ValueError, match="position"):
        PositionAwareRanker().fit(np.zeros((4, 1)), np.zeros(4), np.array([2, 2]))
