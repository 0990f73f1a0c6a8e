"""Define the problem: what to predict, about whom, from which features, judged how.

A ``Problem`` is declared in Python inside the feature repo (for example
``feature_repo/problems.py``; Feast ignores objects it does not know)::

    churn = Problem(
        name="churn",
        task="binary",
        events=events_source,
        label=NoEvents(horizon_days=30),
        spine=WeeklyCutoffs(active_within_days=90),
        feature_service="churn_model_v1",
        metric="pr_auc",
        success_threshold=0.5,
    )

Labels look forward from each observation time t, over (t, t + horizon];
features look back from t. Nothing here imports Feast or a learning library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from framework.declare.expressions import filter_to_sql
from framework.errors import FeatureRepoError

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "Monitoring",
    "NoEvents",
    "Problem",
    "Sum",
    "WeeklyCutoffs",
]

CLASSIFICATION_METRICS = ("pr_auc", "roc_auc", "f1", "precision", "recall")
REGRESSION_METRICS = ("mae", "rmse", "r2")
LOWER_IS_BETTER = ("mae", "rmse")
CANDIDATES = {
    "binary": ("baseline", "lightgbm", "logistic_regression", "random_forest"),
    "regression": ("baseline", "lightgbm", "ridge", "random_forest"),
}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class _Label:
    """Checks shared by the label builders: a horizon in whole days, a valid filter."""

    horizon_days: int
    where: str | None

    def __post_init__(self) -> None:
        _check_horizon(self.horizon_days)
        if self.where:
            filter_to_sql(self.where)


@dataclass(frozen=True)
class NoEvents(_Label):
    """Binary label: 1 when the entity has no event (matching ``where``) in (t, t + horizon]."""

    horizon_days: int
    where: str | None = None

    def describe(self) -> str:
        what = f"event matching {self.where!r}" if self.where else "event"
        return f"1 when no {what} in (t, t + {self.horizon_days}d]"


@dataclass(frozen=True)
class Sum(_Label):
    """Regression label: the sum of ``column`` over events (matching ``where``) in (t, t + horizon]."""

    column: str
    horizon_days: int
    where: str | None = None

    def describe(self) -> str:
        cond = f" where {self.where}" if self.where else ""
        return f"sum of {self.column}{cond} in (t, t + {self.horizon_days}d]"


@dataclass(frozen=True)
class WeeklyCutoffs:
    """Observation spine: every ``every_days`` days, the entities with an event in
    (t - active_within_days, t]. Cutoffs start ``warmup_days`` after the first event
    (so features have history) and stop where the label horizon leaves the data."""

    active_within_days: int = 90
    every_days: int = 7
    warmup_days: int = 90

    def __post_init__(self) -> None:
        for name in ("active_within_days", "every_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise FeatureRepoError(
                    f"WeeklyCutoffs.{name} must be a whole number of days > 0; got {value!r}."
                )


def _check_horizon(days: Any) -> None:
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        raise FeatureRepoError(
            f"A label horizon is a whole number of days > 0 (labels cover (t, t + horizon]); got {days!r}."
        )


@dataclass(frozen=True)
class Monitoring:
    """When ``lifecycle monitor`` calls a feature drifted, and when it says retrain.

    A feature drifted when its PSI is at least ``psi`` and its test's p-value is
    below ``p_value``; the action is ``retrain`` when the scores drifted or at
    least ``retrain_when_drifted`` features did, ``investigate`` for fewer. Once
    labels are known, it is also ``retrain`` when the realized metric is worse
    than the test metric by more than ``performance_drop``, or when at least
    ``new_labels`` predictions of the version have their labels."""

    psi: float = 0.2
    p_value: float = 0.01
    retrain_when_drifted: int = 3
    performance_drop: float | None = 0.05  # realized metric worse than test by more: retrain
    new_labels: int | None = None  # this many labeled predictions of the version: retrain

    def __post_init__(self) -> None:
        if not (isinstance(self.psi, int | float) and self.psi > 0):
            raise FeatureRepoError(f"Monitoring.psi must be > 0; got {self.psi!r}.")
        if not (isinstance(self.p_value, int | float) and 0 < self.p_value < 1):
            raise FeatureRepoError(f"Monitoring.p_value must be in (0, 1); got {self.p_value!r}.")
        if not isinstance(self.retrain_when_drifted, int) or self.retrain_when_drifted < 1:
            raise FeatureRepoError("Monitoring.retrain_when_drifted must be an integer >= 1.")
        if self.performance_drop is not None and not self.performance_drop >= 0:
            raise FeatureRepoError("Monitoring.performance_drop must be >= 0 (or None: off).")
        if self.new_labels is not None and (
            not isinstance(self.new_labels, int) or self.new_labels < 1
        ):
            raise FeatureRepoError("Monitoring.new_labels must be an integer >= 1 (or None: off).")


@dataclass(frozen=True)
class Problem:
    """A prediction problem, declared once and used by every stage after it."""

    name: str
    task: str
    events: Any  # a Feast FileSource over the event log the labels come from
    label: NoEvents | Sum
    spine: WeeklyCutoffs
    feature_service: str
    metric: str
    success_threshold: float
    entity: str = "user_id"
    candidates: tuple[str, ...] = ()
    tuning_budget: int = 8
    margin: float = 0.0
    categories: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    monitoring: Monitoring = field(default_factory=Monitoring)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise FeatureRepoError(f"Problem name {self.name!r} must be lower_snake_case.")
        if self.task not in CANDIDATES:
            raise FeatureRepoError(
                f"The 'task' of problem {self.name!r} must be 'binary' or 'regression'. Got {self.task!r} instead."
            )
        if self.task == "binary" and not isinstance(self.label, NoEvents):
            raise FeatureRepoError(
                f"Problem {self.name!r} is binary: its label must be NoEvents(...)."
            )
        if self.task == "regression" and not isinstance(self.label, Sum):
            raise FeatureRepoError(
                f"Problem {self.name!r} is a regression: its label must be Sum(...)."
            )
        metrics = CLASSIFICATION_METRICS if self.task == "binary" else REGRESSION_METRICS
        if self.metric not in metrics:
            raise FeatureRepoError(
                f"The 'metric' of {self.task} problem {self.name!r} must be one of {list(metrics)}. "
                f"Got {self.metric!r} instead."
            )
        known = CANDIDATES[self.task]
        unknown = [c for c in self.candidates if c not in known]
        if unknown:
            raise FeatureRepoError(
                f"Problem {self.name!r}: unknown candidate(s) {unknown}; choose from {list(known)}."
            )
        if not isinstance(self.tuning_budget, int) or self.tuning_budget < 1:
            raise FeatureRepoError(f"Problem {self.name!r}: tuning_budget must be an integer >= 1.")
        if not getattr(self.events, "path", None):
            raise FeatureRepoError(
                f"Problem {self.name!r}: 'events' must be a FileSource over the event log."
            )

    @property
    def models(self) -> tuple[str, ...]:
        """The candidates to compare (all of the task's when none are declared); baseline first."""
        chosen = self.candidates or CANDIDATES[self.task]
        return ("baseline", *[c for c in chosen if c != "baseline"])

    @property
    def horizon_days(self) -> int:
        return self.label.horizon_days

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    def succeeded(self, value: float) -> bool:
        """Whether a test metric value counts as success for this problem."""
        if self.higher_is_better:
            return value >= self.success_threshold
        return value <= self.success_threshold

    def spec(self) -> dict[str, Any]:
        """Plain data describing the problem, stored with datasets and models."""
        return {
            "name": self.name,
            "task": self.task,
            "entity": self.entity,
            "events": str(self.events.path),
            "label": {"type": type(self.label).__name__, **self.label.__dict__},
            "label_description": self.label.describe(),
            "spine": {"type": type(self.spine).__name__, **self.spine.__dict__},
            "feature_service": self.feature_service,
            "metric": self.metric,
            "success_threshold": self.success_threshold,
            "models": list(self.models),
            "tuning_budget": self.tuning_budget,
            "categories": {k: list(v) for k, v in self.categories.items()},
            "description": self.description,
        }
