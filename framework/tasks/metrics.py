"""Metrics of each kind of answer against the truth, and the decision threshold.

Pure functions of arrays: the task kinds (``framework.tasks``) choose which apply, the
training loop, the assessment, the retrain gate and realized performance call them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "HORIZON_BUCKETS",
    "best_threshold",
    "binary_metrics",
    "encode_classes",
    "forecast_metrics",
    "forecast_scale",
    "multiclass_metrics",
    "regression_metrics",
]

HORIZON_BUCKETS = ((1, 7), (8, 30), (31, 365), (366, 3660))


def best_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The decision threshold that maximises F1 (ties: the higher threshold)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, score)
    if len(thresholds) == 0:
        return 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)[:-1]
    return float(thresholds[int(np.argmax(f1))])


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 at ``threshold``; ROC AUC and PR AUC (NaN with one class)."""
    from sklearn import metrics as m

    label = (score >= threshold).astype(int)
    both = len(np.unique(y)) > 1
    return {
        "precision": float(m.precision_score(y, label, zero_division=0)),
        "recall": float(m.recall_score(y, label, zero_division=0)),
        "f1": float(m.f1_score(y, label, zero_division=0)),
        "roc_auc": float(m.roc_auc_score(y, score)) if both else float("nan"),
        "pr_auc": float(m.average_precision_score(y, score)) if both else float("nan"),
        "decision_threshold": float(threshold),
        "positive_rate": float(np.mean(y)),
    }


def multiclass_metrics(y: np.ndarray, proba: np.ndarray, names: list[Any]) -> dict[str, float]:
    """Accuracy, macro F1 and log loss of class probabilities, with precision, recall, F1
    and support per class (``names``: the class of each column)."""
    from sklearn import metrics as m

    k = proba.shape[1]
    label = proba.argmax(axis=1)
    out = {
        "accuracy": float(m.accuracy_score(y, label)),
        "macro_f1": float(m.f1_score(y, label, average="macro", labels=range(k), zero_division=0)),
        "log_loss": float(m.log_loss(y, np.clip(proba, 1e-15, 1), labels=list(range(k)))),
    }
    p, r, f, support = m.precision_recall_fscore_support(
        y, label, labels=list(range(k)), zero_division=0
    )
    for i, name in enumerate(names):
        out[f"precision[{name}]"] = float(p[i])
        out[f"recall[{name}]"] = float(r[i])
        out[f"f1[{name}]"] = float(f[i])
        out[f"support[{name}]"] = float(support[i])
    return out


def regression_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as m

    return {
        "mae": float(m.mean_absolute_error(y, score)),
        "rmse": float(np.sqrt(m.mean_squared_error(y, score))),
        "r2": float(m.r2_score(y, score)),
    }


def forecast_scale(x: pd.DataFrame, y: np.ndarray) -> float:
    """The MASE denominator: the seasonal-naive forecast's MAE on the training rows."""
    naive = x["naive_week"].to_numpy(dtype="float64")
    known = ~np.isnan(naive)
    scale = float(np.mean(np.abs(y[known] - naive[known]))) if known.any() else float("nan")
    return scale if scale > 0 else float("nan")


def forecast_metrics(
    y: np.ndarray, score: np.ndarray, horizons: np.ndarray | None, scale: float | None
) -> dict[str, float]:
    """MAE, RMSE and MASE (MAE over ``scale``), overall and per horizon bucket."""
    scale = float("nan") if scale is None else scale
    out: dict[str, float] = {}
    parts = [("", np.ones(len(y), dtype=bool))]
    if horizons is not None:
        parts += [(f"[{a}-{b}]", (horizons >= a) & (horizons <= b)) for a, b in HORIZON_BUCKETS]
    for suffix, mask in parts:
        if not mask.any():
            continue
        err = score[mask] - y[mask]
        mae = float(np.mean(np.abs(err)))
        out[f"mae{suffix}"] = mae
        out[f"rmse{suffix}"] = float(np.sqrt(np.mean(err**2)))
        out[f"mase{suffix}"] = mae / scale
        if suffix:
            out[f"rows{suffix}"] = float(mask.sum())
    return out


def encode_classes(*labels: np.ndarray) -> tuple[list[Any], list[np.ndarray]]:
    """The sorted distinct class values of all ``labels``, and each array as class indices."""
    values = sorted(
        {v.item() if hasattr(v, "item") else v for y in labels for v in y},
        key=lambda v: (str(type(v)), v),
    )
    index = {v: i for i, v in enumerate(values)}
    return values, [
        np.array([index[v.item() if hasattr(v, "item") else v] for v in y]) for y in labels
    ]
