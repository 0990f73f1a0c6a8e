"""Estimators: the preprocessing every candidate shares, the candidate models by name,
LightGBM's tuning space and the random search over it.

Preprocessing (impute, one-hot encode, scale) is a scikit-learn ``ColumnTransformer``
fitted on the training split only, inside each candidate's pipeline, so serving
applies exactly the same transform. Which estimator a name means (a classifier or a
regressor, LambdaRank for a ranking) is the task kind's choice; this module builds them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from framework.common.threads import configure_openmp, thread_count

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer

configure_openmp()  # before LightGBM is loaded (see framework.common.threads)

__all__ = [
    "LGBM_SPACE",
    "SCORING",
    "classifier",
    "forest",
    "lightgbm",
    "preprocessor",
    "regressor",
    "search",
]

LGBM_SPACE: dict[str, list[Any]] = {
    "num_leaves": [15, 31, 63],
    "learning_rate": [0.03, 0.05, 0.1],
    "n_estimators": [100, 200, 300],
    "min_child_samples": [20, 50, 100],
    "subsample": [0.7, 1.0],
    "subsample_freq": [1],
    "colsample_bytree": [0.7, 1.0],
}
# scikit-learn's scorer of each metric (for the cross-validated search)
SCORING = {
    "pr_auc": "average_precision",
    "roc_auc": "roc_auc",
    "f1": "f1",
    "precision": "precision",
    "recall": "recall",
    "mae": "neg_mean_absolute_error",
    "mase": "neg_mean_absolute_error",  # MAE over a fixed scale: the same order
    "rmse": "neg_root_mean_squared_error",
    "r2": "r2",
    "macro_f1": "f1_macro",
    "log_loss": "neg_log_loss",
    "accuracy": "accuracy",
}


def preprocessor(frame: pd.DataFrame) -> ColumnTransformer:
    """Median-impute and scale the float columns; impute and one-hot encode the rest."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in frame.columns if frame[c].dtype == "float64"]
    categorical = [c for c in frame.columns if c not in numeric]
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
        ],
        verbose_feature_names_out=False,
    )


def lightgbm(kind: str, seed: int = 0, **params: Any) -> Any:
    """A LightGBM model of ``kind`` ('classifier', 'regressor' or 'ranker': LambdaRank)
    with the defaults every task starts from; ``params`` override them."""
    import lightgbm as lgb

    cls = {"classifier": lgb.LGBMClassifier, "regressor": lgb.LGBMRegressor}.get(kind)
    defaults: dict[str, Any] = {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "n_jobs": thread_count(),
        "random_state": seed,
        "importance_type": "gain",
        "verbose": -1,
    }
    if cls is None:
        cls, defaults["objective"] = lgb.LGBMRanker, "lambdarank"
    return cls(**{**defaults, **params})


def forest(classifier: bool, seed: int = 0) -> Any:
    """A random forest sized for a few minutes on two cores."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if classifier else RandomForestRegressor
    return cls(
        n_estimators=60,
        max_depth=12,
        min_samples_leaf=20,
        max_samples=0.5,
        n_jobs=thread_count(),
        random_state=seed,
    )


def search(
    model: Any, metric: str, x: pd.DataFrame, y: np.ndarray, budget: int, seed: int
) -> tuple[dict, float]:
    """Random search of ``model``'s LightGBM parameters with time-series cross-validation
    (rows are in time order), judged by ``metric``'s scorer.

    The preprocessing does not depend on the searched parameters, so each fold
    is prepared once and every configuration is fitted on the prepared matrices.
    """
    from sklearn.base import clone
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import ParameterSampler, TimeSeriesSplit

    scorer = get_scorer(SCORING.get(metric, metric))
    folds = []
    for train_idx, test_idx in TimeSeriesSplit(n_splits=3).split(x):
        prep = preprocessor(x).fit(x.iloc[train_idx])
        prepared = (prep.transform(x.iloc[train_idx]), prep.transform(x.iloc[test_idx]))
        folds.append((prepared[0], y[train_idx], prepared[1], y[test_idx]))
    results = []
    for params in ParameterSampler(LGBM_SPACE, n_iter=budget, random_state=seed):
        fold_scores = []
        for xt, yt, xv, yv in folds:
            fitted = clone(model).set_params(**params).fit(xt, yt)
            try:
                fold_scores.append(scorer(fitted, xv, yv))
            except ValueError:  # a class of the fold's validation rows unseen in its training
                fold_scores.append(np.nan)
        mean = float(np.nanmean(fold_scores)) if not np.isnan(fold_scores).all() else -np.inf
        results.append((mean, params))
    score, best = max(results, key=lambda r: r[0])
    return best, score


def classifier(name: str, seed: int = 0) -> Any:
    """Candidate ``name`` as a classifier: the prior baseline, LightGBM, logistic
    regression or a random forest."""
    if name == "baseline":
        from sklearn.dummy import DummyClassifier

        return DummyClassifier(strategy="prior")
    if name == "lightgbm":
        return lightgbm("classifier", seed)
    if name == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=500, C=1.0)
    if name == "random_forest":
        return forest(True, seed)
    raise ValueError(f"unknown classifier candidate {name!r}")


def regressor(name: str, seed: int = 0) -> Any:
    """Candidate ``name`` as a regressor: the mean baseline, LightGBM, ridge or a random
    forest."""
    if name == "baseline":
        from sklearn.dummy import DummyRegressor

        return DummyRegressor(strategy="mean")
    if name == "lightgbm":
        return lightgbm("regressor", seed)
    if name == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)
    if name == "random_forest":
        return forest(False, seed)
    raise ValueError(f"unknown regressor candidate {name!r}")
