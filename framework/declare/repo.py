"""The feature repository: its declarations, its Feast store, and a lock for writers.

``FeatureRepo`` is built once (by the CLI's group callback, or by a user) and
handed to every stage. It imports the declarations the way ``feast apply`` does,
but without changing the process's working directory for good and without
reusing modules of another repo loaded earlier in the same process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from framework.declare.loader import importing
from framework.declare.sources import EventSource, event_sources, infer_contract, with_columns
from framework.errors import ConfigError, FeatureRepoError

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView, OnDemandFeatureView
    from feast.repo_contents import RepoContents

    from framework.declare.contracts import SourceContract
    from framework.declare.experiments import Experiment
    from framework.declare.problems import Problem
    from framework.declare.schedules import Job
    from framework.declare.windows import WindowSpec

__all__ = ["EventSource", "FeatureRepo", "infer_contract"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


class FeatureRepo:
    """A Feast feature repository plus the framework's view of it."""

    def __init__(self, path: str | Path = "feature_repo", fs_yaml: str | Path | None = None):
        self.path = Path(path).resolve()
        if not self.path.is_dir():
            raise ConfigError(
                f"Feature repository {self.path} does not exist; pass --repo PATH to a folder "
                "with a feature_store.yaml, or start one with `lifecycle init PATH`."
            )
        self.fs_yaml = Path(fs_yaml).resolve() if fs_yaml else self.path / "feature_store.yaml"
        if not self.fs_yaml.is_file():
            raise ConfigError(
                f"{self.fs_yaml} does not exist; a feature repository needs a feature_store.yaml."
            )

    # The catalog: every location the framework reads or writes, named here once.

    @property
    def data_dir(self) -> Path:
        """What the framework makes for this repo (tables, models, reports) lives here."""
        return self.path / "data"

    @property
    def datasets_dir(self) -> Path:
        """Saved training sets, ``<problem>/<hash>/``."""
        return self.data_dir / "datasets"

    @property
    def models_dir(self) -> Path:
        """The model registry's root, ``<problem>/v<N>/``."""
        return self.data_dir / "models"

    @property
    def reports_dir(self) -> Path:
        """Monitoring reports, ``<problem>/<time>-<kind>-<version>/``."""
        return self.data_dir / "reports"

    def prediction_spool(self, url: str) -> Path:
        """Where the prediction log of database ``url`` spools while that database fails
        (one file per database, so that a replay goes where the rows were meant to)."""
        import hashlib

        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        return self.data_dir / f"prediction-log-{digest}.spool"

    def new_report_folder(self, problem: str, kind: str, version: str) -> Path:
        """A new, empty report folder named by the current time (to the microsecond);
        two runs never share one: a taken name gets a numbered suffix."""
        from datetime import UTC, datetime

        parent = self.reports_dir / problem
        parent.mkdir(parents=True, exist_ok=True)
        stem = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{kind}-{version}"
        for attempt in range(1, 1000):
            folder = parent / (stem if attempt == 1 else f"{stem}-{attempt}")
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                continue
        raise ConfigError(f"Cannot create a report folder under {parent}: every name is taken.")

    @property
    def prediction_db(self) -> str:
        """Where predictions go by default: ``LIFECYCLE_PREDICTION_DB`` (e.g. a
        postgresql:// URL in production), else the SQLite file ``data/predictions.db``."""
        return os.environ.get("LIFECYCLE_PREDICTION_DB") or str(self.data_dir / "predictions.db")

    @cached_property
    def store(self) -> FeatureStore:
        from feast import FeatureStore

        unset = sorted(
            {
                name
                for line in self.fs_yaml.read_text().splitlines()
                if not line.lstrip().startswith("#")
                for name in re.findall(r"\$\{(\w+)\}", line)
                if name not in os.environ
            }
        )
        if unset:
            raise ConfigError(
                f"{self.fs_yaml} uses environment variable(s) {unset}, which are not set. "
                "Set them (see the comments at the top of that file)."
            )
        try:
            store = FeatureStore(repo_path=str(self.path), fs_yaml_file=self.fs_yaml)
        except Exception as exc:  # pydantic / yaml errors from Feast's config loader
            raise ConfigError(f"{self.fs_yaml} is not a valid Feast configuration: {exc}") from exc
        if getattr(store.config.offline_store, "type", "") == "spark":
            import warnings

            # Feast warns that its Spark source is "experimental" at every registry read.
            warnings.filterwarnings("ignore", r"The spark .* experimental", RuntimeWarning)
        from framework.declare.udfs import guard, trust

        guard()  # on-demand views' functions: the declarations', never the registry's
        trust(store.config.project, list(self.contents.on_demand_feature_views))
        return store

    @property
    def spark(self) -> bool:
        """Does the repo select the Spark profile (``offline_store: type: spark``)?"""
        from framework.common.spark import is_spark

        return is_spark(self.store.config)

    @cached_property
    def contents(self) -> RepoContents:
        """Every Feast object declared in the repo's Python files."""
        from feast.repo_operations import parse_repo

        with importing(self.path):
            return parse_repo(self.path)

    @property
    def declared_window_specs(self) -> list[WindowSpec]:
        """Window specs of the declarations (what the next apply will build)."""
        from framework.declare.windows import WindowSpec

        specs = [WindowSpec.from_feature_view(fv) for fv in self.contents.feature_views]
        return [s for s in specs if s is not None]

    def _declared(self, cls: type[_N], what: str) -> dict[str, _N]:
        """Objects of ``cls`` declared in the repo's Python files, by name."""
        import importlib

        from framework.declare.loader import repo_files

        found: dict[str, _N] = {}
        with importing(self.path):
            for path in repo_files(self.path):
                module = importlib.import_module(
                    ".".join(path.relative_to(self.path).with_suffix("").parts)
                )
                for obj in vars(module).values():
                    if isinstance(obj, cls):
                        if obj.name in found and found[obj.name] is not obj:
                            raise FeatureRepoError(f"Two {what} are named {obj.name!r}.")
                        found[obj.name] = obj
        return found

    @cached_property
    def problems(self) -> dict[str, Problem]:
        """The problems declared in the repo's Python files, by name."""
        import dataclasses

        from framework.declare.problems import Problem

        found = self._declared(Problem, "problems")
        return {
            name: p if p.entity else dataclasses.replace(p, entity=self._service_key(p))
            for name, p in found.items()
        }

    def key_kinds(self, problem: Problem | str) -> dict[str, str]:
        """The problem's join keys, in order, with their kind (``int`` or ``string``), from
        the declarations of its feature service's views."""
        if isinstance(problem, str):
            problem = self.problem(problem)
        kinds: dict[str, str] = {}
        for view in self.contents.feature_views:
            for col in getattr(view, "entity_columns", []) or []:
                if col.name not in kinds:
                    kinds[col.name] = "string" if str(col.dtype) == "String" else "int"
        return {k: kinds.get(k, "int") for k in problem.keys}

    def _service_key(self, problem: Problem) -> str | tuple[str, ...]:
        """The join keys of a problem's feature service, from the declarations (one name,
        or a tuple of names in the order the views declare them)."""
        services = {fs.name: fs for fs in self.contents.feature_services}
        service = services.get(problem.feature_service)
        if service is None:
            raise FeatureRepoError(
                f"Problem {problem.name!r} names feature service {problem.feature_service!r}, "
                f"which the repo does not declare; it declares {sorted(services)}."
            )
        views = {v.name: v for v in self.contents.feature_views}
        keys: list[str] = []
        for projection in service.feature_view_projections:
            view = views.get(projection.name)
            for col in getattr(view, "entity_columns", []) or []:
                if col.name not in keys and not col.name.startswith("__dummy"):
                    keys.append(col.name)
        if not keys:
            raise FeatureRepoError(
                f"Problem {problem.name!r}: feature service {problem.feature_service!r} has no "
                "join key (only entity-less views); declare entity=... on the problem."
            )
        return keys[0] if len(keys) == 1 else tuple(keys)

    @cached_property
    def contracts(self) -> dict[str, SourceContract]:
        """The declared source contracts, by source name."""
        from framework.declare.contracts import SourceContract

        return self._declared(SourceContract, "contracts (for one source)")

    @cached_property
    def event_sources(self) -> dict[str, EventSource]:
        """The declared event sources, by name: those windowed views read, and those a
        contract is declared for."""
        from feast import FileSource

        declared = [s for s in self.contents.data_sources if isinstance(s, FileSource)]
        return event_sources(self.declared_window_specs, self.contracts, declared)

    def event_source(self, name: str | None = None) -> EventSource:
        """The event source ``name`` (or the only one)."""
        import difflib

        sources = self.event_sources
        if not sources:
            raise ConfigError(
                f"{self.path} declares no event source (no windowed feature view and no "
                "SourceContract), so it has no event log to append to."
            )
        if name is None:
            if len(sources) > 1:
                raise ConfigError(
                    f"{self.path} has several event sources {sorted(sources)}; name one "
                    '(--source NAME, or "source" in the request).'
                )
            return next(iter(sources.values()))
        if name not in sources:
            close = difflib.get_close_matches(name, list(sources), n=3)
            raise ConfigError(
                f"Unknown event source {name!r}; the repo has {sorted(sources)} "
                f"(close matches: {close})."
            )
        return sources[name]

    def source_contract(self, source: EventSource) -> SourceContract:
        """The declared contract of ``source``, or the one recorded at ``lifecycle apply``,
        or (before any apply) the one the log file implies."""
        from framework.declare.contracts import SCHEMA_TAG, SourceContract

        if source.contract is not None and source.contract.columns is not None:
            return source.contract
        with contextlib.suppress(Exception):  # not registered yet: fall through
            tags = self.store.get_data_source(source.name).tags or {}
            if SCHEMA_TAG in tags:
                recorded = SourceContract.recorded(source.name, tags[SCHEMA_TAG])
                if source.contract is None:
                    return recorded
                return with_columns(source.contract, recorded)
        if Path(source.path).exists():
            inferred = infer_contract(source)
            return inferred if source.contract is None else with_columns(source.contract, inferred)
        raise ConfigError(
            f"Source {source.name!r} has no declared columns and no log yet ({source.path}); "
            "declare a SourceContract(columns=...) for it, or write a first file and run "
            "`lifecycle apply`."
        )

    @cached_property
    def experiments(self) -> dict[str, Experiment]:
        """The experiments declared in the repo's Python files, by name (checked against
        the problems: each names a declared one, and a problem has one active experiment)."""
        from framework.declare.experiments import Experiment, check_experiments
        from framework.declare.loader import cached

        def load() -> dict[str, Experiment]:
            found = self._declared(Experiment, "experiments")
            check_experiments(found, self.problems)
            return found

        return cached(self.path, self.data_dir, "experiments", Experiment, load)

    @cached_property
    def jobs(self) -> dict[str, Job]:
        """The scheduled jobs declared in the repo's Python files, by name, upstream
        jobs first (checked: known problems and jobs, no cycle, coinciding ticks)."""
        from framework.declare.loader import cached
        from framework.declare.schedules import Job, check_jobs, order

        def load() -> dict[str, Job]:
            found = self._declared(Job, "jobs")
            check_jobs(found, self.problems)
            return {name: found[name] for name in order(found)}

        return cached(self.path, self.data_dir, "jobs", Job, load)

    def job(self, name: str) -> Job:
        if name not in self.jobs:
            import difflib

            close = difflib.get_close_matches(name, list(self.jobs), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise FeatureRepoError(
                f"Unknown job {name!r}; the repo declares {list(self.jobs)}.{hint}"
            )
        return self.jobs[name]

    def experiment(self, name: str) -> Experiment:
        if name not in self.experiments:
            raise FeatureRepoError(
                f"Unknown experiment {name!r}; the repo declares {sorted(self.experiments)}."
            )
        return self.experiments[name]

    def active_experiment(self, problem: str) -> Experiment | None:
        """The experiment running on ``problem``'s predictions, if any."""
        return next(
            (e for e in self.experiments.values() if e.active and e.problem == problem), None
        )

    def problem(self, name: str) -> Problem:
        if name not in self.problems:
            raise FeatureRepoError(
                f"Unknown problem {name!r}; the repo declares {sorted(self.problems)}."
            )
        return self.problems[name]

    # What was applied: every stage after `apply` reads the registry, as Feast does.

    @property
    def feature_views(self) -> list[FeatureView]:
        views = self.store.list_feature_views()
        if not views:
            raise FeatureRepoError(
                f"No feature views are registered for {self.path}; run `lifecycle apply` first."
            )
        return views

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self.store.list_on_demand_feature_views()

    def feature_service(self, name: str) -> FeatureService:
        services = {fs.name: fs for fs in self.store.list_feature_services()}
        if name not in services:
            raise FeatureRepoError(
                f"Unknown feature service {name!r}; the registry has {sorted(services)}. "
                "Declare it under feature_repo/ and run `lifecycle apply`."
            )
        return services[name]

    def view(self, name: str) -> FeatureView | OnDemandFeatureView:
        every: list[FeatureView | OnDemandFeatureView] = [
            *self.feature_views,
            *self.on_demand_feature_views,
        ]
        views = {v.name: v for v in every}
        if name not in views:
            raise FeatureRepoError(
                f"Unknown feature view {name!r}; the registry has {sorted(views)}."
            )
        return views[name]

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock for writers (apply, materialize) of this repo."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".lifecycle.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
