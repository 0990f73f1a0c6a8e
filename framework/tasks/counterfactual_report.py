"""The counterfactual estimates a ranking's card and gate read: the model's order
against the popularity order and a shuffled list, on the logged lists of the test
period, with the words that say what they mean (:mod:`framework.tasks.counterfactual`
holds the estimators)."""

from __future__ import annotations

from typing import Any

import numpy as np

from framework.tasks.counterfactual import (
    bootstrap_interval,
    estimate_ctr,
    pbm_estimates,
    target_ranks,
)

__all__ = ["counterfactual_lines", "counterfactual_metrics"]


def counterfactual_metrics(
    y: np.ndarray, score: np.ndarray, groups: np.ndarray, k: int, context: dict[str, Any]
) -> dict[str, float]:
    """The counterfactual CTR at k of the order ``score`` gives each logged list: under
    the position-based model (``ctr_cf``, with its bias estimated from these logs and a
    bootstrap interval), its lift over the popularity order (paired) and a shuffled
    list's CTR (the cost of exploring); without that model (self-normalized IPS,
    ``ctr_ips``, with its support); and the logging policy's own CTR at k. ``ctr_cf``
    is NaN without propensities. Lists with an impression lacking a propensity are left
    out (``ctr_cf_lists`` counts the lists used)."""
    position, propensity = context.get("positions"), context.get("propensities")
    if position is None or propensity is None:
        return {"ctr_cf": float("nan")}
    groups = np.asarray(groups)
    valid = np.isfinite(propensity) & (propensity > 0) & (propensity <= 1)
    keep = ~np.isin(groups, np.unique(groups[~valid]))
    if not keep.any():
        return {"ctr_cf": float("nan"), "ctr_cf_lists": 0.0}
    clicks = (np.asarray(y, dtype=float)[keep] > 0).astype("float64")
    g, pos, prop = groups[keep], np.asarray(position)[keep], propensity[keep]
    rank = target_ranks(np.asarray(score, dtype=float)[keep], g)
    baseline = context.get("baseline")
    orders: list[np.ndarray | None] = [rank, None]
    if baseline is not None:
        orders.append(target_ranks(np.asarray(baseline, dtype=float)[keep], g))
    values, replicates = pbm_estimates(clicks, pos, prop, orders, g, k)
    est = bootstrap_interval(float(values[0]), replicates[:, 0], g, k)
    ips = estimate_ctr(clicks, pos, prop, rank, g, k, "snips")
    logged = estimate_ctr(clicks, pos, np.ones(len(pos)), pos, g, k, "ips")
    out = {
        "ctr_cf": est.value,
        "ctr_cf_low": est.low,
        "ctr_cf_high": est.high,
        "ctr_cf_lists": float(est.lists),
        "ctr_cf_shuffled": float(values[1]),
        "ctr_ips": ips.value,
        "ctr_ips_low": ips.low,
        "ctr_ips_high": ips.high,
        "ctr_ips_support": ips.support,
        "ctr_logged": logged.value,
        # exploring a share of the lists shows them shuffled: its expected cost in CTR
        "exploration_cost": float(context.get("exploration", 0.0)) * (est.value - values[1]),
    }
    if baseline is not None:
        diff = replicates[:, 0] - replicates[:, 2]
        lift = bootstrap_interval(float(values[0] - values[2]), diff, g, k)
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
        f"Counterfactual CTR@{k} over {int(metrics['ctr_cf_lists']):,} logged lists, under the "
        f"position-based click model (its position bias estimated from the logs): {value:.4f} "
        f"(95% CI {metrics['ctr_cf_low']:.4f} to {metrics['ctr_cf_high']:.4f}). Without that "
        f"model (self-normalized IPS): {metrics['ctr_ips']:.4f} (95% CI "
        f"{metrics['ctr_ips_low']:.4f} to {metrics['ctr_ips_high']:.4f}; the logs support "
        f"{metrics['ctr_ips_support']:.0%} of its top-{k} slots). The logging policy earned "
        f"{metrics['ctr_logged']:.4f}."
    ]
    if "exploration_cost" in metrics:
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
