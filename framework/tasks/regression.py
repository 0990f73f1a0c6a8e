"""Regression: how much (spend over the next 30 days, units, minutes)? The answer is
the predicted number."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

import framework.tasks.estimators as estimators
from framework.common import html
from framework.tasks.base import Task
from framework.tasks.metrics import regression_metrics

__all__ = ["REGRESSION_METRICS", "RegressionTask", "residual_plots"]

REGRESSION_METRICS = ("mae", "rmse", "r2")


def residual_plots(y: np.ndarray, score: np.ndarray) -> list[tuple[str, str]]:
    """Predicted vs actual, and the residuals' histogram (title, base64 PNG)."""
    plt = html.pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.scatter(y, score, s=3, alpha=0.3)
    top = float(np.quantile(np.r_[y, score], 0.99))
    ax.plot([0, top], [0, top], color="grey")
    ax.set(
        title="Predicted vs actual (test)",
        xlabel="actual",
        ylabel="predicted",
        xlim=(0, top),
        ylim=(0, top),
    )
    plots = [("Predicted vs actual (test)", html.png(fig))]
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.hist(score - y, bins=60)
    ax.set(title="Residuals (test)", xlabel="predicted - actual", ylabel="rows")
    plots.append(("Residuals (test)", html.png(fig)))
    return plots


class RegressionTask(Task):
    name = "regression"
    noun = "a regression"
    metrics = REGRESSION_METRICS
    candidates: ClassVar[tuple[str, ...]] = ("baseline", "lightgbm", "ridge", "random_forest")
    label_types: ClassVar[tuple[str, ...]] = ("Count", "Sum", "Mean", "LabelTable")
    numeric = True

    def estimator(self, name: str, seed: int = 0) -> Any:
        return estimators.regressor(name, seed)

    def predict(self, model: Any, x: Any, **kwargs: Any) -> np.ndarray:
        return np.asarray(model.predict(x, **kwargs))

    def evaluate(
        self,
        y: np.ndarray,
        score: np.ndarray,
        threshold: float = 0.5,
        classes: list[Any] | None = None,
        **context: Any,
    ) -> dict[str, float]:
        return regression_metrics(y, score)

    def card_curves(
        self, y: np.ndarray, score: np.ndarray, classes: list[Any] | None
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return {}, residual_plots(y, score)
