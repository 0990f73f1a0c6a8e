"""The training run: dataset -> validation -> training -> registry -> model card.

``run_training(repo, "churn")`` builds and saves the training set, validates it
(a failing suite stops the run with its report), trains the candidates,
registers the winner as a new candidate version with everything needed to
trace and monitor it, and writes its model card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.declare.repo import FeatureRepo
from framework.models import scoring
from framework.models.metadata import ModelMeta
from framework.models.registry import ModelArtifact, registry_of
from framework.training.assess import DataFacts, describe_data, learning_curve
from framework.training.assess_report import facts_text
from framework.training.candidates import TrainResult, train
from framework.training.card import write_card
from framework.training.dataset import LABEL, TrainingSet, build_training_set
from framework.training.validation import ValidationResult, profile, validate

__all__ = ["TrainingRun", "run_training"]

Progress = Callable[[str], None]
REFERENCE_ROWS = 20_000  # training rows kept beside the model for drift monitoring


@dataclass(frozen=True)
class TrainingRun:
    """What a training run made: the dataset, its validation, the result and the artifact."""

    training_set: TrainingSet
    validation: ValidationResult
    result: TrainResult
    artifact: ModelArtifact


def run_training(repo: FeatureRepo, name: str, *, progress: Progress | None = None) -> TrainingRun:
    say = progress or (lambda _m: None)
    problem = repo.problem(name)
    say(f"building the training set of {name!r} (labels, then features at each observation)")
    ts = build_training_set(repo, problem)
    dataset_path = ts.save(repo.datasets_dir)
    say(f"dataset {ts.hash}: {len(ts.frame):,} rows -> {dataset_path}")
    say("validating it with Great Expectations")
    checked = validate(ts, categories=dict(problem.categories))
    checked.raise_for_failure()
    facts = describe_data(ts, problem)  # refuses too short a span or too few positives
    say(facts_text(problem.name, facts))
    result = train(ts, problem, progress=say)
    assessment = _assessment(ts, problem, result, facts, say)
    summary = ts.summary()
    out = result.as_json()
    scores = result.test_scores
    if scores.ndim == 2:  # multiclass: the probability of the most likely class
        scores = scores.max(axis=1)
    declared = problem.spec()
    meta = ModelMeta(
        problem=problem.name,
        task=problem.task,
        entity=declared["entity"],
        feature_service=problem.feature_service,
        features=ts.features,
        feature_dtypes=ts.spec["feature_dtypes"],
        metric=problem.metric,
        success_threshold=problem.success_threshold,
        decision_threshold=out["decision_threshold"],
        success=out["success"],
        winner=out["winner"],
        metrics=out["metrics"],
        baseline=out["baseline"],
        candidates=out["candidates"],
        split=out["split"],
        split_warnings=out["split_warnings"],
        dataset={**summary, "path": str(dataset_path)},
        # the validation suite's facts, checked again on every batch scoring input
        validation={k: ts.spec[k] for k in ("zero_fill", "window_groups")},
        categories=declared["categories"],
        reference={
            "features": profile(result.split.train, ts.features),
            "label": profile(result.split.train, [LABEL])[LABEL],
            "scores": [float(q) for q in np.quantile(scores, np.linspace(0, 1, 21))],
        },
        label=declared["label"],
        label_description=declared["label_description"],
        spine=declared["spine"],
        events=declared["events"],
        tuning_budget=problem.tuning_budget,
        description=problem.description or "",
        classes=out["classes"],
        assessment=assessment,
    )
    sample = result.split.train.sample(
        n=min(REFERENCE_ROWS, len(result.split.train)), random_state=0
    ).sort_index()
    reference = sample[[*ts.features, LABEL]].reset_index(drop=True)
    reference["score"] = scoring.score(meta, result.winner.model, reference)[0]
    artifact = registry_of(repo).register(result.winner.model, meta, reference=reference)
    say(f"registered {problem.name} {artifact.version} (candidate)")
    forecast_rows = problem.kind.test_rows(result, problem)
    write_card(
        artifact.path,
        artifact.meta,
        result.winner.model,
        result.split.test[LABEL].to_numpy(),
        result.test_scores,
        forecast_rows,
    )
    return TrainingRun(ts, checked, result, artifact)


def _assessment(
    ts: TrainingSet, problem: Any, result: TrainResult, facts: DataFacts, say: Progress
) -> dict[str, Any]:
    """The data facts and the learning curve of the winner's configuration (of the best
    non-baseline candidate when the baseline won), for the model card."""
    from dataclasses import asdict

    best = result.winner
    if best.name == "baseline" and len(result.candidates) > 1:
        best = max(
            result.candidates[1:],
            key=lambda c: c.validation[problem.metric] * (1 if problem.higher_is_better else -1),
        )
    params = best.tuning.get("best_params", {})
    where = f"{best.name} as chosen by this run" + (" (tuned)" if params else "")
    say(f"learning curve of {where}: {problem.metric} on validation")
    curve = learning_curve(
        result.split, ts, problem, best.name, params, configuration=where, progress=say
    )
    say(f"  {curve.verdict}")
    return {**asdict(facts), "learning_curve": asdict(curve)}
