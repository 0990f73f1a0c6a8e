"""A held-out ranking domain with a known click model, for the counterfactual estimators
and the position-aware learner: a shop's recipe lists (cooks x recipes).

Each list shows a cook ``SIZE`` recipes drawn from a catalogue; the cook clicks the recipe
at position p (1-based) with probability ``bias(p) * appeal(recipe) * affinity`` (the
position-based model: position bias times appeal times affinity, 1.8x for a recipe of the
cook's favourite cuisine). The logging policy orders each list by a popularity that only
partly follows appeal, and with probability ``explore`` shuffles it uniformly instead, so
the propensity of the item logged at p is ``(1 - explore) * [popularity puts it at p] +
explore / SIZE``. Everything is exact and known: a policy's true expected CTR at k comes
from the click probabilities, not from clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RECIPES = 60
CUISINES = 5
COOKS = 500
SIZE = 6


@dataclass(frozen=True)
class Domain:
    appeal: np.ndarray  # per recipe
    popularity: np.ndarray  # per recipe: the logging policy's (biased) order
    cuisine: np.ndarray  # per recipe
    taste: np.ndarray  # per cook: the favourite cuisine
    bias: np.ndarray  # per position 1..SIZE (index 0 is position 1)

    def click_probability(self, cook: np.ndarray, recipe: np.ndarray, position: np.ndarray):
        likes = self.cuisine[recipe] == self.taste[cook]
        return self.bias[position - 1] * self.appeal[recipe] * np.where(likes, 1.8, 1.0)


def domain(strength: float = 1.0, seed: int = 0) -> Domain:
    """``strength``: the exponent of the position bias ``1 / p**strength`` (0: none)."""
    rng = np.random.default_rng(seed)
    appeal = 0.05 + 0.45 * rng.beta(2, 3, RECIPES)
    # popularity follows appeal only partly (the old policy's bias)
    popularity = np.log(appeal) + rng.normal(0, 0.6, RECIPES)
    return Domain(
        appeal=appeal,
        popularity=popularity,
        cuisine=rng.integers(0, CUISINES, RECIPES),
        taste=rng.integers(0, CUISINES, COOKS),
        bias=1.0 / np.arange(1, SIZE + 1) ** strength,
    )


def lists(d: Domain, count: int, rng: np.random.Generator) -> pd.DataFrame:
    """``count`` lists of SIZE distinct recipes for random cooks (not yet ordered)."""
    cook = rng.integers(0, COOKS, count)
    recipe = np.argsort(rng.random((count, RECIPES)), axis=1)[:, :SIZE]
    return pd.DataFrame(
        {
            "list": np.repeat(np.arange(count), SIZE),
            "cook": np.repeat(cook, SIZE),
            "recipe": recipe.ravel(),
        }
    )


def ranks_by(frame: pd.DataFrame, score: np.ndarray) -> np.ndarray:
    """1-based rank of each row in its list by ``score`` descending (no ties here)."""
    order = np.lexsort((-np.asarray(score, dtype=float), frame["list"].to_numpy()))
    rank = np.empty(len(frame), dtype=np.int64)
    rank[order] = np.tile(np.arange(1, SIZE + 1), len(frame) // SIZE)
    return rank


def log(d: Domain, frame: pd.DataFrame, explore: float, rng: np.random.Generator) -> pd.DataFrame:
    """The logging policy's positions, propensities and sampled clicks."""
    popular = ranks_by(frame, d.popularity[frame["recipe"].to_numpy()])
    count = len(frame) // SIZE
    shuffled = np.argsort(rng.random((count, SIZE)), axis=1).ravel() + 1
    explored = np.repeat(rng.random(count) < explore, SIZE)
    position = np.where(explored, shuffled, popular)
    propensity = (1 - explore) * (position == popular) + explore / SIZE
    p = d.click_probability(frame["cook"].to_numpy(), frame["recipe"].to_numpy(), position)
    out = frame.assign(position=position, propensity=propensity, popular=popular)
    return out.assign(click=(rng.random(len(frame)) < p).astype(np.int64))


def true_ctr(d: Domain, frame: pd.DataFrame, rank: np.ndarray, k: int) -> float:
    """The exact expected CTR at k of the order ``rank`` on ``frame``'s lists."""
    cook, recipe = frame["cook"].to_numpy(), frame["recipe"].to_numpy()
    p = d.click_probability(cook, recipe, np.minimum(rank, SIZE))
    return float(np.sum(np.where(rank <= k, p, 0.0)) / (len(frame) // SIZE) / k)
