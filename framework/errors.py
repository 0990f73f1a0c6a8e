"""The framework's exceptions.

Every error the framework raises on purpose derives from ``LifecycleError``;
the CLI turns them into a one-line message and exit code 1::

    LifecycleError
     +-- ConfigError          feature_store.yaml, profiles, options
     +-- FeatureRepoError     declarations under feature_repo/ (unknown names, bad specs)
     +-- DataError            input files: schema, dtypes, duplicates, empty files
     +-- StoreError           the offline or online store failed underneath us

Subclasses of ``DataError`` and ``FeatureRepoError`` also subclass ``ValueError``,
so callers that catch the built-in keep working (the scikit-learn convention).
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "FeatureRepoError", "LifecycleError", "StoreError"]


class LifecycleError(Exception):
    """Base class of every error the framework raises on purpose."""


class ConfigError(LifecycleError, ValueError):
    """The configuration (feature_store.yaml, options, environment) is wrong."""


class FeatureRepoError(LifecycleError, ValueError):
    """A declaration in the feature repository is wrong or names something unknown."""


class DataError(LifecycleError, ValueError):
    """An input file or frame does not match the schema it must follow."""


class StoreError(LifecycleError, RuntimeError):
    """The offline or online store failed; the message says which and why."""
