"""Prepare data: check the inputs, rebuild every derived table, register with Feast.

``apply(repo)`` is what ``lifecycle apply`` runs. Order matters for "nothing
half-written": every input file is checked before any table is touched, each
table is written to a temporary file and renamed into place, and only then is
the registry updated (the same way ``feast apply`` does it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.collect.checks import check_frame, read_table
from framework.declare.contracts import SCHEMA_TAG, Column
from framework.declare.repo import FeatureRepo
from framework.errors import DataError, StoreError
from framework.prepare.source_checks import check_source
from framework.prepare.window_tables import TableStats, build_window_table

if TYPE_CHECKING:
    pass

__all__ = ["ApplyResult", "apply", "build_tables", "check_inputs", "merge_inbox", "register"]

Progress = Callable[[str], None]
BuildProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did: the tables it built and the objects it registered."""

    tables: list[TableStats]
    registered: list[str]


def _kind(dtype: object) -> str:
    name = str(dtype).lower()
    for key, kind in (
        ("int", "int"),
        ("float", "float"),
        ("string", "string"),
        ("bool", "bool"),
        ("unixtimestamp", "timestamp"),
    ):
        if key in name:
            return kind
    return "string"


def check_inputs(repo: FeatureRepo) -> list[str]:
    """Check every raw input file the repo reads; return their paths.

    Each event source's contract is recorded in its tags (the registry keeps
    them), so ingestion checks new rows against it even when none is declared.
    """
    from feast import FileSource

    checked: list[str] = []
    declared = {s.name: s for s in repo.contents.data_sources if isinstance(s, FileSource)}
    for source in repo.event_sources.values():
        if repo.spark:  # each partition of the log is checked on an executor
            from framework.prepare.checks_spark import check_source_spark

            contract = check_source_spark(repo, source)
        else:
            contract = check_source(repo.declared_window_specs, source)
        if source.name in declared:
            declared[source.name].tags[SCHEMA_TAG] = contract.to_json()
        checked.append(source.path)
    derived = {s.table_path for s in repo.declared_window_specs}
    for fv in repo.contents.feature_views:
        src = fv.batch_source
        path = getattr(src, "path", None)
        if src is None or not path or path in derived or path in checked:
            continue
        keys = [Column(c.name, _kind(c.dtype)) for c in fv.entity_columns]
        cols = [
            *keys,
            Column(src.timestamp_field, "timestamp"),
            *[Column(f.name, _kind(f.dtype), nullable=True) for f in fv.features],
        ]
        table = read_table(path, f"Source of feature view {fv.name!r}:")
        check_frame(
            table,
            cols,
            source=path,
            unique=(*(k.name for k in keys), src.timestamp_field),
            allow_extra=True,
        )
        checked.append(path)
    return checked


def register(repo: FeatureRepo) -> list[str]:
    """Apply the repo's declarations to the registry and online store, like ``feast apply``."""
    from feast.project import Project
    from feast.repo_operations import extract_objects_for_apply_delete

    store = repo.store
    contents = repo.contents
    if not contents.projects:
        contents.projects.append(Project(name=store.config.project))
    from framework.declare.udfs import applying

    try:
        with applying():  # a registry entry that differs from the declarations is replaced
            to_apply, to_delete, _, _ = extract_objects_for_apply_delete(
                store.config.project, store.registry, contents
            )
            if repo.spark:
                to_apply = [_on_spark(o) for o in to_apply]
            store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    except Exception as exc:
        raise StoreError(f"Registering the declarations with Feast failed: {exc}") from exc
    return sorted(getattr(o, "name", str(o)) for o in to_apply)


def _spark_source(src: Any) -> Any:
    """The SparkSource that reads what a FileSource reads (Feast's Spark offline store
    and engine read only SparkSources)."""
    from feast import FileSource
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    if not isinstance(src, FileSource):
        return src
    return SparkSource(
        name=src.name,
        path=src.path,
        file_format="parquet",
        timestamp_field=src.timestamp_field,
        created_timestamp_column=src.created_timestamp_column,
        field_mapping=src.field_mapping,
        description=src.description,
        tags=src.tags,
        owner=src.owner,
    )


def _on_spark(obj: Any) -> Any:
    """A declared object as the Spark profile registers it: file sources become Spark
    sources over the same parquet paths; everything else is unchanged."""
    import copy

    from feast import FeatureView

    if isinstance(obj, FeatureView) and obj.batch_source is not None:
        view = copy.copy(obj)
        view.batch_source = _spark_source(obj.batch_source)
        return view
    return _spark_source(obj)


def apply(
    repo: FeatureRepo,
    *,
    progress: Progress | None = None,
    build_progress: BuildProgress | None = None,
) -> ApplyResult:
    """Check inputs, rebuild every window table from the raw events, then register.

    ``progress`` gets a message per step; ``build_progress`` gets (view, events
    done, events in all) while a window table is built.
    """
    say = progress or (lambda _msg: None)
    with repo.lock():
        merge_inbox(repo, say)
        say("checking input files")
        check_inputs(repo)
        tables = build_tables(repo, say, build_progress)
        say("registering with Feast")
        registered = register(repo)
    return ApplyResult(tables=tables, registered=registered)


def merge_inbox(repo: FeatureRepo, say: Progress) -> int:
    """Merge appended events into the event log (caller holds the lock); return rows added."""
    from framework.collect.ingest import compact, inbox_files

    if not repo.event_sources or not inbox_files(repo):
        return 0
    merged = compact(repo, locked=True)
    if merged.files:
        say(
            f"merged {merged.added:,} appended events into the event log "
            f"({merged.duplicates:,} already there)"
        )
    return merged.added


def build_tables(
    repo: FeatureRepo, say: Progress, build_progress: BuildProgress | None = None
) -> list[TableStats]:
    """Rebuild every declared window table from its events (caller holds the lock)."""
    tables = []
    session = None
    if repo.declared_window_specs and repo.spark:
        from framework.common.spark import spark_session

        session = spark_session(repo.store.config)
    for spec in repo.declared_window_specs:
        say(f"building window table {spec.name}" + (" on Spark" if session else ""))
        bar = (lambda d, n, v=spec.name: build_progress(v, d, n)) if build_progress else None
        if session is not None:
            from framework.prepare.window_tables_spark import build_window_table_spark

            stats = build_window_table_spark(spec, session)
        else:
            stats = build_window_table(spec, progress=bar)
        if stats.rows == 0:
            raise DataError(f"The window table of {spec.name!r} came out empty.")
        tables.append(stats)
    return tables
