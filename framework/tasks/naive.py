"""The seasonal-naive forecast: a model that answers a column it is given.

A forecast's rows carry ``naive_week`` (the daily total on the latest same weekday
known at the origin, see ``framework.features.horizons``); the baseline of a forecast
problem predicts exactly that, and the training mean where it is unknown. It is a
scikit-learn estimator (imported only where a
forecast model is fitted or loaded), so it is registered, served and scored like any model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

__all__ = ["Popularity", "SeasonalNaive"]


class SeasonalNaive(RegressorMixin, BaseEstimator):
    """Predicts ``x[column]``; where that is missing, the training label's mean."""

    def __init__(self, column: str = "naive_week") -> None:
        self.column = column

    def fit(self, x: pd.DataFrame, y: Any) -> SeasonalNaive:
        self.fallback_ = float(np.mean(y)) if len(y) else 0.0
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        values = pd.to_numeric(x[self.column], errors="coerce").to_numpy(dtype="float64")
        return np.where(np.isnan(values), self.fallback_, values)


class Popularity(RegressorMixin, BaseEstimator):
    """The popularity baseline of a ranking: scores each item by ``x[column]`` (a declared
    feature, say the item's clicks over the last 28 days); a missing value scores 0."""

    def __init__(self, column: str = "") -> None:
        self.column = column

    def fit(self, x: pd.DataFrame, y: Any = None) -> Popularity:
        if self.column not in x.columns:
            raise ValueError(f"the popularity feature {self.column!r} is not among the features")
        self.fitted_ = True
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        values = pd.to_numeric(x[self.column], errors="coerce").to_numpy(dtype="float64")
        return np.nan_to_num(values, nan=0.0)
