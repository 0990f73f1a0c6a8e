"""Apply a registered model to feature rows: the one scoring path of training, serving and batch.

``score(meta, model, frame)`` converts the features named in the artifact's
metadata to the plain types the pipeline was fitted on (``to_model_frame``),
and returns the scores with, for a classifier, the labels at the artifact's
threshold. Serving and batch prediction read only the artifact and this module.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from framework.common.threads import configure_openmp
from framework.tasks import task_of
from framework.tasks.multiclass import class_matrix

configure_openmp()  # before a pickled LightGBM model loads it (framework.common.threads)

__all__ = [
    "CompiledPreprocess",
    "class_matrix",
    "class_probabilities",
    "raw_scores",
    "score",
    "to_model_frame",
]

SMALL_BATCH = 5_000


def _as_float(col: pd.Series) -> np.ndarray:
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iufb":
        return col.to_numpy(dtype="float64")
    if isinstance(
        col.array, pd.arrays.BooleanArray | pd.arrays.IntegerArray | pd.arrays.FloatingArray
    ):
        return col.array.to_numpy(dtype="float64", na_value=np.nan)
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        return pd.to_numeric(col.astype("Float64"), errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        )
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _as_text(col: pd.Series) -> np.ndarray:
    values = col.to_numpy(dtype=object)
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = np.nan
    return values


def to_model_frame(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Features as plain numpy-friendly types: numbers as float, text as object with NaN."""
    out = {}
    for name in features:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            out[name] = _as_float(col)
        else:
            out[name] = _as_text(col)
    return pd.DataFrame(out, index=frame.index)


class CompiledPreprocess:
    """The fitted preprocessing of ``framework.training.candidates`` (median impute + standard scale for
    numbers, constant impute + one-hot for text), applied with numpy.

    scikit-learn's ``ColumnTransformer.transform`` costs about 2 ms per call whatever the
    batch size, most of it checks; serving scores one to a few hundred rows per request.
    ``compile`` returns None for any pipeline whose shape it does not know, and the
    caller then uses scikit-learn. The tests check both give identical matrices.
    """

    def __init__(
        self,
        numeric: list[str],
        medians: np.ndarray,
        means: np.ndarray,
        scales: np.ndarray,
        categorical: list[str],
        categories: list[list[Any]],
        fill: Any,
    ) -> None:
        self.numeric = numeric
        self.medians = medians
        self.means = means
        self.scales = scales
        self.categorical = categorical
        self.categories = categories
        self.fill = fill
        self.width = len(numeric) + sum(len(c) for c in categories)

    @classmethod
    def compile(cls, pipeline: Any) -> CompiledPreprocess | None:
        try:
            from sklearn.compose import ColumnTransformer
            from sklearn.impute import SimpleImputer
            from sklearn.preprocessing import OneHotEncoder, StandardScaler

            prep = pipeline.steps[0][1]
            if not isinstance(prep, ColumnTransformer) or prep.remainder != "drop":
                return None
            parts = [t for t in prep.transformers_ if t[0] != "remainder"]
            if [name for name, _, _ in parts] != ["numeric", "categorical"]:
                return None
            (_, num, num_cols), (_, cat, cat_cols) = parts
            imp, scaler = (step for _, step in num.steps)
            cimp, onehot = (step for _, step in cat.steps)
            ok = (
                isinstance(imp, SimpleImputer)
                and imp.strategy == "median"
                and not np.isnan(imp.statistics_).any()  # no column dropped as all-missing
                and isinstance(scaler, StandardScaler)
                and scaler.with_mean
                and scaler.with_std
                and isinstance(cimp, SimpleImputer)
                and cimp.strategy == "constant"
                and isinstance(onehot, OneHotEncoder)
                and onehot.handle_unknown == "ignore"
                and onehot.drop is None
                and not getattr(onehot, "_infrequent_enabled", False)
            )
            if not ok:
                return None
            return cls(
                list(num_cols),
                np.asarray(imp.statistics_, dtype="float64"),
                np.asarray(scaler.mean_, dtype="float64"),
                np.asarray(scaler.scale_, dtype="float64"),
                list(cat_cols),
                [list(c) for c in onehot.categories_],
                cimp.fill_value,
            )
        except (AttributeError, ValueError, TypeError, IndexError):
            return None

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        n = len(frame)
        out = np.zeros((n, self.width), dtype="float64")
        k = len(self.numeric)
        if k:
            x = np.column_stack([_as_float(frame[c]) for c in self.numeric])
            x = np.where(np.isnan(x), self.medians, x)
            x -= self.means
            x /= self.scales
            out[:, :k] = x
        col = k
        for name, cats in zip(self.categorical, self.categories, strict=True):
            values = _as_text(frame[name])
            values = np.where(pd.isna(values), self.fill, values)
            for j, cat in enumerate(cats):
                out[:, col + j] = values == cat
            col += len(cats)
        return out


_COMPILED: dict[int, tuple[Any, CompiledPreprocess | None]] = {}


def _compiled(model: Any) -> CompiledPreprocess | None:
    hit = _COMPILED.get(id(model))
    if hit is None or hit[0] is not model:
        hit = (model, CompiledPreprocess.compile(model))
        if len(_COMPILED) > 64:
            _COMPILED.clear()
        _COMPILED[id(model)] = hit
    return hit[1]


def _predict(model: Any, task: str, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The task kind's raw output of ``model`` on ``frame`` (a positive-class probability,
    a class-probability matrix as the model knows its classes, a number, a score)."""
    kind = task_of(task)
    fast = _compiled(model)
    if fast is None:
        return kind.predict(model, to_model_frame(frame, features))
    estimator = model.steps[-1][1]
    xt = fast.transform(frame)
    return kind.predict(estimator, xt, **_threads(estimator, len(xt)))


def _threads(estimator: Any, rows: int) -> dict[str, Any]:
    """One thread for small batches: waking a thread pool costs more than it saves, and
    on a busy machine a waiting pool thread makes the latency tail."""
    if rows < SMALL_BATCH and type(estimator).__module__.startswith("lightgbm"):
        return {"num_threads": 1}
    return {}


class ScoringSpec(Protocol):
    """What scoring needs to know of a model (a ``ModelMeta`` has it)."""

    @property
    def task(self) -> str: ...
    @property
    def features(self) -> list[str]: ...
    @property
    def decision_threshold(self) -> float | None: ...
    @property
    def classes(self) -> list[Any] | None: ...


def class_probabilities(meta: ScoringSpec, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """A multiclass model's n x K probabilities, column i for ``meta.classes[i]``."""
    proba = _predict(model, meta.task, frame, meta.features)
    return class_matrix(model, proba, len(meta.classes or ()))


def score(
    meta: ScoringSpec, model: Any, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores of ``frame``'s rows and, where the task kind has them, labels: for a binary
    task the label at the decision threshold, for a multiclass task the probability of
    the most likely class and its index in ``meta.classes``; for a regression, the
    predictions and None."""
    raw = _predict(model, meta.task, frame, meta.features)
    return task_of(meta.task).answer(meta, model, raw)


def raw_scores(meta: ScoringSpec, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """The model's raw output on ``frame`` (before the task kind's answer)."""
    return _predict(model, meta.task, frame, meta.features)
