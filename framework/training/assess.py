"""Do we have enough data? Answered before training, from the training set itself.

- ``describe_data(ts, problem)`` -> ``DataFacts``: observations, entities and time
  span against the label horizon and the spine's warm-up; the time split each part
  would get; the label's balance (positives and base rate, class counts) or its
  distribution; the missing rate and coverage of every feature. Too short a span
  or too few positives (``Problem.min_positives`` in validation and in test) is
  refused with the numbers, before anything is fitted.
- ``learning_curve(split, ts, problem, model, params)`` -> ``LearningCurve``: the
  problem's metric on the validation split when one configuration is trained on
  the last 1/8, 1/4, 1/2 and all of the training period, the baseline on the same
  validation rows, the gain per doubling against the noise of the metric (a
  bootstrap of the validation rows), and a plain verdict.
- ``assess(repo, name)`` -> ``Assessment``: both, for ``lifecycle assess``; the
  configuration is the latest registered winner's (its tuned parameters), or the
  first declared candidate's defaults before any model exists. ``lifecycle train``
  runs ``describe_data`` first and puts the curve of its own winner in the card.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from framework.common.jsonable import finite
from framework.declare.problems import Problem
from framework.declare.repo import FeatureRepo
from framework.tasks.base import PARTS
from framework.tasks.splitters import Split
from framework.training.assess_report import curve_text, facts_text, share
from framework.training.candidates import (
    evaluation_context,
    fit_configuration,
    model_inputs,
    split_problem,
)
from framework.training.dataset import LABEL, TIMESTAMP, TrainingSet

__all__ = [
    "FRACTIONS",
    "Assessment",
    "DataFacts",
    "LearningCurve",
    "assess",
    "describe_data",
    "learning_curve",
    "share",
]

Progress = Callable[[str], None]
FRACTIONS = (0.125, 0.25, 0.5, 1.0)


BOOTSTRAP = 30
SPARSE = 0.05  # a feature present (non-missing, non-zero where zero means "no events") in
# fewer rows than this share is reported as sparse


@dataclass(frozen=True)
class DataFacts:
    """What a training set holds, before anything is fitted."""

    observations: dict[str, Any]
    split: dict[str, Any]
    label: dict[str, Any]
    features: list[dict[str, Any]]
    warnings: list[str]


@dataclass(frozen=True)
class LearningCurve:
    """The problem's metric on validation against the share of the training period used."""

    model: str
    params: dict[str, Any]
    configuration: str  # where the configuration came from, in words
    metric: str
    higher_is_better: bool
    points: list[dict[str, Any]]  # fraction, times, rows, value
    baseline: float
    noise: float  # bootstrap standard deviation of the full-data value
    per_doubling: float  # mean gain (in the better direction) over the last two doublings
    per_doubling_noise: float  # its bootstrap standard deviation (paired: same rows resampled)
    verdict: str
    gain_over_baseline: float  # with all of the training period
    expected_gain_doubled: float  # extrapolated to twice the training period


@dataclass(frozen=True)
class Assessment:
    problem: str
    task: str
    facts: DataFacts
    curve: LearningCurve | None

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data (NaN as null)."""
        return finite(
            {
                "problem": self.problem,
                "task": self.task,
                **asdict(self.facts),
                "learning_curve": asdict(self.curve) if self.curve else None,
            }
        )

    def to_text(self) -> str:

        return facts_text(self.problem, self.facts) + (
            "\n" + curve_text(self.curve) if self.curve else ""
        )


def describe_data(ts: TrainingSet, problem: Problem) -> DataFacts:
    """The facts of ``ts``; raises DataError when the span or the positives are too few."""
    frame = ts.frame.sort_values(TIMESTAMP, kind="stable")
    split = split_problem(frame, problem)
    parts = {k: getattr(split, k)[LABEL] for k in PARTS}
    label = problem.kind.label_facts(frame[LABEL], parts)
    problem.kind.check_label_facts(problem, label)
    features = _feature_facts(frame, ts)
    return DataFacts(
        observations=_observations(frame, ts, problem),
        split={"parts": split.ranges(), "purged": split.purged},
        label=label,
        features=features,
        warnings=_warnings(features, label, problem),
    )


def _observations(frame: pd.DataFrame, ts: TrainingSet, problem: Problem) -> dict[str, Any]:
    times = frame[TIMESTAMP]
    span = (times.max() - times.min()).total_seconds() / 86_400
    warmup = getattr(problem.spine, "warmup_us", None)
    return {
        "rows": len(frame),
        "entities": ts.entities,
        "observation_times": int(times.nunique()),
        "first": times.min().isoformat(),
        "last": times.max().isoformat(),
        "span_days": round(span, 3),
        "horizon_days": round(problem.horizon_days, 4),
        "span_in_horizons": round(span / problem.horizon_days, 2) if problem.horizon_days else None,
        "warmup_days": round(warmup / 86_400e6, 3) if warmup else None,
        "features": len(ts.features),
    }


def _feature_facts(frame: pd.DataFrame, ts: TrainingSet) -> list[dict[str, Any]]:
    zero_fill = set(ts.spec.get("zero_fill", []))
    out = []
    n = max(len(frame), 1)
    for name in ts.features:
        column = frame[name]
        missing = column.isna()
        present = ~missing
        if name in zero_fill:  # a zero here says "no events in the window"
            present &= column.fillna(0) != 0
        out.append(
            {
                "feature": name,
                "dtype": str(column.dtype),
                "missing": float(missing.sum() / n),
                "coverage": float(present.sum() / n),
                "distinct": int(column.nunique(dropna=True)),
            }
        )
    return out


def _warnings(features: list[dict], label: dict[str, Any], problem: Problem) -> list[str]:
    out = []
    constant = [f["feature"] for f in features if f["distinct"] <= 1]
    sparse = [f["feature"] for f in features if f["distinct"] > 1 and f["coverage"] < SPARSE]
    if constant:
        out.append(f"{len(constant)} constant feature(s), no signal: {', '.join(constant[:8])}")
    if sparse:
        out.append(
            f"{len(sparse)} feature(s) present in fewer than {SPARSE:.0%} of rows: "
            + ", ".join(sparse[:8])
        )
    return out + problem.kind.label_warnings(label)


def learning_curve(
    split: Split,
    ts: TrainingSet,
    problem: Problem,
    model: str,
    params: dict[str, Any] | None = None,
    *,
    configuration: str = "",
    progress: Progress | None = None,
    seed: int = 0,
) -> LearningCurve:
    """``model`` with ``params`` trained on the last 1/8 .. all of the training period."""
    say = progress or (lambda _m: None)
    xs, ys, classes = model_inputs(split, ts, problem)
    k = len(classes) if classes is not None else 2
    context = evaluation_context(problem, xs, ys, "validation")
    times = split.train[TIMESTAMP].to_numpy()
    distinct = np.unique(times)
    metric = problem.metric
    sign = 1.0 if problem.higher_is_better else -1.0

    def judge(fitted: Any) -> tuple[float, np.ndarray, float]:
        score = problem.kind.scores(fitted, xs["validation"], k)
        cut = problem.kind.decision_threshold(ys["validation"], score)
        cut = 0.5 if cut is None else cut
        metrics = problem.kind.evaluate(ys["validation"], score, cut, classes, **context)
        return metrics[metric], score, cut

    points: list[dict[str, Any]] = []
    judged: list[tuple[int, np.ndarray, float]] = []
    for fraction in FRACTIONS:
        keep = max(1, math.ceil(fraction * len(distinct)))
        mask = times >= distinct[len(distinct) - keep]
        x, y = xs["train"][mask], ys["train"][mask]
        for name, values in xs["train"].attrs.items():  # a ranking's lists, positions...
            if isinstance(values, np.ndarray) and len(values) == len(mask):
                x.attrs[name] = values[mask]  # kept with their rows
        value = float("nan")
        if problem.kind.fittable(y):
            fitted = fit_configuration(model, problem, x, y, params or {}, seed)
            value, score, cut = judge(fitted)
            judged.append((len(points), score, cut))
        points.append(
            {"fraction": fraction, "times": keep, "rows": int(mask.sum()), "value": value}
        )
        say(
            f"  {share(fraction):>4} of the training period ({int(mask.sum()):,} rows): {metric} {value:.4f}"
        )
    base = fit_configuration("baseline", problem, xs["train"], ys["train"], {}, seed)
    baseline = judge(base)[0]
    values = [p["value"] for p in points]
    per_doubling = _per_doubling(values, sign)
    scale = context.get("scale")
    noise, slope_noise = _bootstrap(
        problem, ys["validation"], judged, classes, sign, seed, scale, context.get("groups")
    )
    full = values[-1]
    gain = sign * (full - baseline)
    return LearningCurve(
        model=model,
        params=dict(params or {}),
        configuration=configuration or f"{model} with its default parameters",
        metric=metric,
        higher_is_better=problem.higher_is_better,
        points=points,
        baseline=float(baseline),
        noise=noise,
        per_doubling=per_doubling,
        per_doubling_noise=slope_noise,
        verdict=_verdict(metric, per_doubling, slope_noise),
        gain_over_baseline=float(gain),
        expected_gain_doubled=float(gain + max(per_doubling, 0.0))
        if not math.isnan(per_doubling)
        else float(gain),
    )


def _per_doubling(values: list[float], sign: float) -> float:
    """The mean gain over the last two doublings (1/4 -> 1/2 -> all), in the better direction."""
    gains = [sign * (b - a) for a, b in itertools.pairwise(values[1:])]
    return float(np.nanmean(gains)) if not np.isnan(gains).all() else float("nan")


def _bootstrap(
    problem: Problem,
    y: np.ndarray,
    judged: list[tuple[int, np.ndarray, float]],
    classes: list[Any] | None,
    sign: float,
    seed: int,
    scale: float | None = None,
    groups: np.ndarray | None = None,
) -> tuple[float, float]:
    """Standard deviations, over bootstrap resamples of the validation rows, of the
    full-data value and of the gain per doubling (every point scored on the same resample,
    so the gain's noise is that of a paired difference)."""
    if not judged or len(y) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    full, slopes = [], []
    rows_of: list[np.ndarray] = []
    if groups is not None:  # a ranking: resample whole lists
        order = np.argsort(groups, kind="stable")
        cuts = np.flatnonzero(np.diff(groups[order])) + 1
        rows_of = np.split(order, cuts)
    for _ in range(BOOTSTRAP):
        extra: dict[str, Any] = {}
        if rows_of:
            picked = rng.integers(0, len(rows_of), len(rows_of))
            idx = np.concatenate([rows_of[p] for p in picked])
            extra = {
                "groups": np.repeat(np.arange(len(picked)), [len(rows_of[p]) for p in picked]),
                "k": problem.top_k,
            }
        else:
            idx = rng.integers(0, len(y), len(y))
        values = [float("nan")] * len(FRACTIONS)
        for i, score, cut in judged:
            metrics = problem.kind.evaluate(y[idx], score[idx], cut, classes, scale=scale, **extra)
            values[i] = metrics[problem.metric]
        full.append(values[-1])
        slopes.append(_per_doubling(values, sign))

    def std(v: list[float]) -> float:
        return float(np.nanstd(v)) if not np.isnan(v).all() else float("nan")

    return std(full), std(slopes)


def _verdict(metric: str, per_doubling: float, noise: float) -> str:
    if math.isnan(per_doubling):
        return "unknown: the smaller training periods could not be fitted (a single class)"
    band = 2 * noise if not math.isnan(noise) else 0.0
    change = f"{per_doubling:+.4g} {metric} per doubling of the training period (± {band:.2g})"
    if per_doubling > band:
        return f"still improving by {change}: more data is likely to help"
    if per_doubling < -band:
        return (
            f"getting worse with more history: {change}; the older part of the training "
            "period may differ from the present: a shorter training period may serve better"
        )
    return f"flat: {change}: more data is unlikely to help"


def assess(repo: FeatureRepo, name: str, *, progress: Progress | None = None) -> Assessment:
    """The facts and learning curve of problem ``name`` on a freshly built training set."""
    from framework.models.registry import registry_of
    from framework.training.dataset import build_training_set

    say = progress or (lambda _m: None)
    problem = repo.problem(name)
    say(f"building the training set of {name!r}")
    ts = build_training_set(repo, problem)
    facts = describe_data(ts, problem)
    model, params, where = _configuration(registry_of(repo), problem)
    say(f"learning curve of {where} ({problem.metric} on validation)")
    split = split_problem(ts.frame.sort_values(TIMESTAMP, kind="stable"), problem)
    curve = learning_curve(split, ts, problem, model, params, configuration=where, progress=say)
    return Assessment(problem.name, problem.task, facts, curve)


def _configuration(registry: Any, problem: Problem) -> tuple[str, dict[str, Any], str]:
    versions = registry.versions(problem.name) if problem.name in registry.problems() else []
    if versions:
        meta = registry.get(problem.name, versions[-1]).meta
        entry: dict[str, Any] = next((c for c in meta.candidates if c["name"] == meta.winner), {})
        params = (entry.get("tuning") or {}).get("best_params", {})
        return meta.winner, params, f"{meta.winner} as chosen by {meta.version}"
    first = next(m for m in problem.models if m != "baseline")
    return first, {}, f"{first} with its default parameters (no model registered yet)"
