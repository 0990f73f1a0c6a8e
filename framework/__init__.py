"""A declarative, feature-store-centered framework for the machine-learning lifecycle.

The stable public API, by stage (imported lazily, so that ``lifecycle --help``
and a feature repo's ``import framework`` do not pay for Feast, pandas or
scikit-learn until a name is used)::

    tasks      Task, register_task (a task kind of your own)
    declare    WindowedFeatureView, Aggregate, LIFETIME, DateExpansions, SourceContract,
               Problem, NoEvents, AnyEvent, Count, Sum, Mean, LabelTable, Cutoffs,
               WeeklyCutoffs, EventSpine, TableSpine, Monitoring, Experiment, Job, FeatureRepo
    collect    append_events
    prepare    apply
    features   get_historical_features, get_online_features, materialize
    models     ModelMeta, ModelArtifact, registry_of, score
    training   build_training_set, validate, run_training
    deploy     create_app, predict_batch
    monitor    detect_drift, realized_performance, skew, retrain, experiment_report
    schedule   run_due, backfill

Each name's module is in ``_LAZY`` below; the exceptions are in :mod:`framework.errors`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    # tasks
    "Task": "framework.tasks",
    "register_task": "framework.tasks",
    # declare
    "Aggregate": "framework.declare.windows",
    "WindowedFeatureView": "framework.declare.windows",
    "DateExpansions": "framework.declare.dates",
    "SourceContract": "framework.declare.contracts",
    "LIFETIME": "framework.declare.windows",
    "Experiment": "framework.declare.experiments",
    "FeatureRepo": "framework.declare.repo",
    "Job": "framework.declare.schedules",
    "Monitoring": "framework.declare.problems",
    "NoEvents": "framework.declare.problems",
    "AnyEvent": "framework.declare.problems",
    "Count": "framework.declare.problems",
    "Mean": "framework.declare.problems",
    "Cutoffs": "framework.declare.problems",
    "DailyTotal": "framework.declare.problems",
    "EventSpine": "framework.declare.problems",
    "TableSpine": "framework.declare.problems",
    "LabelTable": "framework.declare.problems",
    "Problem": "framework.declare.problems",
    "Sum": "framework.declare.problems",
    "WeeklyCutoffs": "framework.declare.problems",
    # collect, prepare, features
    "append_events": ("framework.collect.ingest", "append"),
    "apply": "framework.prepare.apply",
    "get_historical_features": "framework.features.historical",
    "get_online_features": "framework.features.online",
    "materialize": "framework.features.materialize",
    # models, training
    "ModelArtifact": "framework.models.registry",
    "ModelMeta": "framework.models.metadata",
    "registry_of": "framework.models.registry",
    "score": "framework.models.scoring",
    "build_training_set": "framework.training.dataset",
    "validate": "framework.training.validation",
    "assess": "framework.training.assess",
    "run_training": "framework.training.run",
    # deploy, monitor
    "create_app": "framework.deploy.service",
    "predict_batch": "framework.deploy.batch",
    "predict_forecast": "framework.deploy.forecast",
    "experiment_report": "framework.monitor.experiment_report",
    "detect_drift": "framework.monitor.drift",
    "realized_performance": "framework.monitor.performance",
    "skew": "framework.monitor.skew",
    "retrain": "framework.monitor.retrain",
    # schedule
    "run_due": "framework.schedule.runner",
    "backfill": "framework.schedule.runner",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'framework' has no attribute {name!r}")
    module, attribute = where if isinstance(where, tuple) else (where, name)
    return getattr(importlib.import_module(module), attribute)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
