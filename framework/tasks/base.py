"""The task kind: what differs between a binary, a multiclass, a regression, a forecast
and a ranking problem, in one object each.

Every stage asks the problem's task kind (``problem.kind``) instead of branching on its
name: which labels and spines it takes, how labels are typed, how the rows are split,
which candidates are compared and how they are fitted and tuned, which metrics judge
them and in which direction, what a prediction answers, what the model card and the
assessment show, and how realized performance is measured once labels arrive.

A new kind is one module: a subclass of ``Task`` with its name, registered with
``framework.tasks.register_task`` (see ``tests/tasks/test_extra_task.py``). Two
attributes say which of the shared machinery it reuses:

- ``observations``: how its training rows are made: ``"points"`` (features at each
  observation time), ``"horizons"`` (one row per forecast origin and target day) or
  ``"lists"`` (the items shown in each list);
- ``route``: how it is served: ``"predict"`` (``POST /predict`` and batch scoring),
  ``"rank"`` (``POST /rank``) or ``"horizon"`` (batch forecasts a horizon ahead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

import framework.tasks.estimators as estimators
from framework.common.columns import TIMESTAMP
from framework.errors import DataError, FeatureRepoError
from framework.tasks.splitters import Split, split_by_time

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["PARTS", "Task"]

PARTS = ("train", "validation", "test")
LOWER_IS_BETTER = frozenset({"mae", "rmse", "log_loss", "mase", "poisson_deviance"})


class Task:
    """A task kind. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str] = ""
    noun: ClassVar[str] = ""  # how messages name it: "binary", "a regression"
    metrics: ClassVar[tuple[str, ...]] = ()
    candidates: ClassVar[tuple[str, ...]] = ("baseline", "lightgbm")
    label_types: ClassVar[tuple[str, ...]] = ()  # names of the label declarations it takes
    spine_types: ClassVar[tuple[str, ...] | None] = None  # None: any spine
    numeric: ClassVar[bool] = False  # predicts a number, not a class
    label_values: ClassVar[tuple[Any, ...] | None] = None  # the only values a label takes
    observations: ClassVar[str] = "points"
    route: ClassVar[str] = "predict"

    # -- declaration -------------------------------------------------------------------

    def lower_is_better(self, metric: str) -> bool:
        return metric in LOWER_IS_BETTER

    def check(self, problem: Any) -> None:
        """Refusals beyond the label, spine, metric and candidates (which ``Problem``
        checks against the attributes above)."""
        if (
            problem.group
            or problem.item
            or problem.popularity
            or problem.position
            or problem.propensity
            or problem.exploration
        ):
            raise FeatureRepoError(
                f"Problem {problem.name!r}: group=, item=, popularity=, position=, "
                "propensity= and exploration= belong to a ranking (task='ranking')."
            )

    def promotion_refusal(self, meta: Any) -> str | None:
        """Why the evidence in ``meta`` does not support promoting the model (None: it
        does; a kind that has no such gate always answers None)."""
        return None

    def gate_lift(
        self, y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, context: dict
    ) -> Any:
        """A paired estimate of the challenger's gain over the champion with an interval
        (``.value``, ``.low``, ``.high``), for a kind whose gate asks for one; else None."""
        return None

    def default_candidates(self, problem: Any) -> tuple[str, ...]:
        """The candidates compared when the problem declares none."""
        return self.candidates

    def spec(self, problem: Any) -> dict[str, Any]:
        """What a problem of this kind adds to its stored description."""
        return {}

    def label_stop_us(self, problem: Any) -> int:
        """How long before the data's end the last observation time is (its label must
        be known by then)."""
        return int(problem.horizon_us)

    def typed_labels(self, problem: Any, label: pd.Series) -> np.ndarray:
        """The label column as this kind's values (numbers; NaN: no label)."""
        return pd.to_numeric(label, errors="coerce").astype("float64").to_numpy()

    def label_column(self, labels: pd.Series) -> pd.Series:
        """The known labels (no missing ones left) in the training set's type."""
        return labels

    def label_summary(self, label: pd.Series) -> dict[str, Any]:
        """The label in a training set's description: its balance, or its mean."""
        if self.numeric:
            return {"label_mean": float(label.mean())}
        counts = label.value_counts().sort_index()
        return {"label_balance": {str(k): int(v) for k, v in counts.items()}}

    # -- training ------------------------------------------------------------------------

    def check_training_labels(self, problem: Any, labels: pd.Series) -> None:
        """Refuse a training set whose labels cannot be learned from."""
        if not self.numeric and labels.nunique() < 2:
            raise DataError(
                f"Problem {problem.name!r}: every observation has label {labels.iloc[0]}; "
                "a classifier needs both classes. Check the label horizon and the data."
            )

    def row_columns(self, problem: Any) -> list[str]:
        """Spine columns a training row keeps beside keys, time, features and label."""
        return []

    def sort_columns(self, problem: Any) -> list[str]:
        return [TIMESTAMP]

    def split(self, frame: pd.DataFrame, problem: Any) -> Split:
        """Train / validation / test by observation time, purged by the label horizon."""
        return split_by_time(frame, problem.horizon_days, min_times=problem.min_split_times)

    def encode_labels(
        self, problem: Any, ys: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[Any] | None]:
        """Each part's labels as the estimators take them, and the class values (if any)."""
        if not self.numeric and len(np.unique(ys["train"])) < 2:
            raise DataError(
                f"Problem {problem.name!r}: the training split has a single class; a "
                "classifier needs two."
            )
        return ys, None

    def annotate(self, x: pd.DataFrame, part: pd.DataFrame, problem: Any) -> None:
        """Attach what fitting and judging need beyond the features to a model frame."""

    def evaluation_context(
        self, problem: Any, xs: dict[str, pd.DataFrame], ys: dict[str, np.ndarray], part: str
    ) -> dict[str, Any]:
        """What ``evaluate`` needs beyond labels and scores for ``part``."""
        return {}

    def fittable(self, y: np.ndarray) -> bool:
        """Whether a candidate can be fitted on labels ``y``."""
        return self.numeric or len(np.unique(y)) > 1

    def estimator(self, name: str, seed: int = 0) -> Any:
        raise ValueError(f"unknown candidate {name!r} of a {self.name} problem")

    def pipeline(self, name: str, x: pd.DataFrame, seed: int, problem: Any) -> Pipeline:
        """Candidate ``name``: the shared preprocessing, then its estimator."""
        from sklearn.pipeline import Pipeline

        steps = [("preprocess", estimators.preprocessor(x)), ("model", self.estimator(name, seed))]
        return Pipeline(steps)

    def fit(
        self, pipe: Any, name: str, problem: Any, x: pd.DataFrame, y: np.ndarray, groups: Any
    ) -> Any:
        return pipe.fit(x, y)

    def tune(
        self, problem: Any, x: pd.DataFrame, y: np.ndarray, seed: int, groups: Any
    ) -> tuple[dict[str, Any], float]:
        """LightGBM's best parameters by random search, and their cross-validated score."""
        model = self.estimator("lightgbm", seed)
        return estimators.search(model, problem.metric, x, y, problem.tuning_budget, seed)

    def predict(self, model: Any, x: Any, **kwargs: Any) -> np.ndarray:
        """The raw output of ``model`` (a pipeline or its last step) on ``x``."""
        raise NotImplementedError

    def scores(self, model: Any, x: pd.DataFrame, classes: int = 2) -> np.ndarray:
        """What the metrics judge: ``predict``'s output (class matrix for multiclass)."""
        return self.predict(model, x)

    def decision_threshold(self, y: np.ndarray, score: np.ndarray) -> float | None:
        """The cut that turns scores into labels, chosen on validation (None: none)."""
        return None

    def evaluate(
        self,
        y: np.ndarray,
        score: np.ndarray,
        threshold: float = 0.5,
        classes: list[Any] | None = None,
        **context: Any,
    ) -> dict[str, float]:
        raise NotImplementedError

    @property
    def metric_columns(self) -> list[str]:
        """The metrics of the comparison tables."""
        return list(self.metrics)

    def text_rows(self, result: Any) -> list[str]:
        """Lines the comparison table adds after winner and baseline."""
        return []

    def test_rows(self, result: Any, problem: Any) -> pd.DataFrame | None:
        """The test rows the card's own section plots (None: it has none)."""
        return None

    # -- assessment ----------------------------------------------------------------------

    def label_facts(self, every: pd.Series, parts: dict[str, pd.Series]) -> dict[str, Any]:
        """The label's spread over every observation and each part of the split."""
        values = every.astype(float)
        q = values.quantile([0.05, 0.5, 0.95]).to_numpy()
        return {
            "rows": len(values),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
            "p05": float(q[0]),
            "median": float(q[1]),
            "p95": float(q[2]),
            "max": float(values.max()),
            "zero_share": float((values == 0).mean()),
            "parts": {
                k: {"rows": len(v), "mean": float(v.astype(float).mean())} for k, v in parts.items()
            },
        }

    def check_label_facts(self, problem: Any, label: dict[str, Any]) -> None:
        """Refuse before training when the labels cannot judge a model."""
        if label["std"] == 0 or np.isnan(label["std"]):
            raise DataError(
                f"Problem {problem.name!r}: the label is constant ({label['mean']:g}) over "
                f"{label['rows']:,} rows; there is nothing to predict."
            )

    def label_warnings(self, label: dict[str, Any]) -> list[str]:
        return []

    # -- model card ----------------------------------------------------------------------

    def card_labels(self, meta: Any, y_test: np.ndarray) -> np.ndarray:
        """The test labels as the card's plots take them."""
        return np.asarray(y_test, dtype=float)

    def card_curves(
        self, y: np.ndarray, score: np.ndarray, classes: list[Any] | None
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The card's curve data and plots (title, base64 PNG) of the test scores."""
        return {}, []

    def card_section(self, meta: Any, rows: pd.DataFrame | None) -> str:
        """HTML the card adds after the test table (per class, per horizon, per rank)."""
        return ""

    # -- serving ---------------------------------------------------------------------------

    def answer(
        self, meta: Any, model: Any, raw: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores and labels (or None) of ``predict``'s raw output."""
        return raw, None

    def answer_items(self, meta: Any, model: Any, raw: np.ndarray) -> list[dict[str, Any]]:
        """The answer of each row to a prediction request: its score, and its label
        where the kind has one."""
        scores, labels = self.answer(meta, model, raw)
        if labels is None:
            return [{"score": float(s)} for s in scores]
        return [{"score": float(s), "label": int(v)} for s, v in zip(scores, labels, strict=True)]

    def class_names(self, meta: Any, labels: np.ndarray | None) -> list[str] | None:
        """The predicted class of each row as text (None: the kind has no classes)."""
        return None

    def route_hint(self, name: str) -> str:
        """Where a problem of this kind is served, for a request sent to the wrong place."""
        return f"{name!r} is served by POST /predict."

    # -- monitoring ------------------------------------------------------------------------

    def list_ids(self, problem: Any, points: pd.DataFrame, at: pd.Series) -> np.ndarray:
        """The list each logged prediction belongs to (all 0 for a pointwise kind)."""
        return np.zeros(len(points), dtype=np.int64)

    def realized_labels(self, meta: Any, truth: pd.Series) -> pd.Series | None:
        """Known labels as the version's predictions compare to them (None: they cannot)."""
        return truth

    def realized_metrics(
        self,
        y: np.ndarray,
        score: np.ndarray,
        predicted: np.ndarray,
        lists: np.ndarray | None = None,
        k: int = 10,
    ) -> dict[str, Any]:
        """The metrics of logged predictions against their labels, once known."""
        from framework.tasks.metrics import regression_metrics

        out = regression_metrics(y, score)
        out.pop("r2")
        return out

    def gate_scores(
        self, meta: Any, model: Any, raw: np.ndarray, y: np.ndarray, classes: list[Any] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The champion's scores (``raw``: its ``predict`` output) on the challenger's test
        rows, and the labels ``y`` as the challenger's metrics take them."""
        return self.answer(meta, model, raw)[0], y

    def gate_context(self, problem: Any, window: pd.DataFrame, train: pd.DataFrame) -> dict:
        """What ``evaluate`` needs to judge the champion on the challenger's test rows."""
        return {}

    def __repr__(self) -> str:
        return f"<task {self.name!r}>"
