"""Define the problem: what to predict, about whom, from which features, judged how.

A ``Problem`` is declared in Python inside the feature repo (for example
``feature_repo/problems.py``; Feast ignores objects it does not know)::

    churn = Problem(
        name="churn",
        task="binary",
        events=events_source,
        label=NoEvents(horizon=timedelta(days=30)),
        spine=Cutoffs(every=7, active_within=90, warmup=90),
        feature_service="churn_model_v1",
        metric="pr_auc",
        success_threshold=0.5,
    )

A ranking (``task="ranking"``) also names ``group`` (the spine column of the list
each observation was shown in), ``item`` (the ranked keys) and ``popularity`` (the
feature whose order is its baseline); its observations are impressions
(``EventSpine``) and it is judged per list (NDCG, MAP, CTR at ``top_k``). With the
impressions' ``position`` and ``propensity`` declared, it learns position-aware and is
also judged by the CTR its order would have earned (a counterfactual estimate), and
``exploration`` shuffles that share of ``/rank``'s lists to make such estimates possible.

Labels look forward from each observation time t, over (t, t + horizon]
(``NoEvents``, ``AnyEvent``, ``Count``, ``Sum``, ``Mean`` of any event source,
with a ``where`` filter), or come from a table (``LabelTable``); observations
are periodic cutoffs (``Cutoffs``, any period), events (``EventSpine``) or the
rows of a table (``TableSpine``); features look back from t. Nothing here
imports Feast or a learning library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from framework.declare.labels import (
    AnyEvent,
    Count,
    DailyTotal,
    Label,
    LabelTable,
    Mean,
    NoEvents,
    Sum,
    _us,
)
from framework.declare.spines import Cutoffs, EventSpine, Spine, TableSpine, WeeklyCutoffs
from framework.errors import FeatureRepoError
from framework.tasks import Task, task_of

__all__ = [
    "AnyEvent",
    "Count",
    "Cutoffs",
    "DailyTotal",
    "EventSpine",
    "LabelTable",
    "Mean",
    "Monitoring",
    "NoEvents",
    "Problem",
    "Sum",
    "TableSpine",
    "WeeklyCutoffs",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Monitoring:
    """When ``lifecycle monitor`` calls a feature drifted, and when it says retrain.

    A feature drifted when its PSI is at least ``psi`` and its test's p-value is
    below ``p_value``; the action is ``retrain`` when the scores drifted or at
    least ``retrain_when_drifted`` features did, ``investigate`` for fewer. Once
    labels are known, it is also ``retrain`` when the realized metric is worse
    than the test metric by more than ``performance_drop``, or when at least
    ``new_labels`` predictions of the version have their labels.

    Below ``min_rows`` current rows (drift) or labeled predictions (realized
    performance) the numbers are reported with their sample size and a warning, and
    no action is taken on them: a PSI or a metric on a handful of rows is noise."""

    psi: float = 0.2
    p_value: float = 0.01
    retrain_when_drifted: int = 3
    performance_drop: float | None = 0.05  # realized metric worse than test by more: retrain
    new_labels: int | None = None  # this many labeled predictions of the version: retrain
    count_calendar: bool = False  # date expansions count toward drift (off: reported only)
    min_rows: int = 100  # fewer current rows or labels: reported, not acted on

    def __post_init__(self) -> None:
        if not (isinstance(self.psi, int | float) and self.psi > 0):
            raise FeatureRepoError(f"Monitoring.psi must be > 0; got {self.psi!r}.")
        if not (isinstance(self.p_value, int | float) and 0 < self.p_value < 1):
            raise FeatureRepoError(f"Monitoring.p_value must be in (0, 1); got {self.p_value!r}.")
        if not isinstance(self.retrain_when_drifted, int) or self.retrain_when_drifted < 1:
            raise FeatureRepoError("Monitoring.retrain_when_drifted must be an integer >= 1.")
        if not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise FeatureRepoError(
                f"Monitoring.min_rows must be an integer >= 1; got {self.min_rows!r}."
            )
        if self.performance_drop is not None and not self.performance_drop >= 0:
            raise FeatureRepoError("Monitoring.performance_drop must be >= 0 (or None: off).")
        if self.new_labels is not None and (
            not isinstance(self.new_labels, int) or self.new_labels < 1
        ):
            raise FeatureRepoError("Monitoring.new_labels must be an integer >= 1 (or None: off).")


@dataclass(frozen=True, kw_only=True)
class Problem:
    """A prediction problem, declared once and used by every stage after it.

    ``events`` (a FileSource over the event log) is where event labels and spines read
    by default; a problem over a ``LabelTable`` needs neither ``events`` nor ``spine``
    (the table's rows are the observations)."""

    name: str
    task: str
    label: Label
    feature_service: str
    metric: str
    success_threshold: float
    events: Any = None  # a Feast FileSource: the default source of event labels and spines
    spine: Spine | None = None  # None with a LabelTable: its rows are the observations
    # the join key(s): a name, or a tuple of names for a composite key; None: the
    # feature service's join keys (set by FeatureRepo)
    entity: str | tuple[str, ...] | None = None
    candidates: tuple[str, ...] = ()
    tuning_budget: int = 8
    min_split_times: int = 3  # distinct observation times in each of train, validation, test
    # positive labels (binary) or rows of each of two classes (multiclass) that validation
    # and test must each hold: fewer and a metric on them is noise (refused before training)
    min_positives: int = 10
    margin: float = 0.0
    categories: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    monitoring: Monitoring = field(default_factory=Monitoring)
    # ranking: the spine column naming the list an observation was shown in (a request
    # id), the keys of the ranked item (the rest are the query's: the user), the cut-off
    # of the metrics, and the feature whose order is the popularity baseline
    group: str | None = None
    item: str | tuple[str, ...] | None = None
    top_k: int = 10
    popularity: str | None = None
    # ranking, position-aware: the spine columns holding each impression's 1-based
    # position in its list and the logging policy's probability of having put the item
    # there (its propensity; logged by the product from /rank's answer), and the share of
    # /rank's lists shuffled uniformly so that other orders can be evaluated from the logs
    position: str | None = None
    propensity: str | None = None
    exploration: float = 0.0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise FeatureRepoError(f"Problem name {self.name!r} must be lower_snake_case.")
        if isinstance(self.entity, list | tuple):
            names = tuple(self.entity)
            if not names or not all(isinstance(k, str) and k for k in names):
                raise FeatureRepoError(
                    f"Problem {self.name!r}: entity= is a join key name or a tuple of them; "
                    f"got {self.entity!r}."
                )
            object.__setattr__(self, "entity", names[0] if len(names) == 1 else names)
        try:
            kind = task_of(self.task)
        except FeatureRepoError as exc:
            raise FeatureRepoError(f"Problem {self.name!r}: {exc}") from None
        object.__setattr__(self, "task", kind.name)
        self._check_label_and_spine(kind)
        if self.metric not in kind.metrics:
            raise FeatureRepoError(
                f"The 'metric' of {kind.name} problem {self.name!r} must be one of "
                f"{list(kind.metrics)}. Got {self.metric!r} instead."
            )
        unknown = [c for c in self.candidates if c not in kind.candidates]
        if unknown:
            raise FeatureRepoError(
                f"Problem {self.name!r}: unknown candidate(s) {unknown}; choose from "
                f"{list(kind.candidates)}."
            )
        if not isinstance(self.min_split_times, int) or self.min_split_times < 1:
            raise FeatureRepoError(
                f"Problem {self.name!r}: min_split_times must be an integer >= 1."
            )
        if not isinstance(self.min_positives, int) or self.min_positives < 1:
            raise FeatureRepoError(f"Problem {self.name!r}: min_positives must be an integer >= 1.")
        if not isinstance(self.tuning_budget, int) or self.tuning_budget < 1:
            raise FeatureRepoError(f"Problem {self.name!r}: tuning_budget must be an integer >= 1.")
        needs_events = (
            not isinstance(self.label, LabelTable) and getattr(self.label, "source", None) is None
        ) or (self.spine is not None and getattr(self.spine, "source", None) is None)
        if self.events is None and needs_events:
            raise FeatureRepoError(
                f"Problem {self.name!r}: its label or spine reads the event log: declare "
                "events=<the FileSource of the log> (or give them a source= of their own)."
            )
        if self.events is not None and not getattr(self.events, "path", None):
            raise FeatureRepoError(
                f"Problem {self.name!r}: 'events' must be a FileSource over the event log; "
                f"got {type(self.events).__name__}."
            )
        if isinstance(self.item, list | tuple):
            object.__setattr__(self, "item", tuple(self.item))
        kind.check(self)

    def _check_label_and_spine(self, kind: Task) -> None:
        if type(self.label).__name__ not in kind.label_types:
            wanted = " or ".join(f"{name}(...)" for name in kind.label_types)
            raise FeatureRepoError(
                f"Problem {self.name!r} is {kind.noun}: its label must be {wanted}; got "
                f"{type(self.label).__name__}."
            )
        if isinstance(self.label, LabelTable):
            if self.spine is not None:
                raise FeatureRepoError(
                    f"Problem {self.name!r}: a LabelTable's rows are the observations; "
                    "remove spine= (a label table needs no spine)."
                )
            return
        allowed = kind.spine_types or ("Cutoffs", "WeeklyCutoffs", "EventSpine", "TableSpine")
        if self.spine is None:
            raise FeatureRepoError(
                f"Problem {self.name!r} needs a spine: Cutoffs(...), EventSpine(...) or "
                "TableSpine(...) (or a LabelTable label, whose rows are the observations)."
            )
        if type(self.spine).__name__ not in allowed:
            wanted = " or ".join(f"{name}(...)" for name in allowed)
            raise FeatureRepoError(
                f"Problem {self.name!r} is {kind.noun}: its spine must be {wanted}; got "
                f"{self.spine!r}."
            )

    @property
    def kind(self) -> Task:
        """The task kind: what differs between binary, multiclass, regression, forecast
        and ranking problems (``framework.tasks``)."""
        return task_of(self.task)

    @property
    def item_keys(self) -> tuple[str, ...]:
        """A ranking's item keys (the candidates'); empty for another task."""
        if not self.item:
            return ()
        return (self.item,) if isinstance(self.item, str) else tuple(self.item)

    @property
    def query_keys(self) -> tuple[str, ...]:
        """A ranking's query keys: the problem's keys that are not the item's (the user)."""
        return tuple(k for k in self.keys if k not in self.item_keys)

    @property
    def models(self) -> tuple[str, ...]:
        """The candidates to compare (all of the task's when none are declared); baseline first."""
        chosen = self.candidates or self.kind.default_candidates(self)
        return ("baseline", *[c for c in chosen if c != "baseline"])

    @property
    def keys(self) -> tuple[str, ...]:
        """The join keys, in order (set from the feature service when the repo loads the
        problem): one name, or several for a composite key (a user x product pair)."""
        if not self.entity:
            raise FeatureRepoError(
                f"Problem {self.name!r} has no entity key yet; load it through FeatureRepo "
                "(which takes its feature service's join keys) or declare entity=..."
            )
        return (self.entity,) if isinstance(self.entity, str) else tuple(self.entity)

    @property
    def key(self) -> str:
        """The join key of a single-key problem (a composite one: see ``keys``)."""
        keys = self.keys
        if len(keys) != 1:
            raise FeatureRepoError(
                f"Problem {self.name!r} has the composite key {list(keys)}; use .keys."
            )
        return keys[0]

    @property
    def horizon(self) -> timedelta:
        """How far after t the label looks (or, for a label table, can become known)."""
        horizon: timedelta = self.label.horizon
        return horizon

    @property
    def horizon_us(self) -> int:
        return _us(self.horizon)

    @property
    def horizon_days(self) -> float:
        return self.horizon.total_seconds() / 86_400

    @property
    def higher_is_better(self) -> bool:
        return not self.kind.lower_is_better(self.metric)

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
            "entity": self.entity if isinstance(self.entity, str) else list(self.keys),
            "events": str(self.events.path) if self.events is not None else "",
            "label": self.label.to_dict(),
            "label_description": self.label.describe(),
            "spine": self.spine.to_dict() if self.spine is not None else None,
            "feature_service": self.feature_service,
            "metric": self.metric,
            "success_threshold": self.success_threshold,
            "models": list(self.models),
            "tuning_budget": self.tuning_budget,
            "categories": {k: list(v) for k, v in self.categories.items()},
            "description": self.description,
            **self.kind.spec(self),
        }
