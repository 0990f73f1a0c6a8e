"""Counterfactual evaluation of rankings: what click-through rate would another order
have earned on the lists a logging policy showed?

The logs hold, for every shown item, the list it was in, its position (1-based), whether
it was clicked and its *propensity*: the probability the logging policy had of putting
that item at that position. A target policy is a deterministic order of each logged
list's items (a model's scores, or popularity); its CTR at ``k`` is the expected number
of clicks in its top ``k`` per slot shown there (``min(k, list size)``), averaged over
lists.

Under the item-position click model (whether an item is clicked depends on the item, the
user and its position, not on the other items), each clicked item weighted by
``1[target puts it at its logged position] / propensity`` is an unbiased estimate of the
target's clicks at that position (Li et al., *Offline evaluation of ranking policies with
click models*, KDD 2018). Two estimators:

- ``ips``: per list ``R = sum(click * w) / min(k, n)`` over items logged in the top k,
  averaged over lists; normal interval from the per-list values;
- ``snips`` (self-normalized): ``sum R / sum M`` with ``M = sum(w) / min(k, n)`` (whose
  expectation is 1), the delta method's interval. Lower variance, slightly biased in
  small samples.

An estimate needs the logging policy to have put, with some probability, each item at
each position the target would: exploration (``Problem.exploration``) makes that so. A
log without it (every propensity 1) supports only its own order; ``support`` says how
much of the target's top k the log reaches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ESTIMATORS",
    "PolicyEstimate",
    "compare_policies",
    "estimate_ctr",
    "estimate_shuffled_ctr",
    "target_ranks",
]

ESTIMATORS = ("ips", "snips")
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


@dataclass(frozen=True)
class PolicyEstimate:
    """A counterfactual CTR at ``k`` (or a difference of two), with its 95% interval."""

    estimator: str
    value: float
    low: float
    high: float
    stderr: float
    lists: int
    k: int
    # the share of the target's top-k slots where the logged item had a chance to be
    # (a weight > 0): 1 with exploration, the share of agreement without it
    support: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def clear_of_zero(self) -> bool:
        """For a difference: its interval excludes zero on the positive side."""
        return bool(self.low > 0)


def target_ranks(score: np.ndarray, lists: np.ndarray) -> np.ndarray:
    """Each row's 1-based rank in its list under ``score`` (descending; ties broken by
    the same fixed pseudo-random order as the offline metrics, never by the log's)."""
    from framework.tasks.lists import TIE_SEED

    score = np.asarray(score, dtype="float64")
    codes = pd.factorize(np.asarray(lists))[0]
    n = len(score)
    tie = np.random.default_rng(TIE_SEED).random(n)
    order = np.lexsort((tie, -np.nan_to_num(score, nan=-np.inf), codes))
    g = codes[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if n else np.zeros(0, dtype=int)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n])) + 1
    return rank


def _per_list(
    clicks: np.ndarray,
    position: np.ndarray,
    propensity: np.ndarray,
    rank: np.ndarray | None,
    lists: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per list: ``R`` (weighted clicks per top-k slot) and ``M`` (weights per slot), and
    the support (share of top-k slots with a logged item of positive weight). ``rank``
    None is the uniform shuffle of each list (each item at each position with chance
    1 / list size)."""
    clicks = np.asarray(clicks, dtype="float64")
    position = np.asarray(position, dtype="int64")
    propensity = np.asarray(propensity, dtype="float64")
    if len(clicks) == 0:
        raise ValueError("no logged items to estimate from")
    if np.any(~np.isfinite(propensity)) or np.any(propensity <= 0) or np.any(propensity > 1):
        raise ValueError("every propensity must be a probability in (0, 1]")
    codes, _ = pd.factorize(np.asarray(lists))
    size = np.bincount(codes).astype("float64")
    slots = np.minimum(size, k)
    uniform = rank is None  # each item at each position with chance 1 / list size
    chance = 1.0 / size[codes] if uniform else (np.asarray(rank) == position).astype("float64")
    match = (chance > 0) & (position <= k)
    w = np.where(match, chance / propensity, 0.0)
    count = len(size)
    r = np.bincount(codes, weights=clicks * w, minlength=count) / slots
    m = np.bincount(codes, weights=w, minlength=count) / slots
    support = float(match.sum() / slots.sum())
    return r, m, support


def _estimate(r: np.ndarray, m: np.ndarray, estimator: str) -> tuple[float, np.ndarray]:
    """The point estimate and each list's influence (its share of the estimate's error)."""
    if estimator == "ips":
        value = float(r.mean())
        return value, r - value
    if estimator == "snips":
        mean_m = float(m.mean())
        if mean_m <= 0:
            return float("nan"), np.full(len(r), np.nan)
        value = float(r.mean() / mean_m)
        return value, (r - value * m) / mean_m
    raise ValueError(f"unknown estimator {estimator!r}; one of {ESTIMATORS}")


def _interval(
    estimator: str, value: float, influence: np.ndarray, k: int, support: float
) -> PolicyEstimate:
    n = len(influence)
    se = float(np.std(influence, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return PolicyEstimate(
        estimator, value, value - Z95 * se, value + Z95 * se, se, int(n), int(k), support
    )


def estimate_ctr(
    clicks: np.ndarray,
    position: np.ndarray,
    propensity: np.ndarray,
    rank: np.ndarray,
    lists: np.ndarray,
    k: int,
    estimator: str = "snips",
) -> PolicyEstimate:
    """The CTR at ``k`` a target order (``rank``: each logged item's 1-based rank in its
    list under the target) would have earned on the logged lists."""
    r, m, support = _per_list(clicks, position, propensity, rank, lists, k)
    value, influence = _estimate(r, m, estimator)
    return _interval(estimator, value, influence, k, support)


def estimate_shuffled_ctr(
    clicks: np.ndarray,
    position: np.ndarray,
    propensity: np.ndarray,
    lists: np.ndarray,
    k: int,
    estimator: str = "snips",
) -> PolicyEstimate:
    """The CTR at ``k`` of shuffling each logged list uniformly (what exploration shows)."""
    r, m, support = _per_list(clicks, position, propensity, None, lists, k)
    value, influence = _estimate(r, m, estimator)
    return _interval(estimator, value, influence, k, support)


def compare_policies(
    clicks: np.ndarray,
    position: np.ndarray,
    propensity: np.ndarray,
    rank: np.ndarray,
    baseline_rank: np.ndarray,
    lists: np.ndarray,
    k: int,
    estimator: str = "snips",
) -> PolicyEstimate:
    """The difference in counterfactual CTR at ``k`` (target minus baseline) on the same
    lists, with a paired interval (each list's influences subtracted)."""
    ra, ma, support = _per_list(clicks, position, propensity, rank, lists, k)
    rb, mb, _ = _per_list(clicks, position, propensity, baseline_rank, lists, k)
    va, ia = _estimate(ra, ma, estimator)
    vb, ib = _estimate(rb, mb, estimator)
    return _interval(estimator, va - vb, ia - ib, k, support)
