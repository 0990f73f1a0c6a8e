"""Binary classification: will it happen (churn, a dispute, a click)? Labels are 0 and 1,
the answer is the positive-class probability and a label at the model's decision
threshold (the F1-best cut on validation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import framework.tasks.estimators as estimators
from framework.common import html
from framework.errors import DataError
from framework.tasks.base import Task
from framework.tasks.metrics import best_threshold, binary_metrics

__all__ = ["CLASSIFICATION_METRICS", "BinaryTask", "positive_facts", "refuse_few_positives"]

CLASSIFICATION_METRICS = ("pr_auc", "roc_auc", "f1", "precision", "recall")


def positive_facts(every: pd.Series, parts: dict[str, pd.Series]) -> dict[str, Any]:
    """Positives (label > 0), rows and base rate overall and per part of the split."""
    every, parts = every > 0, {k: v > 0 for k, v in parts.items()}
    return {
        "positives": int(every.sum()),
        "rows": len(every),
        "base_rate": float(every.mean()),
        "parts": {
            k: {"positives": int(v.sum()), "rows": len(v), "base_rate": float(v.mean())}
            for k, v in parts.items()
        },
    }


def refuse_few_positives(problem: Any, label: dict[str, Any]) -> None:
    need = problem.min_positives
    short = {k: v["positives"] for k, v in label["parts"].items() if v["positives"] < need}
    if short:
        raise DataError(
            f"Problem {problem.name!r} has too few positive labels to train and judge a "
            f"model: {', '.join(f'{k} {n}' for k, n in short.items())} (of "
            f"{label['positives']:,} positives in {label['rows']:,} rows, base rate "
            f"{label['base_rate']:.2%}); each of train, validation and test needs at least "
            f"{need} (min_positives). Use more data (a longer span or more entities), a "
            "longer label horizon, or lower the problem's min_positives."
        )


class BinaryTask(Task):
    name = "binary"
    noun = "binary"
    metrics = CLASSIFICATION_METRICS
    candidates = ("baseline", "lightgbm", "logistic_regression", "random_forest")
    label_types = ("NoEvents", "AnyEvent", "LabelTable")
    label_values = (0, 1)

    def typed_labels(self, problem: Any, label: pd.Series) -> np.ndarray:
        values = pd.to_numeric(label, errors="coerce")
        bad = values.notna() & ~values.isin([0, 1])
        if bad.any():
            raise DataError(
                f"Problem {problem.name!r} is binary, but its labels hold "
                f"{sorted(values[bad].unique().tolist())[:5]}; binary labels are 0 and 1."
            )
        return values.astype("Int64").to_numpy(dtype="float64", na_value=np.nan)

    def label_column(self, labels: pd.Series) -> pd.Series:
        return labels.astype("int64")

    def estimator(self, name: str, seed: int = 0) -> Any:
        return estimators.classifier(name, seed)

    def predict(self, model: Any, x: Any, **kwargs: Any) -> np.ndarray:
        return np.asarray(model.predict_proba(x, **kwargs))[:, 1]

    def decision_threshold(self, y: np.ndarray, score: np.ndarray) -> float | None:
        return best_threshold(y, score)

    def evaluate(
        self,
        y: np.ndarray,
        score: np.ndarray,
        threshold: float = 0.5,
        classes: list[Any] | None = None,
        **context: Any,
    ) -> dict[str, float]:
        return binary_metrics(y, score, threshold)

    def label_facts(self, every: pd.Series, parts: dict[str, pd.Series]) -> dict[str, Any]:
        return positive_facts(every, parts)

    def check_label_facts(self, problem: Any, label: dict[str, Any]) -> None:
        refuse_few_positives(problem, label)

    def label_warnings(self, label: dict[str, Any]) -> list[str]:
        if label["base_rate"] < 0.01:
            return [
                f"rare positives (base rate {label['base_rate']:.2%}): judge by pr_auc, not "
                "accuracy"
            ]
        return []

    def card_curves(
        self, y: np.ndarray, score: np.ndarray, classes: list[Any] | None
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        from sklearn import metrics as m

        plt = html.pyplot()
        fpr, tpr, _ = m.roc_curve(y, score)
        precision, recall, _ = m.precision_recall_curve(y, score)
        step = max(1, len(fpr) // 200)
        data: dict[str, Any] = {"roc": {"fpr": fpr[::step].tolist(), "tpr": tpr[::step].tolist()}}
        step = max(1, len(recall) // 200)
        data["pr"] = {"recall": recall[::step].tolist(), "precision": precision[::step].tolist()}
        plots = []
        for title, (xs, ys, xl, yl) in {
            "ROC curve (test)": (fpr, tpr, "false positive rate", "true positive rate"),
            "Precision-recall curve (test)": (recall, precision, "recall", "precision"),
        }.items():
            fig, ax = plt.subplots(figsize=(4.2, 3.6))
            ax.plot(xs, ys)
            ax.set(title=title, xlabel=xl, ylabel=yl, xlim=(0, 1), ylim=(0, 1.02))
            plots.append((title, html.png(fig)))
        return data, plots

    def answer(
        self, meta: Any, model: Any, raw: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        cut = 0.5 if meta.decision_threshold is None else meta.decision_threshold
        return raw, (raw >= cut).astype(int)

    def realized_metrics(
        self,
        y: np.ndarray,
        score: np.ndarray,
        predicted: np.ndarray,
        lists: np.ndarray | None = None,
        k: int = 10,
    ) -> dict[str, Any]:
        from sklearn import metrics as m

        both = len(np.unique(y)) > 1
        return {
            "positive_rate": float(np.mean(y)),
            "precision": float(m.precision_score(y, predicted, zero_division=0)),
            "recall": float(m.recall_score(y, predicted, zero_division=0)),
            "pr_auc": float(m.average_precision_score(y, score)) if both else None,
        }
