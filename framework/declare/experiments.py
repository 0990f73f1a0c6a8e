"""Experiment: A/B tests of model policies, declared in Python, and their report.

Declared in the feature repo (for example ``feature_repo/experiments.py``)::

    retention_offers = Experiment(
        name="retention_offers",
        problem="churn",
        control="none",          # no model: the product does what it did before
        treatment="production",  # act on the production churn model's label
        outcome='event_type == "conversion"',  # a filter: the events that count as success
        window_days=7,           # ... within 7 days of the user's first exposure
    )

An arm's policy is ``"production"`` (the problem's production model at request
time), a model version such as ``"v3"``, or ``"none"`` (no model: the service
answers no score). While an experiment is active, ``POST /predict`` for its
problem assigns each entity an arm with ``assign`` (a deterministic hash of
the experiment's salt and the entity id: the same user always gets the same
arm), answers with that arm's policy, and logs the exposure in the prediction
log. The unit of assignment is ``unit`` (some of the problem's keys, by default
all: by user in a user x product problem). Outcome events arrive through event
logging (``POST /events``): those of the event source ``source`` (default: the
problem's own event source) that match the ``outcome`` filter, keyed by the unit's keys.
The metric is the conversion rate (units with an outcome) or, with
``value="amount"``, the mean per unit of the value summed over its outcomes
(revenue per user), or, with ``per=`` a second filter (the exposures the product
logs itself, say impressions), the ratio of outcomes to those events: the
click-through rate ``outcome='event_type == "click"', per='event_type ==
"impression"'``, with a delta-method interval over units (the events of one
user are not independent).

A ranking problem's arms may also use the policy ``"popularity"``: ``POST /rank``
then orders the candidates by the problem's popularity feature (the baseline),
not by a model.

The report (counts, lift, tests, verdict) is :mod:`framework.deploy.experiment_report`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.declare.expressions import filter_to_sql
from framework.errors import FeatureRepoError

__all__ = ["ARMS", "Experiment", "assign", "check_experiments"]

ARMS = ("control", "treatment")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_POLICY = re.compile(r"^(production|none|popularity|v\d+)$")


@dataclass(frozen=True)
class Experiment:
    """A 2-arm experiment on a problem's predictions (see the module docstring)."""

    name: str
    problem: str
    treatment: str
    outcome: str
    control: str = "production"
    source: str | None = None  # the source of the outcomes (default: the problem's events)
    value: str | None = None  # a column: the metric is its sum per unit (revenue per user)
    per: str | None = None  # a filter: the metric is outcomes per such event (clicks/impressions)
    unit: str | tuple[str, ...] | None = None  # the unit of assignment (default: the keys)
    window_days: int = 7
    split: float = 0.5  # share of entities in the treatment arm
    salt: str | None = None  # default: the name; change it to re-randomize
    active: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise FeatureRepoError(
                f"Experiment name {self.name!r} must be lower_snake_case (a-z, 0-9, _)."
            )
        for arm in ARMS:
            policy = getattr(self, arm)
            if not isinstance(policy, str) or not _POLICY.match(policy):
                raise FeatureRepoError(
                    f"Experiment {self.name!r}: {arm}={policy!r} must be 'production', "
                    "'none' (no model), 'popularity' (a ranking's baseline order) or a model "
                    "version such as 'v3'."
                )
        if self.control == self.treatment:
            raise FeatureRepoError(
                f"Experiment {self.name!r}: control and treatment are both {self.control!r}; "
                "the arms must differ."
            )
        if not isinstance(self.split, float | int) or not 0 < self.split < 1:
            raise FeatureRepoError(
                f"Experiment {self.name!r}: split={self.split!r} must be a share in (0, 1)."
            )
        if not isinstance(self.window_days, int) or self.window_days <= 0:
            raise FeatureRepoError(
                f"Experiment {self.name!r}: window_days={self.window_days!r} must be a whole "
                "number of days > 0."
            )
        if not isinstance(self.outcome, str) or not self.outcome:
            raise FeatureRepoError(
                f"Experiment {self.name!r}: outcome is a filter over the events, e.g. "
                "'event_type == \"conversion\"'."
            )
        filter_to_sql(self.outcome)  # fail at declaration time on a bad filter
        if self.value is not None and (not isinstance(self.value, str) or not self.value):
            raise FeatureRepoError(
                f"Experiment {self.name!r}: value= names the column to sum per unit "
                "(e.g. value='amount' for revenue per user)."
            )
        if self.per is not None:
            if not isinstance(self.per, str) or not self.per:
                raise FeatureRepoError(
                    f"Experiment {self.name!r}: per= is a filter over the events, e.g. "
                    "'event_type == \"impression\"' (the metric is then outcomes per such event)."
                )
            if self.value is not None:
                raise FeatureRepoError(
                    f"Experiment {self.name!r}: choose value= (a mean per unit) or per= (a "
                    "ratio of events), not both."
                )
            filter_to_sql(self.per)
        if isinstance(self.unit, list | tuple):
            object.__setattr__(self, "unit", tuple(self.unit))

    def unit_keys(self, problem_keys: tuple[str, ...]) -> tuple[str, ...]:
        """The keys of the unit of assignment: ``unit``, or the problem's keys."""
        if self.unit is None:
            return problem_keys
        unit = (self.unit,) if isinstance(self.unit, str) else tuple(self.unit)
        missing = [k for k in unit if k not in problem_keys]
        if missing or not unit:
            raise FeatureRepoError(
                f"Experiment {self.name!r}: unit {list(unit)} must be some of the problem's "
                f"keys {list(problem_keys)}; {missing} are not."
            )
        return unit

    @property
    def metric(self) -> str:
        """``conversion_rate`` (units with an outcome), ``mean_<value>`` per unit, or
        ``outcome_ratio`` (outcomes per ``per`` event: a click-through rate)."""
        if self.per is not None:
            return "outcome_ratio"
        return "conversion_rate" if self.value is None else f"mean_{self.value}"

    @property
    def salt_text(self) -> str:
        return self.salt or self.name

    def arm_of(self, entity_id: Any) -> str:
        return assign(self.salt_text, [entity_id], self.split)[0]

    def policy(self, arm: str) -> str:
        return getattr(self, arm)


def assign(salt: str, entity_ids: list[Any] | np.ndarray, split: float = 0.5) -> list[str]:
    """The arm of each unit: ``treatment`` when the first 8 bytes of sha256(salt:id),
    read as a fraction of 2**64, fall below ``split``. An id is the unit's entity text
    (``framework.common.keys.entity_text``: an integer key's decimal digits, a text key
    as is, a composite key's JSON array)."""
    out = []
    bound = int(split * 2**64)
    prefix = f"{salt}:".encode()
    for entity_id in entity_ids:
        text = str(int(entity_id)) if isinstance(entity_id, int | np.integer) else str(entity_id)
        digest = hashlib.sha256(prefix + text.encode()).digest()
        out.append(ARMS[1] if int.from_bytes(digest[:8], "big") < bound else ARMS[0])
    return out


def check_experiments(experiments: dict[str, Experiment], problems: dict[str, Any]) -> None:
    """Refuse experiments that do not fit the repo's problems: an unknown problem, a unit
    not of its keys, the popularity policy outside a ranking, a ranking's experiment that
    assigns items rather than its query's keys, two active on one problem."""
    active: dict[str, str] = {}
    for exp in experiments.values():
        if exp.problem not in problems:
            raise FeatureRepoError(
                f"Experiment {exp.name!r} names unknown problem {exp.problem!r}; the repo "
                f"declares {sorted(problems)}."
            )
        problem = problems[exp.problem]
        unit = exp.unit_keys(problem.keys)  # refuses a unit not of its keys
        ranks = problem.kind.route == "rank"
        if "popularity" in (exp.control, exp.treatment) and not ranks:
            raise FeatureRepoError(
                f"Experiment {exp.name!r}: the policy 'popularity' orders a ranking's "
                f"candidates; {exp.problem!r} is a {problem.task} problem."
            )
        if ranks and any(k not in problem.query_keys for k in unit):
            raise FeatureRepoError(
                f"Experiment {exp.name!r} on ranking {exp.problem!r} assigns users, not "
                f"lists of items: declare unit={problem.query_keys[0]!r} (the query's keys "
                f"{list(problem.query_keys)})."
            )
        if exp.active:
            if exp.problem in active:
                raise FeatureRepoError(
                    f"Experiments {active[exp.problem]!r} and {exp.name!r} are both active "
                    f"on {exp.problem!r}; set active=False on one of them."
                )
            active[exp.problem] = exp.name
