"""The production models a service answers with, loaded once and swapped on promotion."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from framework.declare.repo import FeatureRepo
from framework.errors import ArtifactError, LifecycleError
from framework.models.registry import ModelArtifact, Registry

__all__ = ["Loaded", "ModelCache", "settle", "warm_up"]


@dataclass
class Loaded:
    artifact: ModelArtifact
    model: Any
    stages_mtime: int


class ModelCache:
    """Production models, loaded once per problem and reloaded when a promotion changes them."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._loaded: dict[str, Loaded] = {}
        self._serials: dict[str, int] = {}  # the latest promotion seen per problem
        self._lock = threading.Lock()

    def _stages_mtime(self, problem: str) -> int:
        try:
            return os.stat(self.registry.root / problem / "stages.json").st_mtime_ns
        except OSError:
            return -1

    def get(self, problem: str) -> Loaded:
        mtime = self._stages_mtime(problem)
        current = self._loaded.get(problem)
        if current is not None and current.stages_mtime == mtime:
            return current
        with self._lock:
            current = self._loaded.get(problem)
            if current is None or current.stages_mtime != mtime:
                artifact = self.registry.get(problem)
                seen = self._serials.get(problem, 0)
                if artifact.serial is not None and artifact.serial < seen:
                    raise ArtifactError(
                        f"The stages of {problem} went back from promotion {seen} to "
                        f"{artifact.serial}: an older stages.json was put back. Refusing it; "
                        "promote a version again."
                    )
                current = Loaded(artifact, artifact.load_model(), mtime)
                self._serials[problem] = max(seen, artifact.serial or 0)
                self._loaded[problem] = current  # swapped whole: readers see old or new
                settle()
        return current

    def version(self, problem: str, version: str) -> Loaded:
        """A given version (an experiment arm); versions never change, so it is kept."""
        key = f"{problem}/{version}"
        current = self._loaded.get(key)
        if current is None:
            with self._lock:
                current = self._loaded.get(key)
                if current is None:
                    artifact = self.registry.get(problem, version)
                    current = Loaded(artifact, artifact.load_model(), 0)
                    self._loaded[key] = current
                    settle()
        return current

    def loaded(self) -> dict[str, str]:
        return {p: v.artifact.version for p, v in self._loaded.items()}


def settle() -> None:
    """Move every live object to the GC's permanent generation.

    The registry, the models and the caches live as long as the process; left in
    the collected generations, each full collection walks them all (90 ms pauses
    were measured). Called at startup and after a model is (re)loaded.
    """
    import gc

    gc.collect()
    gc.freeze()


def warm_up(repo: FeatureRepo, models: ModelCache) -> None:
    """Load what the first requests would: production models, feature readers, lazy imports."""
    from framework.features.online_read import reader

    for name in repo.problems:
        try:
            loaded = models.get(name)
            reader(repo, loaded.artifact.meta.feature_service)
        except LifecycleError:
            continue  # reported by /health and by requests for this problem
    settle()
