"""Train, evaluate, improve: the candidates of a problem compared on one time-based split.

The task kind (``problem.kind``, see ``framework.tasks``) says how the rows are split,
which candidates there are and how each is fitted and tuned, and which metrics judge
them. This module is the loop: fit every candidate on the training split, choose the
best on validation by the problem's metric (a binary model's decision threshold is the
F1-best cut on validation), and report the winner and the baseline on test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from framework.declare.problems import Problem
from framework.models.scoring import to_model_frame
from framework.tasks.base import PARTS
from framework.tasks.splitters import Split
from framework.training.dataset import LABEL, TrainingSet

__all__ = [
    "PARTS",
    "Candidate",
    "TrainResult",
    "evaluation_context",
    "fit_configuration",
    "model_inputs",
    "split_problem",
    "train",
]

Progress = Callable[[str], None]


def split_problem(frame: pd.DataFrame, problem: Problem) -> Split:
    """The problem's time split of ``frame`` (rows sorted by time)."""
    return problem.kind.split(frame, problem)


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
        cols = problem.kind.metric_columns
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
        lines += problem.kind.text_rows(self)
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
            "split_warnings": self.split.warnings(),
        }


def model_inputs(
    split: Split, ts: TrainingSet, problem: Problem
) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray], list[Any] | None]:
    """Each part's model frame and label array as the task kind takes them (class indices
    for multiclass, with the class values)."""
    kind = problem.kind
    xs = {k: to_model_frame(getattr(split, k), ts.features) for k in PARTS}
    for k in PARTS:
        kind.annotate(xs[k], getattr(split, k), problem)
    ys, classes = kind.encode_labels(
        problem, {k: getattr(split, k)[LABEL].to_numpy() for k in PARTS}
    )
    return xs, ys, classes


def evaluation_context(
    problem: Problem, xs: dict[str, pd.DataFrame], ys: dict[str, np.ndarray], part: str
) -> dict[str, Any]:
    """What the kind's ``evaluate`` needs beyond labels and scores (a forecast's horizons
    and MASE scale, a ranking's lists and k)."""
    return problem.kind.evaluation_context(problem, xs, ys, part)


def _fit(
    name: str, problem: Problem, x: pd.DataFrame, y: np.ndarray, seed: int, groups: Any = None
) -> tuple[Any, dict]:
    kind = problem.kind
    pipe = kind.pipeline(name, x, seed, problem)
    if name != "lightgbm" or problem.tuning_budget <= 1:
        return kind.fit(pipe, name, problem, x, y, groups), {}
    best, score = kind.tune(problem, x, y, seed, groups)
    pipe.set_params(**{f"model__{k}": v for k, v in best.items()})
    tuning = {"best_params": best, "cv_score": score, "configurations": problem.tuning_budget}
    return kind.fit(pipe, name, problem, x, y, groups), tuning


def fit_configuration(
    name: str, problem: Problem, x: pd.DataFrame, y: np.ndarray, params: dict, seed: int = 0
) -> Any:
    """A candidate's pipeline with the given model parameters, fitted (no search)."""
    pipe = problem.kind.pipeline(name, x, seed, problem)
    pipe.set_params(**{f"model__{k}": v for k, v in params.items()})
    return problem.kind.fit(pipe, name, problem, x, y, x.attrs.get("groups"))


def _judge(
    kind: Any, model: Any, x: pd.DataFrame, y: np.ndarray, classes: list[Any] | None, context: dict
) -> tuple[np.ndarray, dict[str, float]]:
    """A fitted candidate's scores on a part and its metrics there (a binary model's
    decision threshold chosen on these rows)."""
    score = kind.scores(model, x, len(classes) if classes is not None else 2)
    cut = kind.decision_threshold(y, score)
    return score, kind.evaluate(y, score, 0.5 if cut is None else cut, classes, **context)


def train(
    ts: TrainingSet, problem: Problem, *, progress: Progress | None = None, seed: int = 0
) -> TrainResult:
    """Fit every candidate on the training split, pick on validation, report on test."""
    say = progress or (lambda _m: None)
    kind = problem.kind
    frame = ts.frame.sort_values(kind.sort_columns(problem), kind="stable")
    split = split_problem(frame, problem)
    say(
        "split by time: "
        + ", ".join(
            f"{k} {v[2]:,} rows over {v[3]} times ({v[4]:g} days)"
            for k, v in split.ranges().items()
        )
        + f"; {split.purged:,} rows purged"
    )
    for warning in split.warnings():
        say(f"warning: {warning}")
    xs, ys, classes = model_inputs(split, ts, problem)
    k = len(classes) if classes is not None else 2
    context = {part: evaluation_context(problem, xs, ys, part) for part in PARTS}
    candidates, seconds = [], {}
    for name in problem.models:
        search = f" (random search, {problem.tuning_budget} configurations x 3 time folds)"
        say(f"fitting {name}" + (search if name == "lightgbm" else ""))
        t0 = time.perf_counter()
        model, tuning = _fit(
            name, problem, xs["train"], ys["train"], seed, xs["train"].attrs.get("groups")
        )
        seconds[name] = time.perf_counter() - t0
        _, metrics = _judge(
            kind, model, xs["validation"], ys["validation"], classes, context["validation"]
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
    decision_threshold: float | None = winner.validation.get("decision_threshold")
    test_scores = kind.scores(winner.model, xs["test"], k)
    test = kind.evaluate(
        ys["test"], test_scores, decision_threshold or 0.5, classes, **context["test"]
    )
    base = candidates[0]
    baseline_test = kind.evaluate(
        ys["test"],
        kind.scores(base.model, xs["test"], k),
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
