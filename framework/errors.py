"""The framework's exceptions.

Every error the framework raises on purpose derives from ``LifecycleError``;
the CLI turns them into a one-line message and exit code 1::

    LifecycleError
     +-- ConfigError          feature_store.yaml, profiles, options, environment
     +-- FeatureRepoError     declarations under feature_repo/ (unknown names, bad specs)
     +-- DataError            input files and frames: schema, dtypes, duplicates, empty files
     |    +-- RefusedEvents   an event table broke its contract (every Violation listed)
     |    +-- ValidationError a training set or scoring input failed its validation suite
     +-- ArtifactError        a model artifact is missing, changed, foreign or misnamed
     +-- StoreError           the offline or online store, or a database, failed underneath us
     +-- ServingError         a request the prediction service refuses (names the field)
          +-- Unauthorized    missing or wrong API key
          +-- NotFound        unknown problem, model or page
          +-- TooLarge        a body or a batch over its limit
          +-- InvalidRequest  a field is invalid

The prediction service maps them to HTTP statuses in one table
(``framework.deploy.service.errors.STATUS``).

Subclasses of ``DataError`` and ``FeatureRepoError`` also subclass ``ValueError``,
so callers that catch the built-in keep working (the scikit-learn convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DataError",
    "FeatureRepoError",
    "InvalidRequest",
    "LifecycleError",
    "NotFound",
    "RefusedEvents",
    "ServingError",
    "StoreError",
    "TooLarge",
    "Unauthorized",
    "ValidationError",
    "Violation",
]


class LifecycleError(Exception):
    """Base class of every error the framework raises on purpose."""


class ConfigError(LifecycleError, ValueError):
    """The configuration (feature_store.yaml, options, environment) is wrong."""


class FeatureRepoError(LifecycleError, ValueError):
    """A declaration in the feature repository is wrong or names something unknown."""


class DataError(LifecycleError, ValueError):
    """An input file or frame does not match the schema it must follow."""


class ArtifactError(LifecycleError, ValueError):
    """A model artifact is missing, changed, foreign or named wrongly."""


class ValidationError(DataError):
    """A training set (or a batch's scoring input) failed its validation suite."""


class PromotionRefused(LifecycleError):
    """A model's evidence does not support making it the production model (a ranking
    whose counterfactual lift is not clear of zero); an override with a reason does."""


class StoreError(LifecycleError, RuntimeError):
    """The offline or online store failed; the message says which and why."""


@dataclass(frozen=True)
class Violation:
    """One failed check of an event table: how many rows fail it, and examples."""

    check: str
    rows: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    fix: str = ""

    def __str__(self) -> str:
        shown = ", ".join(f"row {e['row']} ({e['column']}={e['value']!r})" for e in self.examples)
        text = f"{self.check}: {self.rows:,} row(s), e.g. {shown}"
        return f"{text}. {self.fix}" if self.fix else text

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "rows": self.rows, "examples": self.examples, "fix": self.fix}


class RefusedEvents(DataError):
    """An event table failed the repo's event contract; ``violations`` lists every failure."""

    def __init__(self, source: str, total: int, violations: list[Violation]) -> None:
        self.source, self.total, self.violations = source, total, violations
        bad = f"{len(violations)} violation(s) in {total:,} row(s)"
        lines = [f"{source} is refused, nothing was written ({bad}):"]
        lines += [f"  - {v}" for v in violations]
        super().__init__("\n".join(lines))


class ServingError(LifecycleError):
    """A request the prediction service refuses; ``field`` names the request field at
    fault (or None). Its HTTP status comes from the service's one table."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


class Unauthorized(ServingError):
    """The API key is missing or wrong."""


class NotFound(ServingError):
    """An unknown problem, model version or page."""


class TooLarge(ServingError):
    """A body, or a batch of entities or events, over its limit."""


class InvalidRequest(ServingError):
    """A field of the request is invalid."""
