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
    "counterfactual_lines",
    "counterfactual_metrics",
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
    rank: np.ndarray | None,
    lists: np.ndarray,
    k: int,
    estimator: str = "snips",
) -> PolicyEstimate:
    """The CTR at ``k`` a target order (``rank``: each logged item's 1-based rank in its
    list under the target; None: a uniform shuffle of each list) would have earned on the
    logged lists."""
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
    return estimate_ctr(clicks, position, propensity, None, lists, k, estimator)


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


def counterfactual_metrics(
    y: np.ndarray, score: np.ndarray, groups: np.ndarray, k: int, context: dict[str, Any]
) -> dict[str, float]:
    """The counterfactual CTR at k of the order ``score`` gives each logged list (SNIPS,
    with its 95% interval and support), the logging policy's own CTR at k, and the lift
    over the popularity order (paired per list); ``ctr_cf`` is NaN without propensities.
    Lists with an impression lacking a propensity are left out (``ctr_cf_lists`` counts
    the lists used)."""
    position, propensity = context.get("positions"), context.get("propensities")
    if position is None or propensity is None:
        return {"ctr_cf": float("nan")}
    groups = np.asarray(groups)
    valid = np.isfinite(propensity) & (propensity > 0) & (propensity <= 1)
    bad_lists = np.unique(groups[~valid])
    keep = ~np.isin(groups, bad_lists)
    if not keep.any():
        return {"ctr_cf": float("nan"), "ctr_cf_lists": 0.0}
    clicks = (np.asarray(y, dtype=float)[keep] > 0).astype("float64")
    g, pos, prop = groups[keep], np.asarray(position)[keep], propensity[keep]
    rank = target_ranks(np.asarray(score, dtype=float)[keep], g)
    est = estimate_ctr(clicks, pos, prop, rank, g, k)
    logged = estimate_ctr(clicks, pos, np.ones(len(pos)), pos, g, k, "ips")
    shuffled = estimate_shuffled_ctr(clicks, pos, prop, g, k)
    out = {
        "ctr_cf_shuffled": shuffled.value,
        "ctr_cf": est.value,
        "ctr_cf_low": est.low,
        "ctr_cf_high": est.high,
        "ctr_cf_support": est.support,
        "ctr_cf_lists": float(est.lists),
        "ctr_logged": logged.value,
    }
    # exploring a share of the lists shows them shuffled: its expected cost in CTR
    out["exploration_cost"] = float(context.get("exploration", 0.0)) * (est.value - shuffled.value)
    baseline = context.get("baseline")
    if baseline is not None:
        base_rank = target_ranks(np.asarray(baseline, dtype=float)[keep], g)
        lift = compare_policies(clicks, pos, prop, rank, base_rank, g, k)
        out.update(
            {"ctr_cf_lift": lift.value, "ctr_cf_lift_low": lift.low, "ctr_cf_lift_high": lift.high}
        )
    return out


def counterfactual_lines(metrics: dict[str, Any], k: int) -> list[str]:
    """What the counterfactual estimate says, for the comparison table and the card."""
    value = metrics.get("ctr_cf", float("nan"))
    if value is None or not np.isfinite(value):
        return [
            "Counterfactual CTR: not estimated. Without the logging policy's propensities the "
            "offline metrics (NDCG, MAP, CTR) are biased by its order: they reward imitating "
            "it. Log each impression's position and propensity (/rank returns both when the "
            "problem declares exploration=) and declare position= and propensity=."
        ]
    lines = [
        f"Counterfactual CTR@{k} (self-normalized IPS over {int(metrics['ctr_cf_lists']):,} "
        f"logged lists): {value:.4f} (95% CI {metrics['ctr_cf_low']:.4f} to "
        f"{metrics['ctr_cf_high']:.4f}); the logging policy earned {metrics['ctr_logged']:.4f}; "
        f"support {metrics['ctr_cf_support']:.0%} of the top-{k} slots."
    ]
    if metrics.get("exploration_cost") is not None and "ctr_cf_shuffled" in metrics:
        lines.append(
            f"A uniformly shuffled list would earn {metrics['ctr_cf_shuffled']:.4f}: exploring "
            f"the declared share of /rank's lists costs about {metrics['exploration_cost']:.4f} "
            "CTR."
        )
    if "ctr_cf_lift" in metrics:
        clear = metrics["ctr_cf_lift_low"] > 0
        lines.append(
            f"Lift over the popularity order: {metrics['ctr_cf_lift']:+.4f} (95% CI "
            f"{metrics['ctr_cf_lift_low']:+.4f} to {metrics['ctr_cf_lift_high']:+.4f}): "
            + ("clear of zero." if clear else "not clear of zero: promotion asks for more.")
        )
    return lines
