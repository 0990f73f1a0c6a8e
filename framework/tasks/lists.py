"""Lists: ranking metrics per list, and LambdaRank tuned by list.

A ranking problem's rows are the items shown in lists (one row per impression,
``Problem.group`` names the list: a request id). Its metrics are computed per
list and averaged over lists:

- ``ndcg`` at k: DCG of the model's top k (gain ``2**label - 1``, discount
  ``log2(rank + 1)``) over the DCG of the ideal order, over lists with at least
  one positive (a list without one has no ideal order to approach);
- ``map`` at k: average precision of the top k (precision at each positive among
  them, over ``min(k, positives in the list)``), over the same lists;
- ``ctr`` at k: the offline click-through rate of the top k, positives among the
  model's top k over the items shown there (``min(k, list size)``), over every list.

Ties in score are broken by a fixed pseudo-random order, never by the logged order
(which carries the position bias of the policy that made the logs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TIE_SEED", "group_sizes", "ranking_metrics", "search_ranker"]

TIE_SEED = 20_261_130


def group_sizes(groups: np.ndarray) -> np.ndarray:
    """The sizes of the runs of equal ids, in order (rows must be contiguous per list)."""
    groups = np.asarray(groups)
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    bounds = np.concatenate([[0], change, [len(groups)]])
    sizes = np.diff(bounds)
    if len(sizes) != len(pd.unique(groups)):
        raise ValueError("rows of a list are not contiguous: sort by time and list first")
    return sizes.astype(np.int64)


def ranking_metrics(
    y: np.ndarray, score: np.ndarray, groups: np.ndarray, k: int
) -> dict[str, float]:
    """NDCG, MAP and CTR at ``k`` averaged over lists (see the module docstring), with
    the number of lists and of lists with a positive."""
    y = np.asarray(y, dtype="float64")
    score = np.asarray(score, dtype="float64")
    codes = pd.factorize(np.asarray(groups))[0]
    n = len(y)
    tie = np.random.default_rng(TIE_SEED).random(n)
    # order rows by list, then score descending, then the tie-breaker
    order = np.lexsort((tie, -np.nan_to_num(score, nan=-np.inf), codes))
    g, yy = codes[order], y[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))  # 0-based in list
    top = rank < k
    lists = len(starts)
    size = np.diff(np.r_[starts, n])
    gain = 2.0**yy - 1.0
    discount = 1.0 / np.log2(rank + 2.0)
    dcg = np.bincount(g, weights=np.where(top, gain * discount, 0.0), minlength=lists)
    # the ideal order: labels sorted descending within each list
    ideal_order = np.lexsort((-y, codes))
    ideal_y = y[ideal_order]
    ideal = np.bincount(
        codes[ideal_order],
        weights=np.where(top, (2.0**ideal_y - 1.0) * discount, 0.0),
        minlength=lists,
    )
    relevant = yy > 0
    hits = np.cumsum(relevant.astype("float64"))
    hits -= np.repeat(np.r_[0.0, hits[starts[1:] - 1]], np.diff(np.r_[starts, n]))
    precision_at = np.where(top & relevant, hits / (rank + 1.0), 0.0)
    positives = np.bincount(g, weights=relevant.astype("float64"), minlength=lists)
    ap = np.bincount(g, weights=precision_at, minlength=lists) / np.maximum(
        np.minimum(positives, k), 1.0
    )
    ctr = np.bincount(g, weights=(top & relevant).astype("float64"), minlength=lists) / np.minimum(
        size, k
    )
    judged = positives > 0
    return {
        "ndcg": float(np.mean(dcg[judged] / ideal[judged])) if judged.any() else float("nan"),
        "map": float(np.mean(ap[judged])) if judged.any() else float("nan"),
        "ctr": float(np.mean(ctr)),
        "lists": float(lists),
        "lists_with_positive": float(judged.sum()),
        "positive_rate": float(np.mean(y > 0)) if n else float("nan"),
    }


def search_ranker(
    model: Any,
    space: dict[str, list[Any]],
    prepare: Any,
    x: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    k: int,
    budget: int,
    seed: int,
) -> tuple[dict[str, Any], float]:
    """Random search of LambdaRank parameters: 3 time folds cut at list boundaries (rows
    are in time order), each configuration judged by the mean validation NDCG at k."""
    from sklearn.base import clone
    from sklearn.model_selection import ParameterSampler, TimeSeriesSplit

    codes = pd.factorize(np.asarray(groups))[0]
    lists = np.arange(codes.max() + 1) if len(codes) else np.zeros(0, dtype=int)
    folds = []
    for train_lists, test_lists in TimeSeriesSplit(n_splits=3).split(lists):
        train_idx = np.flatnonzero(np.isin(codes, train_lists))
        test_idx = np.flatnonzero(np.isin(codes, test_lists))
        prep = clone(prepare).fit(x.iloc[train_idx])
        folds.append(
            (
                prep.transform(x.iloc[train_idx]),
                y[train_idx],
                group_sizes(codes[train_idx]),
                prep.transform(x.iloc[test_idx]),
                y[test_idx],
                codes[test_idx],
            )
        )
    results = []
    for params in ParameterSampler(space, n_iter=budget, random_state=seed):
        values = []
        for xt, yt, gt, xv, yv, gv in folds:
            fitted = clone(model).set_params(**params).fit(xt, yt, group=gt)
            values.append(ranking_metrics(yv, fitted.predict(xv), gv, k)["ndcg"])
        mean = float(np.nanmean(values)) if not np.isnan(values).all() else -np.inf
        results.append((mean, params))
    score, best = max(results, key=lambda r: r[0])
    return best, score
