"""Train, evaluate, improve: candidates compared on one time-based split.

- **Split** by observation time: the last 15% of observation times test, the
  15% before them validate, the rest train, with the rows whose label window
  (t, t + horizon] reaches into the next part purged in between (no label
  sees the period it is judged on); validation and test each keep at least
  the problem's ``min_split_times`` observation times after the purge.
- **Preprocessing** (impute, one-hot encode, scale) is a scikit-learn
  ``ColumnTransformer`` fitted on the training split only, inside each
  candidate's pipeline, so serving applies exactly the same transform.
- **Candidates**: a trivial baseline (majority class / mean), LightGBM tuned by
  random search with time-series cross-validation on the training split (the
  problem's ``tuning_budget`` configurations), and scikit-learn models.
- **Choice**: the best candidate on validation by the problem's metric; its
  decision threshold (binary) maximises F1 on validation; it is reported on test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from framework.common.threads import configure_openmp, thread_count
from framework.declare.problems import NUMERIC_TASKS, Problem
from framework.errors import DataError
from framework.models.scoring import class_matrix, to_model_frame
from framework.training.dataset import LABEL, TIMESTAMP, TrainingSet

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

configure_openmp()  # before LightGBM is loaded (see framework.common.threads)

__all__ = [
    "Split",
    "TrainResult",
    "evaluate",
    "evaluation_context",
    "fit_configuration",
    "forecast_scale",
    "model_inputs",
    "split_by_time",
    "split_problem",
    "split_rows_by_time",
    "thread_count",
    "train",
]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    purged: int = 0  # rows in none of the parts: their label window reaches the next part

    def ranges(self) -> dict[str, list[Any]]:
        """Each part's [first time, last time, rows, distinct observation times, days]."""
        out: dict[str, list[Any]] = {}
        for name, part in (
            ("train", self.train),
            ("validation", self.validation),
            ("test", self.test),
        ):
            ts = part[TIMESTAMP]
            days = (ts.max() - ts.min()).total_seconds() / 86_400
            out[name] = [
                ts.min().isoformat(),
                ts.max().isoformat(),
                len(part),
                int(ts.nunique()),
                round(days, 2),
            ]
        return out


def _observation_times(frame: pd.DataFrame, min_times: int) -> tuple[np.ndarray, int, int]:
    """The sorted distinct observation times, their number, and the minimum per part
    (refused when three parts cannot each have it)."""
    times = np.sort(frame[TIMESTAMP].unique())
    n = len(times)
    need = max(1, min_times)
    if n < 3 * need:
        raise DataError(
            f"A time-based split needs at least {3 * need} observation times ({need} each for "
            f"train, validation and test); the training set has {n}. Use more data, or lower "
            "the problem's min_split_times."
        )
    return times, n, need


def split_by_time(
    frame: pd.DataFrame,
    horizon_days: float,
    fractions: tuple[float, float] = (0.15, 0.15),
    *,
    min_times: int = 3,
) -> Split:
    """Train / validation / test by observation time, with a purge between them.

    Test is the last ``fractions[1]`` of the distinct observation times (at least
    ``min_times``). Validation is the last ``fractions[0]`` (at least ``min_times``) of the
    times whose label window (t, t + horizon] ends before test starts, and training is
    every time whose label window ends before validation starts: the purge gap is taken
    between the parts, so validation and test keep their share of observation times.
    Too little data for that is refused with the numbers.
    """
    times, n, need = _observation_times(frame, min_times)
    horizon = pd.Timedelta(days=horizon_days)
    n_test = max(need, round(n * fractions[1]))
    test_start = times[n - n_test]
    before = times[times + horizon < test_start]  # label windows end before test starts
    n_val = max(need, round(n * fractions[0]))
    span = (pd.Timestamp(times[-1]) - pd.Timestamp(times[0])).total_seconds() / 86_400
    if len(before) < need + n_val and len(before) >= 2 * need:
        n_val = len(before) - need  # fewer than the share, at least the minimum
    if len(before) < 2 * need:
        raise DataError(
            f"The training set spans {span:g} days ({n} observation times): after the test "
            f"split's {n_test} times and a {horizon_days:g}-day purge, {len(before)} times are "
            f"left for train and validation, which need at least {need} each (min_split_times)."
            " Use more data, a shorter label horizon, or lower min_split_times."
        )
    val_start = before[len(before) - n_val]
    ts = frame[TIMESTAMP]
    train = frame[ts + horizon < val_start]
    validation = frame[(ts >= val_start) & (ts + horizon < test_start)]
    test = frame[ts >= test_start]
    if train[TIMESTAMP].nunique() < need:
        raise DataError(
            f"The training set spans {span:g} days ({n} observation times): the train split "
            f"keeps {train[TIMESTAMP].nunique()} observation times after the {horizon_days:g}-day "
            f"purge before validation (needs {need}). Use more data, a shorter label horizon, "
            "or lower min_split_times."
        )
    purged = len(frame) - len(train) - len(validation) - len(test)
    return Split(train, validation, test, purged)


def split_rows_by_time(
    frame: pd.DataFrame,
    ends: pd.Series,
    fractions: tuple[float, float] = (0.15, 0.15),
    *,
    min_times: int = 3,
) -> Split:
    """Train / validation / test by observation time when each row's label becomes known
    at its own time ``ends`` (a forecast: the end of its target day). Test is the last
    ``fractions[1]`` of the observation times, validation the ``fractions[0]`` before it
    (each at least ``min_times``); a validation row is kept when its label is known
    before test starts, a training row when its label is known before validation starts."""
    times, n, need = _observation_times(frame, min_times)
    n_test = max(need, round(n * fractions[1]))
    test_start = times[n - n_test]
    ts = frame[TIMESTAMP]
    test = frame[ts >= test_start]
    known = frame[(ts < test_start) & (ends < test_start)]  # labels known before test
    # validation: the last fractions[0] of the times (at least ``need``) that keep a row
    kept = np.sort(known[TIMESTAMP].unique())
    n_val = max(need, round(n * fractions[0]))
    if len(kept) < n_val + need:
        raise DataError(
            f"The training set has {n} observation times: after the {n_test} of test, "
            f"{len(kept)} have a label known before test starts; validation and train need "
            f"{n_val} and {need}. Use more data or lower min_split_times."
        )
    val_start = kept[len(kept) - n_val]
    validation = known[known[TIMESTAMP] >= val_start]
    train = frame[(ts < val_start) & (ends < val_start)]
    if train[TIMESTAMP].nunique() < need:
        raise DataError(
            f"The training set has {n} observation times: {n_test} go to test and {n_val} to "
            f"validation, which leaves {train[TIMESTAMP].nunique()} with a label known before "
            f"validation starts (needs {need}). Use more data or lower min_split_times."
        )
    purged = len(frame) - len(train) - len(validation) - len(test)
    return Split(train, validation, test, purged)


def split_problem(frame: pd.DataFrame, problem: Problem) -> Split:
    """The problem's time split of ``frame`` (rows sorted by time): by the label horizon,
    or for a forecast by each row's target day."""
    if problem.task == "forecast":
        days = frame[TIMESTAMP].dt.floor("D") + pd.to_timedelta(frame["horizon_days"] + 1, unit="D")
        return split_rows_by_time(frame, days, min_times=problem.min_split_times)
    return split_by_time(frame, problem.horizon_days, min_times=problem.min_split_times)


def _preprocessor(frame: pd.DataFrame) -> ColumnTransformer:
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


def _estimator(name: str, task: str, seed: int = 0) -> Any:
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    binary = task not in NUMERIC_TASKS  # a classifier (binary or multiclass)
    if name == "baseline" and task == "forecast":
        from framework.models.naive import SeasonalNaive

        return SeasonalNaive()
    if name == "baseline":
        return DummyClassifier(strategy="prior") if binary else DummyRegressor(strategy="mean")
    if name == "lightgbm":
        import lightgbm as lgb

        cls: Any = lgb.LGBMClassifier if binary else lgb.LGBMRegressor
        if task == "ranking":  # LambdaRank: fitted by list (see _fit_pipeline)
            cls = partial(lgb.LGBMRanker, objective="lambdarank")
        return cls(
            n_estimators=200,
            learning_rate=0.05,
            num_leaves=31,
            n_jobs=thread_count(),
            random_state=seed,
            importance_type="gain",
            verbose=-1,
        )
    if name == "logistic_regression":
        return LogisticRegression(max_iter=500, C=1.0)
    if name == "ridge":
        return Ridge(alpha=1.0)
    if name == "random_forest":
        cls = RandomForestClassifier if binary else RandomForestRegressor
        return cls(
            n_estimators=60,
            max_depth=12,
            min_samples_leaf=20,
            max_samples=0.5,
            n_jobs=thread_count(),
            random_state=seed,
        )
    raise ValueError(f"unknown candidate {name!r}")


LGBM_SPACE: dict[str, list[Any]] = {
    "model__num_leaves": [15, 31, 63],
    "model__learning_rate": [0.03, 0.05, 0.1],
    "model__n_estimators": [100, 200, 300],
    "model__min_child_samples": [20, 50, 100],
    "model__subsample": [0.7, 1.0],
    "model__subsample_freq": [1],
    "model__colsample_bytree": [0.7, 1.0],
}
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


def _pipeline(
    name: str, task: str, x: pd.DataFrame, seed: int, popularity: str | None = None
) -> Pipeline:
    from sklearn.pipeline import Pipeline

    if name == "baseline" and task == "forecast":  # reads its column as given
        return Pipeline([("model", _estimator(name, task, seed))])
    if name == "baseline" and task == "ranking":  # orders by the popularity feature
        from framework.models.naive import Popularity

        return Pipeline([("model", Popularity(popularity or ""))])
    return Pipeline([("preprocess", _preprocessor(x)), ("model", _estimator(name, task, seed))])


def _fit_pipeline(
    pipe: Pipeline, name: str, problem: Problem, x: pd.DataFrame, y: np.ndarray, groups: Any
) -> Any:
    """Fit ``pipe``: a ranker by list (``groups``: the list id of each row, contiguous),
    a pointwise classifier of a ranking on label > 0, anything else as is."""
    if problem.task != "ranking" or name == "baseline":
        return pipe.fit(x, y)
    from framework.training.ranking import group_sizes

    if name == "lightgbm":  # LambdaRank: integer relevance grades (0..30)
        grades = np.clip(np.asarray(y, dtype="float64"), 0, 30).astype(np.int64)
        return pipe.fit(x, grades, model__group=group_sizes(groups))
    return pipe.fit(x, (np.asarray(y, dtype="float64") > 0).astype(np.int64))


def _fit(
    name: str, problem: Problem, x: pd.DataFrame, y: np.ndarray, seed: int, groups: Any = None
) -> tuple[Any, dict]:
    pipe = _pipeline(name, problem.task, x, seed, problem.popularity)
    if name != "lightgbm" or problem.tuning_budget <= 1:
        return _fit_pipeline(pipe, name, problem, x, y, groups), {}
    if problem.task == "ranking":
        from framework.training.ranking import search_ranker

        grades = np.clip(np.asarray(y, dtype="float64"), 0, 30).astype(np.int64)
        best, score = search_ranker(
            _estimator("lightgbm", "ranking", seed),
            {k.removeprefix("model__"): v for k, v in LGBM_SPACE.items()},
            _preprocessor(x),
            x,
            grades,
            groups,
            problem.top_k,
            problem.tuning_budget,
            seed,
        )
    else:
        best, score = _search(problem, x, y, seed)
    pipe.set_params(**{f"model__{k}": v for k, v in best.items()})
    tuning = {"best_params": best, "cv_score": score, "configurations": problem.tuning_budget}
    return _fit_pipeline(pipe, name, problem, x, y, groups), tuning


def _search(problem: Problem, x: pd.DataFrame, y: np.ndarray, seed: int) -> tuple[dict, float]:
    """Random search with time-series cross-validation (rows are in time order).

    The preprocessing does not depend on the searched parameters, so each fold
    is prepared once and every configuration is fitted on the prepared matrices.
    """
    from sklearn.base import clone
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import ParameterSampler, TimeSeriesSplit

    scorer = get_scorer(SCORING[problem.metric])
    folds = []
    for train_idx, test_idx in TimeSeriesSplit(n_splits=3).split(x):
        prep = _preprocessor(x).fit(x.iloc[train_idx])
        prepared = (prep.transform(x.iloc[train_idx]), prep.transform(x.iloc[test_idx]))
        folds.append((prepared[0], y[train_idx], prepared[1], y[test_idx]))
    space = {k.removeprefix("model__"): v for k, v in LGBM_SPACE.items()}
    model = _estimator("lightgbm", problem.task, seed)
    results = []
    for params in ParameterSampler(space, n_iter=problem.tuning_budget, random_state=seed):
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


def scores(model: Any, task: str, x: pd.DataFrame, classes: int = 2) -> np.ndarray:
    """The positive-class probability (binary), the n x K class probabilities
    (multiclass) or the prediction (regression)."""
    if task == "binary" or (task == "ranking" and hasattr(model, "predict_proba")):
        return model.predict_proba(x)[:, 1]
    if task == "multiclass":
        return class_matrix(model, model.predict_proba(x), classes)
    return model.predict(x)


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


def _multiclass_metrics(y: np.ndarray, proba: np.ndarray, names: list[Any]) -> dict[str, float]:
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


def best_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The decision threshold that maximises F1 (ties: the higher threshold)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, score)
    if len(thresholds) == 0:
        return 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)[:-1]
    return float(thresholds[int(np.argmax(f1))])


HORIZON_BUCKETS = ((1, 7), (8, 30), (31, 365), (366, 3660))


def forecast_scale(x: pd.DataFrame, y: np.ndarray) -> float:
    """The MASE denominator: the seasonal-naive forecast's MAE on the training rows."""
    naive = x["naive_week"].to_numpy(dtype="float64")
    known = ~np.isnan(naive)
    scale = float(np.mean(np.abs(y[known] - naive[known]))) if known.any() else float("nan")
    return scale if scale > 0 else float("nan")


def _forecast_metrics(
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


def evaluate(
    task: str,
    y: np.ndarray,
    score: np.ndarray,
    threshold: float = 0.5,
    classes: list[Any] | None = None,
    *,
    horizons: np.ndarray | None = None,
    scale: float | None = None,
    groups: np.ndarray | None = None,
    k: int = 10,
) -> dict[str, float]:
    """The task's metrics of ``score`` against ``y`` (class indices for multiclass, with
    ``classes`` naming them; for a forecast, per bucket of ``horizons`` with MASE over
    ``scale``)."""
    from sklearn import metrics as m

    if task == "ranking":
        from framework.training.ranking import ranking_metrics

        if groups is None:
            raise ValueError("a ranking is evaluated per list: pass groups=")
        return ranking_metrics(np.asarray(y, dtype=float), np.asarray(score), groups, k)
    if task == "forecast":
        return _forecast_metrics(
            np.asarray(y, dtype=float), np.asarray(score, dtype=float), horizons, scale
        )

    if task == "multiclass":
        names = classes if classes is not None else list(range(score.shape[1]))
        return _multiclass_metrics(y, score, names)
    if task == "binary":
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
    return {
        "mae": float(m.mean_absolute_error(y, score)),
        "rmse": float(np.sqrt(m.mean_squared_error(y, score))),
        "r2": float(m.r2_score(y, score)),
    }


METRIC_COLUMNS = {
    "binary": ["precision", "recall", "f1", "roc_auc", "pr_auc"],
    "multiclass": ["accuracy", "macro_f1", "log_loss"],
    "regression": ["mae", "rmse", "r2"],
    "forecast": ["mae", "rmse", "mase"],
    "ranking": ["ndcg", "map", "ctr"],
}


@dataclass
class Candidate:
    name: str
    model: Any
    validation: dict[str, float]
    fit_seconds: float
    tuning: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    """The winner and every candidate, with their metrics on validation and test."""

    problem: Problem
    split: Split
    candidates: list[Candidate]
    winner: Candidate
    test: dict[str, float]
    baseline_test: dict[str, float]
    decision_threshold: float | None
    test_scores: np.ndarray
    seconds: dict[str, float]
    classes: list[Any] | None = None  # multiclass: the class values, by index

    def to_text(self) -> str:
        """The comparison table: every candidate on validation, the winner and the
        baseline on test, and whether the problem's success threshold is met."""
        problem = self.problem
        cols = METRIC_COLUMNS[problem.task]
        lines = [
            f"{problem.name}: candidates on validation ({problem.metric} chooses), winner on test",
            f"  {'model':<22}" + "".join(f"{c:>10}" for c in cols),
        ]
        for c in self.candidates:
            mark = " *" if c is self.winner else ""
            lines.append(
                f"  {c.name + mark:<22}" + "".join(f"{c.validation[k]:>10.4f}" for k in cols)
            )
        lines.append(f"  {'winner on test':<22}" + "".join(f"{self.test[k]:>10.4f}" for k in cols))
        lines.append(
            f"  {'baseline on test':<22}" + "".join(f"{self.baseline_test[k]:>10.4f}" for k in cols)
        )
        if self.classes is not None:
            lines.append(f"  {'winner per class':<22}{'precision':>10}{'recall':>10}{'f1':>10}")
            for name in self.classes:
                lines.append(
                    f"  {name!s:<22}"
                    + "".join(
                        f"{self.test[f'{k}[{name}]']:>10.4f}" for k in ("precision", "recall", "f1")
                    )
                )
        if problem.task == "forecast":
            lines.append(
                f"  {'test by horizon':<22}{'rows':>10}{'mae':>10}{'mase':>10}{'naive mae':>10}"
            )
            for a, b in HORIZON_BUCKETS:
                key = f"[{a}-{b}]"
                if f"mae{key}" in self.test:
                    lines.append(
                        f"  {f'{a}-{b} days':<22}{self.test[f'rows{key}']:>10,.0f}"
                        f"{self.test[f'mae{key}']:>10.4f}{self.test[f'mase{key}']:>10.4f}"
                        f"{self.baseline_test[f'mae{key}']:>10.4f}"
                    )
        ok = problem.succeeded(self.test[problem.metric])
        bar = f"{problem.metric} {'>=' if problem.higher_is_better else '<='} {problem.success_threshold}"
        lines.append(f"  success ({bar}): {'yes' if ok else 'no'}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "problem": self.problem.name,
            "task": self.problem.task,
            "winner": self.winner.name,
            "metrics": {"validation": self.winner.validation, "test": self.test},
            "baseline": {"test": self.baseline_test},
            "candidates": [
                {
                    "name": c.name,
                    "validation": c.validation,
                    "fit_seconds": c.fit_seconds,
                    **({"tuning": c.tuning} if c.tuning else {}),
                }
                for c in self.candidates
            ],
            "decision_threshold": self.decision_threshold,
            "classes": self.classes,
            "success": bool(self.problem.succeeded(self.test[self.problem.metric])),
            "split": self.split.ranges(),
        }


PARTS = ("train", "validation", "test")


def model_inputs(
    split: Split, ts: TrainingSet, problem: Problem
) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray], list[Any] | None]:
    """Each part's model frame and label array (class indices for multiclass, with the
    class values), refusing a classifier whose training split holds a single class."""
    xs = {k: to_model_frame(getattr(split, k), ts.features) for k in PARTS}
    if problem.task == "ranking":  # each row's list, beside the model's inputs
        for k in PARTS:
            ids = getattr(split, k)[str(problem.group)].to_numpy()
            xs[k].attrs["groups"] = pd.factorize(ids)[0].astype(np.int64)  # cheap to copy
    ys = {k: getattr(split, k)[LABEL].to_numpy() for k in PARTS}
    classes: list[Any] | None = None
    if problem.task == "multiclass":
        classes, encoded = encode_classes(*(ys[k] for k in PARTS))
        ys = dict(zip(PARTS, encoded, strict=True))
    if problem.task not in NUMERIC_TASKS and len(np.unique(ys["train"])) < 2:
        raise DataError(
            f"Problem {problem.name!r}: the training split has a single class; a classifier needs two."
        )
    return xs, ys, classes


def evaluation_context(
    problem: Problem, xs: dict[str, pd.DataFrame], ys: dict[str, np.ndarray], part: str
) -> dict[str, Any]:
    """What ``evaluate`` needs beyond labels and scores: for a forecast, the part's
    horizons and the MASE scale of the training rows; for a ranking, the part's lists
    and the metrics' k."""
    if problem.task == "ranking":
        return {"groups": xs[part].attrs["groups"], "k": problem.top_k}
    if problem.task != "forecast":
        return {}
    return {
        "horizons": xs[part]["horizon_days"].to_numpy(),
        "scale": forecast_scale(xs["train"], ys["train"]),
    }


def fit_configuration(
    name: str, problem: Problem, x: pd.DataFrame, y: np.ndarray, params: dict, seed: int = 0
) -> Any:
    """A candidate's pipeline with the given model parameters, fitted (no search)."""
    pipe = _pipeline(name, problem.task, x, seed, problem.popularity)
    pipe.set_params(**{f"model__{k}": v for k, v in params.items()})
    return _fit_pipeline(pipe, name, problem, x, y, x.attrs.get("groups"))


def train(
    ts: TrainingSet, problem: Problem, *, progress: Progress | None = None, seed: int = 0
) -> TrainResult:
    """Fit every candidate on the training split, pick on validation, report on test."""
    say = progress or (lambda _m: None)
    order = [TIMESTAMP, str(problem.group)] if problem.task == "ranking" else [TIMESTAMP]
    frame = ts.frame.sort_values(order, kind="stable")  # a ranking: each list contiguous
    split = split_problem(frame, problem)
    say(
        "split by time: "
        + ", ".join(
            f"{k} {v[2]:,} rows over {v[3]} times ({v[4]:g} days)"
            for k, v in split.ranges().items()
        )
        + f"; {split.purged:,} rows purged"
    )
    xs, ys, classes = model_inputs(split, ts, problem)
    k = len(classes) if classes is not None else 2
    context = {part: evaluation_context(problem, xs, ys, part) for part in PARTS}
    candidates, seconds = [], {}
    for name in problem.models:
        say(
            f"fitting {name}"
            + (
                f" (random search, {problem.tuning_budget} configurations x 3 time folds)"
                if name == "lightgbm"
                else ""
            )
        )
        t0 = time.perf_counter()
        model, tuning = _fit(
            name, problem, xs["train"], ys["train"], seed, xs["train"].attrs.get("groups")
        )
        seconds[name] = time.perf_counter() - t0
        val_score = scores(model, problem.task, xs["validation"], k)
        threshold = best_threshold(ys["validation"], val_score) if problem.task == "binary" else 0.5
        metrics = evaluate(
            problem.task, ys["validation"], val_score, threshold, classes, **context["validation"]
        )
        candidates.append(Candidate(name, model, metrics, seconds[name], tuning))
        say(
            f"  {name}: validation {problem.metric} = {metrics[problem.metric]:.4f} ({seconds[name]:.1f}s)"
        )
    sign = 1 if problem.higher_is_better else -1
    winner = max(
        candidates,
        key=lambda c: sign * np.nan_to_num(c.validation[problem.metric], nan=-np.inf * sign),
    )
    decision_threshold: float | None = (
        winner.validation.get("decision_threshold") if problem.task == "binary" else None
    )
    test_scores = scores(winner.model, problem.task, xs["test"], k)
    test = evaluate(
        problem.task,
        ys["test"],
        test_scores,
        decision_threshold or 0.5,
        classes,
        **context["test"],
    )
    base = candidates[0]
    baseline_test = evaluate(
        problem.task,
        ys["test"],
        scores(base.model, problem.task, xs["test"], k),
        base.validation.get("decision_threshold", 0.5),
        classes,
        **context["test"],
    )
    return TrainResult(
        problem,
        split,
        candidates,
        winner,
        test,
        baseline_test,
        decision_threshold,
        test_scores,
        seconds,
        classes,
    )
