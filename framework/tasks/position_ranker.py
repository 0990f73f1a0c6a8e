"""A position-aware LambdaMART (LightGBM's unbiased LambdaMART) as a scikit-learn
estimator: the ranking candidate ``lightgbm_position``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from framework.common.threads import configure_openmp

configure_openmp()  # before LightGBM is loaded (see framework.common.threads)

__all__ = ["PositionAwareRanker"]


class PositionAwareRanker(BaseEstimator):
    """LambdaMART that learns the position bias of the clicks it is trained on and
    corrects its gradients for it (LightGBM's unbiased LambdaMART: each training row's
    logged position in the Dataset, Hu et al., WWW 2019), so that an item clicked low in a
    list counts for more than one clicked at the top. Scores do not depend on position.

    Parameters are those of ``LGBM_SPACE`` (scikit-learn names) plus the strength of the
    bias estimate's regularization; ``fit`` takes ``group`` (list sizes) and ``position``
    (each row's 1-based position)."""

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 20,
        subsample: float = 1.0,
        subsample_freq: int = 0,
        colsample_bytree: float = 1.0,
        position_bias_regularization: float = 0.0,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.subsample_freq = subsample_freq
        self.colsample_bytree = colsample_bytree
        self.position_bias_regularization = position_bias_regularization
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(
        self, x: Any, y: np.ndarray, group: np.ndarray, position: np.ndarray | None = None
    ) -> PositionAwareRanker:
        import lightgbm as lgb

        if position is None:
            raise ValueError("a position-aware ranker needs each row's position (position=)")
        params = {
            "objective": "lambdarank",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": self.subsample_freq,
            "feature_fraction": self.colsample_bytree,
            "lambdarank_position_bias_regularization": self.position_bias_regularization,
            "seed": self.random_state,
            "num_threads": self.n_jobs,
            "verbose": -1,
        }
        data = lgb.Dataset(
            np.asarray(x, dtype="float64"),
            label=np.asarray(y),
            group=np.asarray(group),
            position=np.asarray(position, dtype=np.int32) - 1,
        )
        self.booster_ = lgb.train(params, data, num_boost_round=self.n_estimators)
        self.n_features_in_ = int(np.asarray(x).shape[1])
        return self

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.booster_.predict(np.asarray(x, dtype="float64")))

    @property
    def feature_importances_(self) -> np.ndarray:
        return np.asarray(self.booster_.feature_importance("gain"), dtype="float64")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "booster_")
