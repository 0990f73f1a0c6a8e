"""Collect data: append events durably to the offline log of their source.

Each event source of the repo (:class:`framework.declare.repo.EventSource`) has
a parquet log, its source's file. New events reach it in two steps:

1. ``append(repo, table, source=NAME)`` checks the rows against the source's
   contract (declared, or recorded at ``apply``; a bad table is refused whole,
   with a report of every violation), then writes them as one new file in the
   log's inbox, ``<log>.inbox/``: written to a temporary name, flushed to disk
   (fsync), then renamed. Once ``append`` returns, the events survive a crash.
   ``POST /events`` and ``lifecycle events ingest`` both go through it.
2. ``compact(repo)`` (run by ``lifecycle events ingest``, ``apply`` and
   ``materialize``, under the repo's writer lock) merges the inbox into the log:
   the merged file is written beside the log and renamed over it, and only then
   are the inbox files removed. The merged log records the names of the inbox
   files it took in, so after a crash between the rename and the removal those
   files are dropped, not merged twice.

Duplicates are data: two identical rows are two events (two equal purchases on
one day). Re-sending is made safe in one of two ways:

- a source whose contract declares an ``event_id`` keeps one row per id: an id
  sent again with the same content is kept once, with other content refused;
- a batch sent with a ``batch_id`` (``Idempotency-Key`` on ``POST /events``,
  ``--batch-id`` on ``lifecycle events ingest``) is taken once: the same id with
  the same rows again is a no-op, with other rows refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from framework.collect.checks import ARROW_TYPES, check_events, check_frame
from framework.declare.contracts import SourceContract
from framework.declare.repo import EventSource, FeatureRepo
from framework.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Appended",
    "CompactResult",
    "append",
    "append_batch",
    "compact",
    "conform",
    "event_log_path",
    "inbox_files",
    "latest_event_time",
    "log_schema",
    "read_events",
]

_MERGED = b"lifecycle.merged"  # log metadata: inbox files the last compaction took in
_BATCH = b"lifecycle.batch"  # inbox file metadata: batch id and content hash


@dataclass(frozen=True)
class Appended:
    """What ``append_batch`` took: rows, and the inbox file holding them (None when no
    row was new, or a re-sent batch is already merged into the log)."""

    rows: int
    file: Path | None
    table: pa.Table | None = None  # the rows as stored


@dataclass(frozen=True)
class CompactResult:
    """What ``compact`` merged: inbox files, new rows, rows dropped as re-sent, total."""

    files: int
    added: int
    duplicates: int
    total: int
    names: tuple[str, ...] = ()  # the inbox files merged


def log_schema(contract: SourceContract) -> pa.Schema:
    return pa.schema([(c, ARROW_TYPES[k]) for c, k in (contract.columns or {}).items()])


def event_log_path(repo: FeatureRepo, source: str | None = None) -> Path:
    """The parquet log of an event source (the only one when ``source`` is None)."""
    return Path(repo.event_source(source).path)


def _inbox(log: Path) -> Path:
    return log.with_name(log.name + ".inbox")


def inbox_files(repo: FeatureRepo, source: str | None = None) -> list[Path]:
    """Appended files not yet merged into the log(s), oldest first."""
    sources = [repo.event_source(source)] if source else list(repo.event_sources.values())
    out: list[Path] = []
    for src in sources:
        inbox = _inbox(Path(src.path))
        out += sorted(inbox.glob("*.parquet")) if inbox.is_dir() else []
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(table: pa.Table, path: Path, *, exclusive: bool = False) -> bool:
    """Write ``table`` to ``path`` (temp file, fsync, rename). With ``exclusive``, an
    existing ``path`` is kept and False returned."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # fails if it exists: two senders of one batch
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _digest(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema.remove_metadata()) as writer:
        writer.write_table(table.replace_schema_metadata(None))
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _refuse_conflicting_ids(table: pa.Table, id_col: str, origin: str) -> pa.Table:
    """Keep one row per event id; refuse ids sent with different contents."""
    import pandas as pd

    frame = table.to_pandas()
    dup = frame.duplicated(keep=False) if len(frame) else pd.Series([], dtype=bool)
    same_id = frame[id_col].duplicated(keep=False)
    conflicting = frame[same_id & ~dup][id_col]
    if len(conflicting):
        ids = sorted(set(conflicting.astype(str)))[:5]
        raise DataError(
            f"{origin}: event id(s) {ids} appear more than once with different contents; "
            f"an id ({id_col!r}) names one event. Fix the sender or give new events new ids."
        )
    keep = ~frame.duplicated()
    return table.filter(pa.array(keep.to_numpy())) if not keep.all() else table


def conform(
    table: pa.Table, origin: str, contract: SourceContract, source: EventSource
) -> pa.Table:
    """Check ``table`` against ``contract`` and cast it to the log's exact schema."""
    columns = contract.column_list(source.timestamp_field)
    check_frame(table, columns, source=origin, nulls=False)
    schema = log_schema(contract)
    arrays = []
    for field in schema:
        column = table.column(field.name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        try:
            arrays.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(
                f"{origin}: column {field.name!r} cannot be stored as {field.type}: {exc}"
            ) from exc
    out = pa.Table.from_arrays(arrays, schema=schema)
    check_events(
        out, contract, source=origin, timestamp_field=source.timestamp_field, keys=source.keys
    )
    if contract.event_id:
        out = _refuse_conflicting_ids(out, contract.event_id, origin)
    return out


def _known_ids(log: Path, schema: pa.Schema, id_col: str, table: pa.Table) -> pa.Table:
    """Rows of the log and its inbox whose id is one of ``table``'s."""
    import duckdb

    paths = [p for p in [log, *sorted(_inbox(log).glob("*.parquet"))] if p.exists()]
    if not paths:
        return schema.empty_table()
    con = duckdb.connect()
    try:
        con.register("incoming", table.select([id_col]))
        files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
        q = '"' + id_col.replace('"', '""') + '"'
        return con.sql(
            f"SELECT * FROM read_parquet([{files}], union_by_name = true) "
            f"WHERE {q} IN (SELECT {q} FROM incoming)"
        ).to_arrow_table()
    finally:
        con.close()


def _drop_logged_ids(rows: pa.Table, log: Path, contract: SourceContract, origin: str) -> pa.Table:
    """Drop rows whose id is logged with the same content; refuse other contents."""
    id_col = contract.event_id or ""
    known = _known_ids(log, rows.schema, id_col, rows)
    if not known.num_rows:
        return rows
    known = known.select(rows.schema.names).cast(rows.schema)
    both = pa.concat_tables([known, rows])
    _refuse_conflicting_ids(both, id_col, origin)
    logged = set(known.column(id_col).to_pylist())
    fresh = pc.invert(
        pc.is_in(rows.column(id_col), pa.array(list(logged), rows.schema.field(id_col).type))
    )
    return rows.filter(fresh)


def append(
    repo: FeatureRepo,
    table: pa.Table,
    *,
    source: str | None = None,
    origin: str = "events",
    batch_id: str | None = None,
) -> int:
    """Check ``table`` and write it durably to its source's inbox (see the module
    docstring); return the number of rows taken (a replayed batch: the same number)."""
    return append_batch(repo, table, source=source, origin=origin, batch_id=batch_id).rows


def append_batch(
    repo: FeatureRepo,
    table: pa.Table,
    *,
    source: str | None = None,
    origin: str = "events",
    batch_id: str | None = None,
) -> Appended:
    """``append``, telling also which inbox file holds the rows."""
    src = repo.event_source(source)
    contract = repo.source_contract(src)
    rows = conform(table, origin, contract, src)
    log = Path(src.path)
    inbox = _inbox(log)
    inbox.mkdir(parents=True, exist_ok=True)
    if contract.event_id:
        rows = _drop_logged_ids(rows, log, contract, origin)
    if batch_id is not None:
        digest = _digest(rows)
        key = hashlib.sha256(batch_id.encode()).hexdigest()[:32]
        seen = _batch_seen(log, key)
        path = inbox / f"batch-{key}.parquet"
        if seen is None:
            meta = {_BATCH: json.dumps({"id": batch_id, "digest": digest}).encode()}
            if _write_durably(rows.replace_schema_metadata(meta), path, exclusive=True):
                return Appended(rows.num_rows, path, rows)
            seen = _batch_seen(log, key)
        if seen != digest:
            raise DataError(
                f"{origin}: batch {batch_id!r} was taken before with other rows; a batch id "
                "names one batch. Send new rows with a new id."
            )
        return Appended(rows.num_rows, path if path.exists() else None, rows)
    if not rows.num_rows:
        return Appended(0, None)
    # Names start with the time of arrival: compaction merges files in that order, so
    # events of equal time keep the order in which they arrived (as the online state).
    path = inbox / f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex}.parquet"
    _write_durably(rows, path)
    return Appended(rows.num_rows, path, rows)


def _batches_file(log: Path) -> Path:
    return log.with_name(log.name + ".batches")


def _batch_seen(log: Path, key: str) -> str | None:
    """The content digest of batch ``key`` if it was taken (in the inbox or merged)."""
    pending = _inbox(log) / f"batch-{key}.parquet"
    if pending.exists():
        meta = pq.read_schema(pending).metadata or {}
        return json.loads(meta.get(_BATCH, b"{}")).get("digest")
    record = _batches_file(log)
    if record.exists():
        for line in record.read_text().splitlines():
            name, _, digest = line.partition(" ")
            if name == key:
                return digest
    return None


def compact(repo: FeatureRepo, *, locked: bool = False) -> CompactResult:
    """Merge every source's inbox into its log (see the module docstring). Takes the
    repo lock unless the caller holds it (``locked=True``)."""
    if not locked:
        with repo.lock():
            return compact(repo, locked=True)
    files = added = duplicates = total = 0
    names: tuple[str, ...] = ()
    for src in repo.event_sources.values():
        r = _compact_source(repo, src)
        files, added = files + r.files, added + r.added
        duplicates, total = duplicates + r.duplicates, total + r.total
        names += r.names
    return CompactResult(files=files, added=added, duplicates=duplicates, total=total, names=names)


def _compact_source(repo: FeatureRepo, src: EventSource) -> CompactResult:
    log = Path(src.path)
    inbox = _inbox(log)
    files = sorted(inbox.glob("*.parquet")) if inbox.is_dir() else []
    if not files:
        rows = pq.read_metadata(log).num_rows if log.exists() else 0
        return CompactResult(files=0, added=0, duplicates=0, total=rows)
    contract = repo.source_contract(src)
    schema = log_schema(contract)
    old = _read_log(log, schema)
    merged_before = set(json.loads((old.schema.metadata or {}).get(_MERGED, b"[]")))
    stale = [f for f in files if f.name in merged_before]  # merged before a crash
    fresh = [f for f in files if f.name not in merged_before]
    new = pa.concat_tables(
        [pq.read_table(f).select(schema.names).cast(schema) for f in fresh]
        or [schema.empty_table()]
    )
    if new.num_rows:
        order = pc.sort_indices(new, [(src.timestamp_field, "ascending")])  # stable
        new = new.take(order)
    duplicates = 0
    if contract.event_id and new.num_rows:
        id_col = contract.event_id
        logged = pc.is_in(new.column(id_col), old.column(id_col).combine_chunks())
        keep = pc.invert(logged)
        deduped = new.filter(keep)
        first = ~deduped.select([id_col]).to_pandas().duplicated().to_numpy()
        deduped = deduped.filter(pa.array(first))
        duplicates = new.num_rows - deduped.num_rows
        new = deduped
    merged = pa.concat_tables([old.replace_schema_metadata(None), new])
    names = json.dumps([f.name for f in fresh]).encode()
    if fresh:
        _write_durably(merged.replace_schema_metadata({_MERGED: names}), log)
    batch_lines = []
    for f in fresh:
        if f.name.startswith("batch-"):
            meta = pq.read_schema(f).metadata or {}
            digest = json.loads(meta.get(_BATCH, b"{}")).get("digest", "")
            batch_lines.append(f"{f.name[6:-8]} {digest}\n")
    if batch_lines:
        with open(_batches_file(log), "a") as handle:
            handle.writelines(batch_lines)
            handle.flush()
            os.fsync(handle.fileno())
    for f in [*stale, *fresh]:
        f.unlink(missing_ok=True)
    _fsync_dir(inbox)
    return CompactResult(
        files=len(files),
        added=new.num_rows,
        duplicates=duplicates,
        total=merged.num_rows,
        names=tuple(f.name for f in files),
    )


def read_events(
    repo: FeatureRepo, columns: list[str] | None = None, source: str | None = None
) -> pd.DataFrame:
    """An event log with the events appended but not merged yet, as a pandas frame."""
    src = repo.event_source(source)
    schema = log_schema(repo.source_contract(src))
    log = Path(src.path)
    names = columns or schema.names
    sub = pa.schema([schema.field(n) for n in names])
    parts = [pq.read_table(log, columns=names)] if log.exists() else []
    parts += [pq.read_table(f, columns=names) for f in inbox_files(repo, src.name)]
    if not parts:
        return sub.empty_table().to_pandas()
    return pa.concat_tables([p.select(names).cast(sub) for p in parts]).to_pandas()


def latest_event_time(repo: FeatureRepo) -> datetime:
    """The data's present: the latest event time in the repo's event logs (appended
    events included). What ``--at data`` means, for a repo whose data is in the past."""
    latest = None
    for src in repo.event_sources.values():
        log = Path(src.path)
        files = ([log] if log.exists() else []) + list(inbox_files(repo, src.name))
        for f in files:
            column = pq.read_table(f, columns=[src.timestamp_field]).column(0)
            if len(column) and column.null_count < len(column):
                value = pc.max(column).as_py()
                if value is not None and value.tzinfo is None:
                    value = value.replace(tzinfo=UTC)
                latest = value if latest is None or value > latest else latest
    if latest is None:
        raise DataError(
            f"The repo {repo.path} holds no events yet, so it has no data time: ingest events "
            "(lifecycle events ingest) or give a time."
        )
    return latest.astimezone(UTC)


def _read_log(log: Path, schema: pa.Schema) -> pa.Table:
    """The current log in the log's schema (empty when there is none yet)."""
    if not log.exists():
        return schema.empty_table()
    from framework.collect.checks import read_table

    table = read_table(log, "Event log")
    meta = table.schema.metadata or {}
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise DataError(
            f"Event log {log} is missing column(s) {missing}; it has {table.column_names}."
        )
    out = table.select(schema.names).cast(schema)
    return out.replace_schema_metadata({k: v for k, v in meta.items() if k == _MERGED})
