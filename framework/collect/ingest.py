"""Collect data: append product events durably to the offline event log.

The event log is the parquet file of the repo's event source (for the example
product ``feature_repo/data/events.parquet``). New events reach it in two steps:

1. ``append(repo, table)`` checks the rows against the event schema
   (``framework.declare.contracts.EVENT_COLUMNS``) and the repo's ``EventContract`` (known
   event types and sources, no future timestamps, no negative amounts, no missing
   keys; a bad table is refused whole, with a report of every violation), then
   writes them as one new file in the
   log's inbox, ``events.parquet.inbox/``: written to a temporary name, flushed
   to disk (fsync), then renamed. Once ``append`` returns, the events survive a
   crash. ``POST /events`` and ``lifecycle events ingest`` both go through it.
2. ``compact(repo)`` (run by ``lifecycle events ingest``, ``apply`` and
   ``materialize``, under the repo's writer lock) merges the inbox into the log:
   the merged file is written beside the log and renamed over it, and only then
   are the inbox files removed. A crash at any point leaves either the old log
   and the inbox, or the new log and (some of) the inbox; rows already merged
   are not merged twice.

An event identical to one already logged (same user, time, type, source and
amount) is kept once: re-sending a batch after a timeout is safe.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from framework.collect.checks import check_events, check_frame
from framework.declare.contracts import EVENT_COLUMNS, EventContract
from framework.declare.repo import FeatureRepo
from framework.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EVENT_SCHEMA",
    "CompactResult",
    "append",
    "compact",
    "conform",
    "event_log_path",
    "inbox_files",
    "read_events",
]

EVENT_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("event_type", pa.string()),
        ("source", pa.string()),
        ("amount", pa.float64()),
    ]
)


@dataclass(frozen=True)
class CompactResult:
    """What ``compact`` merged: inbox files, new rows, and rows already in the log."""

    files: int
    added: int
    duplicates: int
    total: int


def event_log_path(repo: FeatureRepo) -> Path:
    """The parquet file of the repo's event source (the one the windowed views read)."""
    paths = sorted({s.source_path for s in repo.declared_window_specs})
    if not paths:
        raise ConfigError(
            f"{repo.path} declares no windowed feature view, so it has no event log to append to."
        )
    if len(paths) > 1:
        raise ConfigError(f"{repo.path} has several event sources {paths}; expected one.")
    return Path(paths[0])


def _inbox(log: Path) -> Path:
    return log.with_name(log.name + ".inbox")


def inbox_files(repo: FeatureRepo) -> list[Path]:
    """Appended files not yet merged into the log, oldest first."""
    inbox = _inbox(event_log_path(repo))
    return sorted(inbox.glob("*.parquet")) if inbox.is_dir() else []


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def conform(table: pa.Table, source: str, contract: EventContract | None = None) -> pa.Table:
    """Check ``table`` against the event schema and ``contract`` (default: the rules of
    an empty ``EventContract``), and cast it to the log's exact schema."""
    check_frame(table, EVENT_COLUMNS, source=source, no_duplicate_rows=True, nulls=False)
    columns = []
    for field in EVENT_SCHEMA:
        column = table.column(field.name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(
                f"{source}: column {field.name!r} cannot be stored as {field.type}: {exc}"
            ) from exc
    out = pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)
    check_events(out, contract or EventContract(), source=source)
    return out


def append(repo: FeatureRepo, table: pa.Table, *, source: str = "events") -> int:
    """Check ``table`` and write it durably to the event log's inbox; return its row count."""
    rows = conform(table, source, repo.event_contract)
    inbox = _inbox(event_log_path(repo))
    inbox.mkdir(parents=True, exist_ok=True)
    name = f"{os.getpid()}-{uuid.uuid4().hex}.parquet"
    # Names sort by arrival only roughly; order does not matter, the merge is a set union.
    _write_durably(rows, inbox / name)
    return rows.num_rows


def compact(repo: FeatureRepo, *, locked: bool = False) -> CompactResult:
    """Merge the inbox into the event log (see the module docstring). Takes the repo lock
    unless the caller holds it (``locked=True``)."""
    if not locked:
        with repo.lock():
            return compact(repo, locked=True)
    log = event_log_path(repo)
    files = inbox_files(repo)
    old = _read_log(log)
    if not files:
        return CompactResult(files=0, added=0, duplicates=0, total=old.num_rows)
    import duckdb

    con = duckdb.connect()
    try:
        new = pa.concat_tables([pq.read_table(f, schema=EVENT_SCHEMA) for f in files])
        con.register("new_events", new)
        if log.exists():
            con.execute(f"CREATE VIEW old_events AS SELECT * FROM read_parquet('{_sql_path(log)}')")
        else:
            con.execute("CREATE VIEW old_events AS SELECT * FROM new_events LIMIT 0")
        # EXCEPT is a set difference that treats NULL amounts as equal: a re-sent
        # event, or an inbox file merged before a crash, is not added again.
        added = con.sql(
            "SELECT * FROM (SELECT * FROM new_events EXCEPT SELECT * FROM old_events) "
            "ORDER BY event_timestamp, user_id, event_type, source"
        ).to_arrow_table()
        merged = pa.concat_tables([old, added.cast(EVENT_SCHEMA)])
    finally:
        con.close()
    if added.num_rows:
        _write_durably(merged, log)
    for f in files:
        f.unlink(missing_ok=True)
    _fsync_dir(files[0].parent)
    return CompactResult(
        files=len(files),
        added=added.num_rows,
        duplicates=new.num_rows - added.num_rows,
        total=merged.num_rows,
    )


def read_events(repo: FeatureRepo, columns: list[str] | None = None) -> pd.DataFrame:
    """The event log with the events appended but not merged yet, as a pandas frame."""
    log = event_log_path(repo)
    parts = [pq.read_table(log, columns=columns)] if log.exists() else []
    parts += [pq.read_table(f, columns=columns) for f in inbox_files(repo)]
    if not parts:
        return EVENT_SCHEMA.empty_table().select(columns or EVENT_SCHEMA.names).to_pandas()
    names = columns or EVENT_SCHEMA.names
    schema = pa.schema([EVENT_SCHEMA.field(n) for n in names])
    return pa.concat_tables([p.select(names).cast(schema) for p in parts]).to_pandas()


def _read_log(log: Path) -> pa.Table:
    """The current event log in the log's schema (empty when there is none yet)."""
    if not log.exists():
        return EVENT_SCHEMA.empty_table()
    from framework.collect.checks import read_table

    table = read_table(log, "Event log")
    if table.num_rows:  # an empty log is fine here: the appended events fill it
        check_frame(table, EVENT_COLUMNS, source=str(log))
    return table.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
