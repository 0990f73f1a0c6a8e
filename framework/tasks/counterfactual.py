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
much of the target's top k the log reaches. On long lists that support is thin (an
item is off its policy's rank with chance ``exploration / list size``), and so the
intervals are wide. A third estimator narrows them by assuming more:

- ``pbm`` (the position-based model: a click needs the position to be examined, with
  probability ``bias[p]`` whatever the item, and the item to attract): each clicked
  item counts ``bias[target rank] / bias[logged position]`` when the target puts it in
  its top k (Li et al., KDD 2018, the PBM estimator). Every shown item supports it.
  ``position_bias`` estimates ``bias`` from the logs themselves: per position, the
  click-through rate a uniform shuffle would have there (by IPS, which needs the
  propensities and nothing else), made non-increasing, relative to the top.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ESTIMATORS",
    "PolicyEstimate",
    "bootstrap_interval",
    "compare_policies",
    "estimate_ctr",
    "estimate_shuffled_ctr",
    "pbm_estimates",
    "position_bias",
    "target_ranks",
]

ESTIMATORS = ("ips", "snips", "pbm")
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


def _per_list_pbm(
    clicks: np.ndarray,
    position: np.ndarray,
    rank: np.ndarray | None,
    lists: np.ndarray,
    k: int,
    bias: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per list under the position-based model: clicks reweighted by the examination
    chance of the target's rank over the logged position's, per top-k slot. ``rank``
    None: the uniform shuffle (each rank with chance 1 / list size)."""
    clicks = np.asarray(clicks, dtype="float64")
    position = np.asarray(position, dtype="int64")
    if len(clicks) == 0:
        raise ValueError("no logged items to estimate from")
    bias = np.asarray(bias, dtype="float64")
    if position.max() > len(bias) or np.any(bias <= 0):
        raise ValueError("the position bias must be positive at every logged position")
    codes, _ = pd.factorize(np.asarray(lists))
    size = np.bincount(codes).astype("float64")
    slots = np.minimum(size, k)
    seen = bias[position - 1]
    if rank is None:  # the mean examination of the top-k ranks, over the list's size
        top = np.cumsum(bias)[np.minimum(size, k).astype(np.int64) - 1] / size
        w = top[codes] / seen
    else:
        rank = np.asarray(rank, dtype="int64")
        inside = rank <= k
        w = np.where(inside, bias[np.clip(rank, 1, len(bias)) - 1] / seen, 0.0)
    r = np.bincount(codes, weights=clicks * w, minlength=len(size)) / slots
    return r, np.ones(len(size)), 1.0


def position_bias(
    clicks: np.ndarray, position: np.ndarray, propensity: np.ndarray, lists: np.ndarray
) -> np.ndarray:
    """Each position's examination chance relative to the top (index 0 is position 1):
    the IPS estimate of a uniform shuffle's click-through rate at each position (lists
    at least that long), made non-increasing (isotonic, weighted by lists), over the
    top's; positive everywhere (a position without clicks borrows a small floor)."""
    rates, reach = _uniform_rates(clicks, position, propensity, lists)
    return _fit_bias(rates.sum(axis=0), reach.sum(axis=0))


def _uniform_rates(
    clicks: np.ndarray, position: np.ndarray, propensity: np.ndarray, lists: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per list and position: the IPS-weighted clicks of a uniform shuffle there, and
    whether the list reaches that position (lists x positions)."""
    clicks = np.asarray(clicks, dtype="float64")
    position = np.asarray(position, dtype="int64")
    propensity = np.asarray(propensity, dtype="float64")
    codes, _ = pd.factorize(np.asarray(lists))
    size = np.bincount(codes)
    longest = int(position.max())
    rates = np.zeros((len(size), longest))
    np.add.at(rates, (codes, position - 1), clicks / size[codes] / propensity)
    reach = (size[:, None] >= np.arange(1, longest + 1)[None, :]).astype("float64")
    return rates, reach


def _fit_bias(per_position: np.ndarray, reach: np.ndarray) -> np.ndarray:
    from sklearn.isotonic import isotonic_regression

    weight = np.maximum(reach, 1.0)
    smooth = np.asarray(
        isotonic_regression(per_position / weight, sample_weight=weight, increasing=False),
        dtype="float64",
    )
    if not smooth[0] > 0:
        raise ValueError("no clicks at the top of the logged lists: the position bias is unknown")
    return np.maximum(smooth / smooth[0], 1e-3)


def pbm_estimates(
    clicks: np.ndarray,
    position: np.ndarray,
    propensity: np.ndarray,
    ranks: list[np.ndarray | None],
    lists: np.ndarray,
    k: int,
    draws: int = 200,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The PBM estimates of the orders ``ranks`` with the position bias estimated from
    the same logs, and ``draws`` bootstrap replicates of them (lists resampled, the bias
    estimated again in each: its uncertainty is in the interval): (values, replicates
    of shape draws x orders)."""
    rates, reach = _uniform_rates(clicks, position, propensity, lists)
    clicks = np.asarray(clicks, dtype="float64")
    codes, _ = pd.factorize(np.asarray(lists))
    size = np.bincount(codes).astype("float64")
    slots = np.minimum(size, k)
    hit = clicks > 0  # only clicked rows weigh: the rest add nothing
    c, code, logged = clicks[hit], codes[hit], np.asarray(position, dtype=np.int64)[hit]
    top = np.minimum(size, k).astype(np.int64)
    targets = [None if r is None else np.asarray(r, dtype=np.int64)[hit] for r in ranks]

    def per_list(theta: np.ndarray) -> np.ndarray:
        seen = theta[logged - 1]
        out = []
        for rank in targets:
            if rank is None:  # uniform: the mean examination of the top ranks
                w = (np.cumsum(theta)[top - 1] / size)[code] / seen
            else:
                w = np.where(rank <= k, theta[np.clip(rank, 1, len(theta)) - 1] / seen, 0.0)
            out.append(np.bincount(code, weights=c * w, minlength=len(size)) / slots)
        return np.stack(out, axis=1)

    values = per_list(_fit_bias(rates.sum(axis=0), reach.sum(axis=0))).mean(axis=0)
    rng = np.random.default_rng(seed)
    count = rates.shape[0]
    replicates = np.empty((draws, len(ranks)))
    for b in range(draws):
        weight = np.bincount(rng.integers(0, count, count), minlength=count).astype("float64")
        theta = _fit_bias(weight @ rates, weight @ reach)
        replicates[b] = weight @ per_list(theta) / count
    return values, replicates


def _estimate(r: np.ndarray, m: np.ndarray, estimator: str) -> tuple[float, np.ndarray]:
    """The point estimate and each list's influence (its share of the estimate's error)."""
    if estimator in ("ips", "pbm"):
        value = float(r.mean())
        return value, r - value
    if estimator == "snips":
        mean_m = float(m.mean())
        if mean_m <= 0:
            return float("nan"), np.full(len(r), np.nan)
        value = float(r.mean() / mean_m)
        return value, (r - value * m) / mean_m
    raise ValueError(f"unknown estimator {estimator!r}; one of {ESTIMATORS}")


def bootstrap_interval(
    value: float, replicates: np.ndarray, lists: np.ndarray, k: int
) -> PolicyEstimate:
    """The estimate ``value`` with a normal 95% interval from the spread of its bootstrap
    ``replicates`` (drawn over the logged ``lists``)."""
    se = float(np.std(replicates, ddof=1))
    count = len(pd.unique(np.asarray(lists)))
    return PolicyEstimate("pbm", value, value - Z95 * se, value + Z95 * se, se, count, k, 1.0)


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
    rank: np.ndarray | None,
    lists: np.ndarray,
    k: int,
    estimator: str = "snips",
    bias: np.ndarray | None = None,
) -> PolicyEstimate:
    """The CTR at ``k`` a target order (``rank``: each logged item's 1-based rank in its
    list under the target; None: a uniform shuffle of each list) would have earned on the
    logged lists (``bias``: the position bias, for ``pbm``; None: estimated from these
    logs, the interval from a bootstrap over lists that estimates it again)."""
    if estimator == "pbm" and bias is None:
        values, replicates = pbm_estimates(clicks, position, propensity, [rank], lists, k)
        return bootstrap_interval(float(values[0]), replicates[:, 0], lists, k)
    r, m, support = _lists_of(clicks, position, propensity, rank, lists, k, estimator, bias)
    value, influence = _estimate(r, m, estimator)
    return _interval(estimator, value, influence, k, support)


def estimate_shuffled_ctr(
    clicks: np.ndarray,
    position: np.ndarray,
    propensity: np.ndarray,
    lists: np.ndarray,
    k: int,
    estimator: str = "snips",
    bias: np.ndarray | None = None,
) -> PolicyEstimate:
    """The CTR at ``k`` of shuffling each logged list uniformly (what exploration shows)."""
    return estimate_ctr(clicks, position, propensity, None, lists, k, estimator, bias)


def compare_policies(
    clicks: np.ndarray,
    position: np.ndarray,
    propensity: np.ndarray,
    rank: np.ndarray,
    baseline_rank: np.ndarray,
    lists: np.ndarray,
    k: int,
    estimator: str = "snips",
    bias: np.ndarray | None = None,
) -> PolicyEstimate:
    """The difference in counterfactual CTR at ``k`` (target minus baseline) on the same
    lists, with a paired interval (each list's influences subtracted; for ``pbm``
    without a given bias, the bootstrap's differences)."""
    if estimator == "pbm" and bias is None:
        values, replicates = pbm_estimates(
            clicks, position, propensity, [rank, baseline_rank], lists, k
        )
        diff = replicates[:, 0] - replicates[:, 1]
        return bootstrap_interval(float(values[0] - values[1]), diff, lists, k)
    args = (clicks, position, propensity)
    ra, ma, support = _lists_of(*args, rank, lists, k, estimator, bias)
    rb, mb, _ = _lists_of(*args, baseline_rank, lists, k, estimator, bias)
    va, ia = _estimate(ra, ma, estimator)
    vb, ib = _estimate(rb, mb, estimator)
    return _interval(estimator, va - vb, ia - ib, k, support)


def _lists_of(
    clicks: np.ndarray,
    position: np.ndarray,
    propensity: np.ndarray,
    rank: np.ndarray | None,
    lists: np.ndarray,
    k: int,
    estimator: str,
    bias: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    if estimator == "pbm":
        if bias is None:
            raise ValueError("the pbm estimator needs the position bias (bias=)")
        return _per_list_pbm(clicks, position, rank, lists, k, bias)
    return _per_list(clicks, position, propensity, rank, lists, k)
