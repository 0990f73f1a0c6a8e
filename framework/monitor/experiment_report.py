"""Deploy: the report of an A/B experiment (declared with ``framework.Experiment``).

``report(experiment, exposures, events)`` counts, per arm, the exposed units
(the experiment's unit of assignment) and those with an outcome event in
(first exposure, first exposure + window]. For the conversion rate
(conversions / exposures) it gives the absolute lift with a 95% Wald interval,
the relative lift with the Katz interval of the rate ratio
(``scipy.stats.contingency.relative_risk``) and the pooled two-proportion
z-test; for a value metric (the mean per unit of ``value`` summed over its
outcomes, 0 without one: revenue per user) the difference of means with
Welch's t-test and its 95% interval (``scipy.stats.ttest_ind``); for a ratio
metric (``per=``: outcomes per exposure event, a click-through rate) the
difference of the two ratios with its delta-method standard error over units
(``ratio_test``: a user's impressions are clustered, not independent). All keep
a chi-square sample-ratio-mismatch test against the declared split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from framework.declare.experiments import ARMS, Experiment
from framework.declare.expressions import filter_to_sql
from framework.errors import DataError
from framework.monitor.experiment_stats import (
    TwoProportionTest,
    ratio_test,
    srm_p_value,
    two_proportion_test,
    welch_test,
)

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

    from framework.declare.repo import FeatureRepo

__all__ = [
    "ExperimentReport",
    "experiment_report",
    "ratio_test",
    "report",
    "srm_p_value",
    "two_proportion_test",
    "welch_test",
]

ALPHA = 0.05  # significance level of the verdict
SRM_ALPHA = 0.001  # a sample-ratio mismatch below this invalidates the experiment
MIN_EXPOSURES = 100  # per arm, before a verdict is given


@dataclass(frozen=True)
class ExperimentReport:
    """What ``lifecycle experiment report`` prints (``to_json`` gives the --json keys)."""

    experiment: str
    problem: str
    outcome: str
    window_days: int
    arms: dict[str, dict[str, Any]]
    lift_abs: float | None
    lift_rel: float | None
    ci95: tuple[float, float] | None
    ci95_rel: tuple[float, float] | None
    p_value: float | None
    srm_p_value: float
    verdict: str
    pending: int  # exposures whose outcome window has not ended yet (not counted)
    metric: str = "conversion_rate"  # or mean_<value>: the mean per unit (Welch's t-test)
    unit: list[str] | None = None  # the keys of the unit of assignment
    per: str | None = None  # outcome_ratio: the filter of the events counted below the line

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        if self.metric == "outcome_ratio":
            return self._ratio_text()
        rate = self.metric == "conversion_rate"
        unit = f" per {'+'.join(self.unit)}" if self.unit else ""
        lines = [
            f"Experiment {self.experiment} on {self.problem}: outcome {self.outcome!r} within "
            f"{self.window_days}d of the first exposure{unit}; metric {self.metric}",
            f"  {'arm':<10} {'policy':<11} {'exposures':>10} {'conversions':>12} "
            + (f"{'rate':>8}" if rate else f"{'mean':>12} {'sd':>10}"),
        ]
        for arm, a in self.arms.items():
            tail = (
                f"{_pct(a['rate']):>8}"
                if rate
                else f"{_num(a.get('mean')):>12} {_num(a.get('sd')):>10}"
            )
            lines.append(
                f"  {arm:<10} {a['policy']:<11} {a['exposures']:>10,} {a['conversions']:>12,} "
                + tail
            )
        if not rate and self.lift_abs is not None and self.ci95 is not None:
            lines.append(
                f"  difference of means: {self.lift_abs:+.4g} (95% CI {self.ci95[0]:+.4g} to "
                f"{self.ci95[1]:+.4g})"
            )
        elif self.lift_abs is not None and self.ci95 is not None:
            lines.append(
                f"  lift: {_pct(self.lift_abs, sign=True)} absolute "
                f"(95% CI {_pct(self.ci95[0], sign=True)} to {_pct(self.ci95[1], sign=True)})"
            )
        return self._tail(lines, "two-proportion z-test" if rate else "Welch's t-test", "exposures")

    def _tail(self, lines: list[str], test: str, pending: str) -> str:
        """The relative lift, the test's p-value, the sample-ratio check, what is pending
        and the verdict, after ``lines``."""
        if self.lift_rel is not None:
            rel = f"  lift: {_pct(self.lift_rel, sign=True)} relative"
            if self.ci95_rel is not None:
                rel += f" (95% CI {_pct(self.ci95_rel[0], sign=True)} to {_pct(self.ci95_rel[1], sign=True)})"
            lines.append(rel)
        if self.p_value is not None:
            lines.append(f"  {test} p = {self.p_value:.3g}")
        lines.append(f"  sample ratio check p = {self.srm_p_value:.3g}")
        if self.pending:
            lines.append(
                f"  {self.pending:,} {pending} are still inside their outcome window (not counted)"
            )
        lines.append(f"Verdict: {self.verdict}")
        return "\n".join(lines)

    def _ratio_text(self) -> str:
        unit = "+".join(self.unit or [])
        lines = [
            f"Experiment {self.experiment} on {self.problem}: outcomes {self.outcome!r} per "
            f"event {self.per!r} within {self.window_days}d of a {unit}'s first exposure; "
            "metric outcome_ratio",
            f"  {'arm':<10} {'policy':<11} {unit + 's':>10} {'events':>10} {'outcomes':>10} "
            f"{'ratio':>8}",
        ]
        for arm, a in self.arms.items():
            lines.append(
                f"  {arm:<10} {a['policy']:<11} {a['exposures']:>10,} {a['events']:>10,} "
                f"{a['conversions']:>10,} {_pct(a['rate']):>8}"
            )
        if self.lift_abs is not None and self.ci95 is not None:
            lines.append(
                f"  lift: {_pct(self.lift_abs, sign=True)} absolute (95% CI "
                f"{_pct(self.ci95[0], sign=True)} to {_pct(self.ci95[1], sign=True)}, delta "
                f"method over {unit}s)"
            )
        return self._tail(lines, "z-test (delta method)", f"{unit}s")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _pct(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:{'+' if sign else ''}.2f}%"


def report(
    experiment: Experiment,
    exposures: pd.DataFrame,
    events: pd.DataFrame,
    now: datetime | None = None,
    *,
    key: str | list[str] | tuple[str, ...],
    timestamp_field: str = "event_timestamp",
    kinds: dict[str, str] | None = None,
) -> ExperimentReport:
    """The report of ``experiment`` from its exposures (entity_id, arm, exposed_at) and the
    outcome source's events (the unit's keys, ``timestamp_field``, the columns the outcome
    filter reads and the ``value`` column), both pandas frames.

    ``key`` is the problem's join key(s) (the exposures' entity ids are their entity
    texts, ``framework.common.keys``), ``kinds`` their kinds (default: int). A unit counts
    in the arm of its first exposure; one still inside its outcome window at ``now``
    (default: the current time) is left out as pending.
    """
    import pandas as pd

    from framework.common.keys import entity_frame, entity_texts

    keys = (key,) if isinstance(key, str) else tuple(key)
    unit = experiment.unit_keys(keys)
    ex = exposures.copy()
    if unit != keys:  # the unit is some of the keys: read them out of the entity texts
        frame = entity_frame(ex["entity_id"], kinds or dict.fromkeys(keys, "int"))
        ex["entity_id"] = entity_texts(frame, unit)
    else:
        ex["entity_id"] = ex["entity_id"].astype(str)
    ex = ex.sort_values("exposed_at", kind="stable").drop_duplicates("entity_id")
    window = pd.Timedelta(days=experiment.window_days)
    ends = ex["exposed_at"] + window
    ev = _outcomes(experiment, events, unit, timestamp_field)
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    done = ex[ends <= now]
    pending = len(ex) - len(done)
    joined = done.merge(ev, on="entity_id", how="inner")
    hit = (joined["outcome_at"] > joined["exposed_at"]) & (
        joined["outcome_at"] <= joined["exposed_at"] + window
    )
    converted = set(joined.loc[hit & joined["is_outcome"], "entity_id"])
    totals = joined.loc[hit & joined["is_outcome"]].groupby("entity_id")["value"].sum()
    outcomes = joined.loc[hit & joined["is_outcome"]].groupby("entity_id").size()
    per_events = joined.loc[hit & joined["is_per"]].groupby("entity_id").size()
    arms: dict[str, dict[str, Any]] = {}
    values: dict[str, np.ndarray] = {}
    for arm in ARMS:
        ids = done.loc[done["arm"] == arm, "entity_id"]
        n = len(ids)
        x = int(ids.isin(converted).sum())
        arms[arm] = {
            "policy": experiment.policy(arm),
            "exposures": n,
            "conversions": x,
            "rate": x / n if n else None,
        }
        if experiment.per is not None:
            x_i = outcomes.reindex(ids).fillna(0).to_numpy(dtype="float64")
            y_i = per_events.reindex(ids).fillna(0).to_numpy(dtype="float64")
            values[arm] = np.stack([x_i, y_i])
            arms[arm]["conversions"] = int(x_i.sum())
            arms[arm]["events"] = int(y_i.sum())
            arms[arm]["rate"] = float(x_i.sum() / y_i.sum()) if y_i.sum() else None
        elif experiment.value is not None:
            per_unit = totals.reindex(ids).fillna(0.0).to_numpy(dtype="float64")
            values[arm] = per_unit
            arms[arm]["mean"] = float(per_unit.mean()) if n else None
            arms[arm]["sd"] = float(per_unit.std(ddof=1)) if n > 1 else None
    n_c, n_t = arms["control"]["exposures"], arms["treatment"]["exposures"]
    srm = srm_p_value(n_c, n_t, experiment.split)
    test = None
    if experiment.per is not None:
        if min(n_c, n_t) >= 2 and arms["control"]["events"] and arms["treatment"]["events"]:
            test = ratio_test(*values["control"], *values["treatment"])
    elif experiment.value is None and n_c and n_t:
        test = two_proportion_test(
            arms["control"]["conversions"], n_c, arms["treatment"]["conversions"], n_t
        )
    elif experiment.value is not None and min(n_c, n_t) >= 2:
        test = welch_test(values["control"], values["treatment"])
    return ExperimentReport(
        experiment=experiment.name,
        problem=experiment.problem,
        outcome=experiment.outcome,
        window_days=experiment.window_days,
        arms=arms,
        lift_abs=test.lift_abs if test else None,
        lift_rel=test.lift_rel if test else None,
        ci95=test.ci95 if test else None,
        ci95_rel=test.ci95_rel if test else None,
        p_value=test.p_value if test else None,
        srm_p_value=srm,
        verdict=_verdict(experiment, n_c, n_t, srm, test),
        pending=pending,
        metric=experiment.metric,
        unit=list(unit),
        per=experiment.per,
    )


def _problem_source(repo: FeatureRepo, problem: Any) -> str | None:
    """The event source of the problem's own events, when the repo has several (None: let
    the repo pick its only one)."""
    sources = repo.event_sources
    if len(sources) < 2:
        return None
    path = str(getattr(problem.events, "path", ""))
    return next((n for n, s in sources.items() if str(s.path) == path), None)


def experiment_report(
    repo: FeatureRepo, name: str, *, db: str | None = None, now: datetime | None = None
) -> ExperimentReport:
    """``report`` for the experiment ``name`` of ``repo``: exposures from the prediction log
    at ``db`` (default ``<repo>/data/predictions.db``), outcomes from the event log."""
    from framework.collect.ingest import read_events
    from framework.deploy.prediction_log import read_exposures

    experiment = repo.experiment(name)
    problem = repo.problem(experiment.problem)
    source = repo.event_source(experiment.source or _problem_source(repo, problem))
    exposures = read_exposures(db or repo.prediction_db, experiment.name)
    events = read_events(repo, source=source.name)
    return report(
        experiment,
        exposures,
        events,
        now=now,
        key=problem.keys,
        timestamp_field=source.timestamp_field,
        kinds=repo.key_kinds(problem),
    )


def _outcomes(
    experiment: Experiment, events: pd.DataFrame, unit: tuple[str, ...], timestamp_field: str
) -> pd.DataFrame:
    """The events matching the outcome filter, as (entity_id: the unit's entity text,
    outcome_at, value)."""
    import duckdb

    from framework.common.keys import entity_texts

    value = [experiment.value] if experiment.value else []
    missing = [c for c in (*unit, timestamp_field, *value) if c not in events.columns]
    if missing:
        raise DataError(
            f"Experiment {experiment.name!r}: the outcome events lack column(s) {missing}; "
            f"they have {list(events.columns)}. Name the source with Experiment(source=...)."
        )

    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("ev", events)
        val = f"CAST({q(experiment.value)} AS DOUBLE)" if experiment.value else "1.0"
        keys = ", ".join(f"{q(k)} AS k{j}" for j, k in enumerate(unit))
        outcome = filter_to_sql(experiment.outcome)
        per = filter_to_sql(experiment.per) if experiment.per else "FALSE"
        out = con.execute(
            f"SELECT {keys}, CAST({q(timestamp_field)} AS TIMESTAMPTZ) AS outcome_at, "
            f"COALESCE({val}, 0.0) AS value, COALESCE({outcome}, FALSE) AS is_outcome, "
            f"COALESCE({per}, FALSE) AS is_per FROM ev WHERE ({outcome}) OR ({per})"
        ).df()
    except duckdb.Error as exc:
        raise DataError(
            f"Experiment {experiment.name!r}: the outcome filter {experiment.outcome!r} "
            f"does not apply to the events: {exc}"
        ) from exc
    finally:
        con.close()
    out["entity_id"] = entity_texts(
        out.rename(columns={f"k{j}": k for j, k in enumerate(unit)}), unit
    )
    return out[["entity_id", "outcome_at", "value", "is_outcome", "is_per"]]


def _verdict(
    experiment: Experiment, n_c: int, n_t: int, srm: float, test: TwoProportionTest | None
) -> str:
    if srm < SRM_ALPHA:
        return (
            f"do not trust the result: the arms hold {n_c:,} and {n_t:,} exposures, a sample "
            f"ratio mismatch against the declared {1 - experiment.split:.0%}/{experiment.split:.0%} "
            f"split (p = {srm:.2g}). Check the assignment and the logging."
        )
    if test is None or min(n_c, n_t) < MIN_EXPOSURES:
        return (
            f"not enough data yet: at least {MIN_EXPOSURES} completed exposures per arm are "
            f"needed (control {n_c:,}, treatment {n_t:,})."
        )
    mean = experiment.value is not None
    if experiment.per is not None and test.p_value < ALPHA:
        better = "better" if test.lift_abs > 0 else "worse"
        return (
            f"treatment is {better} than control: {test.rate_treatment:.2%} vs "
            f"{test.rate_control:.2%} outcomes per event (delta-method p = {test.p_value:.2g} "
            f"< {ALPHA})."
        )
    if test.p_value < ALPHA:
        better = "better" if test.lift_abs > 0 else "worse"
        if mean:
            return (
                f"treatment is {better} than control: mean {experiment.value} per unit "
                f"{test.rate_treatment:.4g} vs {test.rate_control:.4g} "
                f"(Welch p = {test.p_value:.2g} < {ALPHA})."
            )
        return (
            f"treatment is {better} than control: {test.rate_treatment:.2%} vs "
            f"{test.rate_control:.2%} (p = {test.p_value:.2g} < {ALPHA})."
        )
    interval = (
        f"{test.ci95[0]:+.4g} to {test.ci95[1]:+.4g}"
        if mean
        else f"{test.ci95[0]:+.2%} to {test.ci95[1]:+.2%}"
    )
    return (
        f"no significant difference (p = {test.p_value:.2g} >= {ALPHA}); the 95% interval of "
        f"the lift ({interval}) includes 0. Keep running or stop."
    )
