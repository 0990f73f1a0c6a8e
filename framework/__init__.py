"""A declarative, feature-store-centered framework for the machine-learning lifecycle.

Declarations (used in ``feature_repo/*.py``) are imported lazily, so that
``lifecycle --help`` does not pay for importing Feast.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Aggregate",
    "DateExpansions",
    "EventContract",
    "Experiment",
    "FeatureRepo",
    "NoEvents",
    "Problem",
    "Sum",
    "WeeklyCutoffs",
    "WindowedFeatureView",
    "__version__",
]

__version__ = "0.1.0"

_LAZY = {
    "Aggregate": "framework.declare.windows",
    "WindowedFeatureView": "framework.declare.windows",
    "DateExpansions": "framework.declare.dates",
    "EventContract": "framework.declare.contracts",
    "Experiment": "framework.declare.experiments",
    "FeatureRepo": "framework.declare.repo",
    "NoEvents": "framework.declare.problems",
    "Problem": "framework.declare.problems",
    "Sum": "framework.declare.problems",
    "WeeklyCutoffs": "framework.declare.problems",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'framework' has no attribute {name!r}")
