"""What is recorded about a model version (``model.json``), as one typed object.

``ModelMeta`` is the hand-off between training and everything after it: serving,
batch prediction and monitoring read a model's feature service, features, task
and decision threshold from it, never from a training module. It is written once
by the registry and read back with ``ModelMeta.from_json``.

Two thresholds, two names: a problem's ``success_threshold`` is the bar its test
metric must clear (declared); a binary model's ``decision_threshold`` is the score
at or above which it answers label 1 (chosen on validation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from framework.errors import ArtifactError

__all__ = ["ModelMeta"]


@dataclass(frozen=True)
class ModelMeta:
    """A registered (or about to be registered) model version, typed."""

    problem: str
    task: str  # "binary", "multiclass", "regression", "forecast" or "ranking"
    entity: str | list[str]  # the problem's join key (a list: a composite key)
    feature_service: str
    features: list[str]
    feature_dtypes: dict[str, str]
    metric: str
    success_threshold: float
    decision_threshold: float | None  # binary tasks only
    success: bool
    winner: str
    metrics: dict[str, dict[str, float]]  # {"validation": ..., "test": ...} of the winner
    baseline: dict[str, dict[str, float]]
    candidates: list[dict[str, Any]]
    split: dict[str, list[Any]]  # split name -> [from, to, rows]
    dataset: dict[str, Any]  # summary of the training set, with its hash and path
    validation: dict[str, Any]  # the suite's facts, checked again on batch inputs
    categories: dict[str, list[Any]]
    reference: dict[str, Any]  # profile of the training data (and the sample's file)
    label: dict[str, Any]
    label_description: str
    spine: dict[str, Any] | None
    events: str
    tuning_budget: int
    description: str = ""
    classes: list[Any] | None = None  # multiclass: the class values, by index
    assessment: dict[str, Any] | None = None  # data facts and learning curve (training.assess)
    split_warnings: list[str] = field(default_factory=list)  # Split.warnings of the run
    version: str = ""  # set by the registry
    stage: str = "candidate"
    created_at: str = ""
    sha256: str = ""
    libraries: dict[str, str] = field(default_factory=dict)
    signature: str = ""  # HMAC of everything else (framework.models.signing), set on registration

    @property
    def keys(self) -> list[str]:
        """The join keys, in order."""
        return [self.entity] if isinstance(self.entity, str) else list(self.entity)

    @property
    def test_metric(self) -> float:
        """The winner's test value of the problem's metric."""
        return self.metrics["test"][self.metric]

    @property
    def baseline_test_metric(self) -> float:
        return self.baseline["test"][self.metric]

    def with_(self, **changes: Any) -> ModelMeta:
        """A copy with ``changes`` (the registry sets version, checksum, times)."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "model.json") -> ModelMeta:
        """Read a ``model.json``; a missing field is an ``ArtifactError`` naming it."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        missing = sorted(
            f.name
            for f in fields(cls)
            if f.name not in values and f.default is f.default_factory  # both MISSING
        )
        if missing:
            raise ArtifactError(
                f"{source} lacks {missing}: it was written by another version of the "
                "framework. Retrain the problem to register a current model."
            )
        return cls(**values)
