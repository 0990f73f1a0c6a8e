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
(``EventSpine``) and it is judged per list (NDCG, MAP, CTR at ``top_k``).

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

from framework.declare.expressions import filter_to_sql
from framework.errors import FeatureRepoError

__all__ = [
    "CLASSIFICATION_METRICS",
    "FORECAST_METRICS",
    "MULTICLASS_METRICS",
    "NUMERIC_TASKS",
    "RANKING_METRICS",
    "REGRESSION_METRICS",
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

CLASSIFICATION_METRICS = ("pr_auc", "roc_auc", "f1", "precision", "recall")
MULTICLASS_METRICS = ("macro_f1", "log_loss", "accuracy")
REGRESSION_METRICS = ("mae", "rmse", "r2")
FORECAST_METRICS = ("mae", "rmse", "mase")
# at the problem's top_k, over each list (request): NDCG, mean average precision and the
# offline click-through rate of the top k (positives among them / k)
RANKING_METRICS = ("ndcg", "map", "ctr")
METRICS = {
    "binary": CLASSIFICATION_METRICS,
    "multiclass": MULTICLASS_METRICS,
    "regression": REGRESSION_METRICS,
    "forecast": FORECAST_METRICS,
    "ranking": RANKING_METRICS,
}
LOWER_IS_BETTER = ("mae", "rmse", "log_loss", "mase")
CANDIDATES = {
    "binary": ("baseline", "lightgbm", "logistic_regression", "random_forest"),
    "multiclass": ("baseline", "lightgbm", "logistic_regression", "random_forest"),
    "regression": ("baseline", "lightgbm", "ridge", "random_forest"),
    # the baseline of a forecast is seasonal naive: the same weekday a week (or more) before
    "forecast": ("baseline", "lightgbm", "ridge"),
    # the baseline of a ranking orders by its popularity feature; lightgbm is LambdaRank
    # (listwise, by request), logistic_regression a pointwise classifier of the label
    "ranking": ("baseline", "lightgbm", "logistic_regression"),
}
NUMERIC_TASKS = ("regression", "forecast")  # a number is predicted (not a class)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def span(value: Any, what: str, *, zero: bool = False) -> timedelta:
    """A duration declared as a ``timedelta`` (whole seconds) or a whole number of days."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds == int(seconds) and (seconds > 0 or (zero and seconds == 0)):
            return value
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (value > 0 or (zero and value == 0))
    ):
        return timedelta(days=value)
    bound = ">= 0" if zero else "> 0"
    raise FeatureRepoError(
        f"{what} is a timedelta of whole seconds or a whole number of days {bound}; got {value!r}."
    )


def _us(value: timedelta) -> int:
    return int(value.total_seconds()) * 1_000_000


@dataclass(frozen=True, kw_only=True)
class _EventLabel:
    """A label computed from the events of a source in (t, t + horizon] matching ``where``.

    ``horizon`` is a timedelta or whole days (``horizon_days=`` is the older spelling);
    ``source`` is an event source (a FileSource), by default the problem's ``events``.
    """

    horizon: Any = None
    where: str | None = None
    source: Any = None
    horizon_days: int | None = None
    kind = "event"

    def __post_init__(self) -> None:
        if (self.horizon is None) == (self.horizon_days is None):
            raise FeatureRepoError(
                f"{type(self).__name__} needs a horizon: horizon=timedelta(hours=1) or "
                "horizon_days=30 (labels cover (t, t + horizon])."
            )
        value = self.horizon if self.horizon is not None else self.horizon_days
        object.__setattr__(self, "horizon", span(value, "A label horizon"))
        object.__setattr__(self, "horizon_days", None)
        if self.where:
            filter_to_sql(self.where)
        if self.source is not None and not getattr(self.source, "path", None):
            raise FeatureRepoError(
                f"{type(self).__name__}(source=...) must be a FileSource over an event log."
            )

    def _matching(self) -> str:
        what = f"event matching {self.where!r}" if self.where else "event"
        src = f" of {self.source.name}" if self.source is not None else ""
        return what + src

    def window(self) -> str:
        return f"(t, t + {_describe(self.horizon)}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "horizon_seconds": int(self.horizon.total_seconds()),
            "where": self.where,
            "source": getattr(self.source, "name", None),
            **{k: getattr(self, k) for k in ("column",) if hasattr(self, k)},
        }


def _describe(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class NoEvents(_EventLabel):
    """Binary label: 1 when the entity has no matching event in (t, t + horizon]."""

    task = "binary"

    def describe(self) -> str:
        return f"1 when no {self._matching()} in {self.window()}"


@dataclass(frozen=True)
class AnyEvent(_EventLabel):
    """Binary label: 1 when the entity has at least one matching event in (t, t + horizon]."""

    task = "binary"

    def describe(self) -> str:
        return f"1 when at least one {self._matching()} in {self.window()}"


@dataclass(frozen=True)
class Count(_EventLabel):
    """Regression label: the number of matching events in (t, t + horizon]."""

    task = "regression"

    def describe(self) -> str:
        return f"number of {self._matching()}s in {self.window()}"


@dataclass(frozen=True)
class Sum(_EventLabel):
    """Regression label: the sum of ``column`` over matching events in (t, t + horizon]
    (0 when there is none)."""

    column: str
    task = "regression"

    def __post_init__(self) -> None:
        if not self.column:
            raise FeatureRepoError("Sum(column, ...) needs the column to add up.")
        super().__post_init__()

    def describe(self) -> str:
        cond = f" where {self.where}" if self.where else ""
        return f"sum of {self.column}{cond} in {self.window()}"


@dataclass(frozen=True)
class Mean(_EventLabel):
    """Regression label: the mean of ``column`` over matching events in (t, t + horizon];
    an observation without such an event has no label and is left out."""

    column: str
    task = "regression"

    def __post_init__(self) -> None:
        if not self.column:
            raise FeatureRepoError("Mean(column, ...) needs the column to average.")
        super().__post_init__()

    def describe(self) -> str:
        cond = f" where {self.where}" if self.where else ""
        return f"mean of {self.column}{cond} in {self.window()} (rows without one left out)"


@dataclass(frozen=True)
class DailyTotal(_EventLabel):
    """Forecast label: for each day d = day(t) + h, h = 1 .. horizon (whole days, UTC),
    the number of matching events on d, or the sum of ``column`` over them (0 when there
    is none). One observation per (entity, t, h); a target day is kept once the data
    covers it, so long horizons need no year of data after the last origin. Calendar
    features of d use the public holidays of ``country``."""

    column: str | None = None
    country: str = "US"
    task = "forecast"

    def __post_init__(self) -> None:
        super().__post_init__()
        days = self.horizon.total_seconds() / 86_400
        if days != int(days) or not 1 <= days <= 3_660:
            raise FeatureRepoError(
                f"DailyTotal forecasts whole days: its horizon must be 1 to 3660 days; got "
                f"{_describe(self.horizon)}."
            )

    @property
    def days(self) -> int:
        return int(self.horizon.total_seconds() // 86_400)

    def describe(self) -> str:
        what = f"sum of {self.column}" if self.column else f"number of {self._matching()}s"
        return f"{what} per day (UTC), for each of the {self.days} days after t"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "column": self.column, "country": self.country}


@dataclass(frozen=True)
class LabelTable:
    """Labels taken as given from a table: each row (keys, timestamp, ``column``) is one
    observation, with features as of its timestamp.

    ``horizon`` is how long after the row's timestamp its label can be known (a
    chargeback 60 days after a payment): the time split purges that much between
    training and evaluation rows, so no training label comes from their future.
    """

    source: Any
    column: str
    horizon: Any = 0
    kind = "table"
    task = "any"

    def __post_init__(self) -> None:
        if not getattr(self.source, "path", None):
            raise FeatureRepoError("LabelTable(source=...) must be a FileSource over a table.")
        if not self.column:
            raise FeatureRepoError("LabelTable(column=...) names the label column.")
        object.__setattr__(self, "horizon", span(self.horizon, "A label horizon", zero=True))

    def describe(self) -> str:
        return f"{self.column} of {self.source.name} (a label table)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "LabelTable",
            "source": self.source.name,
            "column": self.column,
            "horizon_seconds": int(self.horizon.total_seconds()),
        }


@dataclass(frozen=True)
class Cutoffs:
    """Observation spine: every ``every`` (a timedelta or days), the entities with an
    event in (t - active_within, t]. Cutoffs start ``warmup`` after the first event
    (so features have history), aligned to the period (midnight for a day or more),
    and stop where the label horizon leaves the data."""

    every: Any = 7
    active_within: Any = 90
    warmup: Any = 90

    def __post_init__(self) -> None:
        object.__setattr__(self, "every", span(self.every, "Cutoffs.every"))
        object.__setattr__(self, "active_within", span(self.active_within, "Cutoffs.active_within"))
        object.__setattr__(self, "warmup", span(self.warmup, "Cutoffs.warmup", zero=True))

    @property
    def every_us(self) -> int:
        return _us(self.every)

    @property
    def active_us(self) -> int:
        return _us(self.active_within)

    @property
    def warmup_us(self) -> int:
        return _us(self.warmup)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "every_seconds": self.every_us // 1_000_000,
            "active_within_seconds": self.active_us // 1_000_000,
            "warmup_seconds": self.warmup_us // 1_000_000,
        }


@dataclass(frozen=True)
class WeeklyCutoffs:
    """``Cutoffs`` in whole days (the older spelling): every ``every_days`` days, the
    entities with an event in the last ``active_within_days`` days, after
    ``warmup_days`` of warm-up."""

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

    @property
    def every_us(self) -> int:
        return self.every_days * 86_400_000_000

    @property
    def active_us(self) -> int:
        return self.active_within_days * 86_400_000_000

    @property
    def warmup_us(self) -> int:
        return self.warmup_days * 86_400_000_000

    def to_dict(self) -> dict[str, Any]:
        return {"type": "WeeklyCutoffs", **self.__dict__}


@dataclass(frozen=True)
class EventSpine:
    """Observation spine: each event of ``source`` (default: the problem's events) that
    matches ``where`` is one observation. Its features are read as of just before the
    event (its time minus 1 microsecond), as a request made before the event is logged
    would see them; its label looks forward from the event's time, (t_event, t_event + H]."""

    where: str | None = None
    source: Any = None

    def __post_init__(self) -> None:
        if self.where:
            filter_to_sql(self.where)
        if self.source is not None and not getattr(self.source, "path", None):
            raise FeatureRepoError("EventSpine(source=...) must be a FileSource over an event log.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "EventSpine",
            "where": self.where,
            "source": getattr(self.source, "name", None),
        }


@dataclass(frozen=True)
class TableSpine:
    """Observation spine: the rows of a table (the problem's keys and a timestamp), e.g.
    the moments a product asks for a prediction."""

    source: Any

    def __post_init__(self) -> None:
        if not getattr(self.source, "path", None):
            raise FeatureRepoError("TableSpine(source=...) must be a FileSource over a table.")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "TableSpine", "source": self.source.name}


Label = NoEvents | AnyEvent | Count | Sum | Mean | LabelTable
Spine = Cutoffs | WeeklyCutoffs | EventSpine | TableSpine
LABELS_BY_TASK = {
    "binary": (NoEvents, AnyEvent, LabelTable),
    "multiclass": (LabelTable,),
    "regression": (Count, Sum, Mean, LabelTable),
    "forecast": (DailyTotal,),
    "ranking": (AnyEvent, Count, LabelTable),
}


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
    count_calendar: bool = False  # date expansions count toward drift (off: reported only)

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
    events: Any  # a Feast FileSource: the default source of event labels and spines
    label: Label
    spine: Spine | None  # None with a LabelTable: its rows are the observations
    feature_service: str
    metric: str
    success_threshold: float
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
        if self.task not in CANDIDATES:
            raise FeatureRepoError(
                f"The 'task' of problem {self.name!r} must be 'binary', 'multiclass', "
                f"'regression', 'forecast' or 'ranking'. Got {self.task!r} instead."
            )
        allowed = LABELS_BY_TASK[self.task]
        if not isinstance(self.label, allowed):
            wanted = " or ".join(f"{c.__name__}(...)" for c in allowed)
            raise FeatureRepoError(
                f"Problem {self.name!r} is {'a regression' if self.task == 'regression' else self.task}: "
                f"its label must be {wanted}; got {type(self.label).__name__}."
            )
        if isinstance(self.label, LabelTable):
            if self.spine is not None:
                raise FeatureRepoError(
                    f"Problem {self.name!r}: a LabelTable's rows are the observations; "
                    "leave spine=None."
                )
        elif self.task == "forecast" and not isinstance(self.spine, Cutoffs | WeeklyCutoffs):
            raise FeatureRepoError(
                f"Problem {self.name!r} is a forecast: its observations are forecast origins, "
                f"so its spine must be Cutoffs(...); got {type(self.spine).__name__}."
            )
        elif self.task == "ranking" and not isinstance(self.spine, EventSpine | TableSpine):
            raise FeatureRepoError(
                f"Problem {self.name!r} is a ranking: its observations are the items shown in "
                "each list (one impression each), so its spine must be EventSpine(where=...) or "
                f"TableSpine(...); got {type(self.spine).__name__}."
            )
        elif not isinstance(self.spine, Cutoffs | WeeklyCutoffs | EventSpine | TableSpine):
            raise FeatureRepoError(
                f"Problem {self.name!r} needs a spine: Cutoffs(...), EventSpine(...) or "
                f"TableSpine(...); got {self.spine!r}."
            )
        metrics = METRICS[self.task]
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
        if not isinstance(self.min_split_times, int) or self.min_split_times < 1:
            raise FeatureRepoError(
                f"Problem {self.name!r}: min_split_times must be an integer >= 1."
            )
        if not isinstance(self.min_positives, int) or self.min_positives < 1:
            raise FeatureRepoError(f"Problem {self.name!r}: min_positives must be an integer >= 1.")
        if not isinstance(self.tuning_budget, int) or self.tuning_budget < 1:
            raise FeatureRepoError(f"Problem {self.name!r}: tuning_budget must be an integer >= 1.")
        if not getattr(self.events, "path", None):
            raise FeatureRepoError(
                f"Problem {self.name!r}: 'events' must be a FileSource over the event log."
            )
        if isinstance(self.item, list | tuple):
            object.__setattr__(self, "item", tuple(self.item))
        if self.task == "ranking":
            self._check_ranking()
        elif self.group or self.item or self.popularity:
            raise FeatureRepoError(
                f"Problem {self.name!r}: group=, item= and popularity= belong to a ranking "
                "(task='ranking')."
            )

    def _check_ranking(self) -> None:
        example = "group='list_id', item='item_id', popularity='item_clicks_count_28d'"
        for name in ("group", "item", "popularity"):
            value = getattr(self, name)
            if not value or not isinstance(value, str | tuple):
                raise FeatureRepoError(
                    f"Problem {self.name!r} is a ranking and needs {name}=...: the spine column "
                    "naming each list (group), the keys of the ranked item (item) and the "
                    f"feature whose order is the popularity baseline (popularity); e.g. {example}."
                )
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 1:
            raise FeatureRepoError(f"Problem {self.name!r}: top_k must be an integer >= 1.")
        if self.entity is not None:
            missing = [k for k in self.item_keys if k not in self.keys]
            if missing or len(self.item_keys) >= len(self.keys):
                raise FeatureRepoError(
                    f"Problem {self.name!r}: item={list(self.item_keys)} must be some, not all, "
                    f"of the keys {list(self.keys)} (the others are the query's: the user)."
                )

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
        chosen = self.candidates or CANDIDATES[self.task]
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
            "entity": self.entity if isinstance(self.entity, str) else list(self.keys),
            "events": str(self.events.path),
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
            **(
                {
                    "group": self.group,
                    "item": list(self.item_keys),
                    "top_k": self.top_k,
                    "popularity": self.popularity,
                }
                if self.task == "ranking"
                else {}
            ),
        }
