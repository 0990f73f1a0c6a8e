"""The prediction log: every online prediction, written off the request path.

``PredictionLog(url)`` appends rows to a table ``prediction_log`` in SQLite
(``sqlite:///path``, the default under the repo) or PostgreSQL
(``postgresql://user@host:port/db``), through SQLAlchemy. ``log(rows)`` only
encodes the rows and puts them on a queue; a writer thread gathers them for a
quarter of a second and inserts them in one transaction (the service calls
``log`` after the response is sent). ``close()`` drains the queue
before it returns, so a clean shutdown loses nothing. A hard kill (SIGKILL, OOM,
power) loses what is on the queue or in the batch being written: the log is
written after the answer, not ahead of it.

When the database fails, nothing is lost either: the writer appends each batch
it cannot write to a local spool (:mod:`framework.deploy.spool`, fsynced before
the next batch is taken), keeps taking new batches into it (memory stays bounded
however long the outage), retries with backoff (0.5 s doubling to 30 s) and
replays the spool in order once the database answers. Each batch's id is written
in the same transaction as its rows (table ``prediction_log_batches``), so a
replayed batch that had in fact committed is not written twice. ``status()`` is
``degraded: ...`` with the spooled rows meanwhile (``/health`` shows it); a
shutdown during the outage leaves the spool, and the next start replays it.

Columns: id, logged_at, problem, model_version, entity_key, entity_id,
request_ts, features (JSON: the values served), feature_status, score (null
for an experiment arm without a model), label, experiment, arm.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from framework.common.database import (
    engine_url,
    prediction_log_batches_table,
    prediction_log_table,
    widen_entity_columns,
)
from framework.deploy.bulk import BulkInsert
from framework.deploy.spool import Spool
from framework.errors import StoreError

__all__ = ["PredictionLog", "default_spool", "read_exposures"]


class PredictionLog:
    """Batched, durable logging of predictions (see the module docstring)."""

    def __init__(
        self,
        url: str | Path,
        *,
        batch: int = 5_000,
        interval: float = 0.25,
        spool: str | Path | None = None,
        max_backoff: float = 30.0,
    ) -> None:
        import sqlalchemy as sa

        self.url = engine_url(url)
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # No connection yet: a service starts while its database is down, and spools.
        self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        self.table = prediction_log_table(sa)
        self.batches = prediction_log_batches_table(self.table.metadata, sa)
        self._insert = BulkInsert(self.engine, self.table)
        self._schema_ready = False
        self.spool = Spool(spool if spool is not None else default_spool(self.url))
        self.batch = batch  # rows per transaction at most
        self.interval = interval  # seconds a batch may wait to fill: fewer, larger commits
        self.max_backoff = max_backoff
        self._backoff = 0.0
        self._retry_at = 0.0  # monotonic time of the next replay while the spool holds rows
        self.queue: queue.Queue = queue.Queue()
        self.written = 0
        self.write_failures = 0
        self.error: BaseException | None = None  # the last failure, while degraded
        self.thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.thread.start()

    def log(
        self,
        rows: list[dict[str, Any]],
        features: pd.DataFrame | None = None,
        columns: list[str] | None = None,
    ) -> None:
        """Encode rows and queue them for writing (the insert happens on the writer thread).

        ``features``, a pandas frame with a row per logged row, gives each row's
        ``request_ts`` (its ``event_timestamp`` column) and ``features`` (its
        ``columns``, default all). The service calls this after the response is sent.
        """
        expanded = _expand(rows, features, columns, datetime.now(UTC))
        self.queue.put(self._insert.params(expanded))

    def status(self) -> str:
        """``ok``, or ``degraded: ...`` with the rows spooled while the database fails."""
        if not self.spool.pending:
            return "ok"
        reason = f"{type(self.error).__name__}: {self.error}" if self.error else "not yet replayed"
        where = self.url.split("@")[-1]
        return (
            f"degraded: {self.spool.rows:,} rows spooled at {self.spool.path} while the "
            f"database at {where} fails ({reason}); they are replayed when it answers"
        )

    def _run(self) -> None:
        # Only driver calls here (executemany and commit, mostly outside the GIL): the
        # Python work of encoding was done by ``log``, so requests are not held up.
        done = False
        if self.spool.pending:  # left by an earlier run: replay it first
            self._replay()
        while not done:
            params, done = self._gather()
            if params:
                self._deliver(uuid.uuid4().hex, params)
            if self.spool.pending and time.monotonic() >= self._retry_at:
                self._replay()
        if self.spool.pending:  # one last try; what stays is replayed by the next start
            self._replay()

    def _gather(self) -> tuple[list[tuple[Any, ...]], bool]:
        """The next batch of queued rows (waiting at most until the next replay is due
        while rows are spooled), and whether the log was closed."""
        timeout = max(self._retry_at - time.monotonic(), 0.01) if self.spool.pending else None
        try:
            first = self.queue.get(timeout=timeout)
        except queue.Empty:
            return [], False
        items = [first]
        if first is not None:
            time.sleep(self.interval)  # let a batch gather, without a wake-up per request
        size = len(first or ())
        while items[-1] is not None and size < self.batch:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
            size += len(items[-1] or ())
        done = items[-1] is None
        if done:
            items.pop()
        return [row for item in items for row in item], done

    def _deliver(self, batch: str, params: list[tuple[Any, ...]]) -> None:
        """Write a batch, or spool it: behind older spooled batches (order is kept), or
        when the write fails."""
        if not self.spool.pending and self._write(batch, params):
            return
        self.spool.append(batch, params)

    def _write(self, batch: str, params: list[tuple[Any, ...]]) -> bool:
        """One transaction: the rows and the batch's id, unless that id is already in the
        database (a replay of a batch that had committed). False when it failed."""
        import sqlalchemy as sa

        try:
            if not self._schema_ready:
                self.table.metadata.create_all(self.engine)
                _upgrade(sa, self.engine, self.table)
                self._schema_ready = True
            with self.engine.begin() as conn:
                seen = conn.execute(
                    sa.select(self.batches.c.batch_id).where(self.batches.c.batch_id == batch)
                ).first()
                if seen is None:
                    self._insert.write(conn, params)
                    conn.execute(
                        self.batches.insert(),
                        {"batch_id": batch, "rows": len(params), "written_at": datetime.now(UTC)},
                    )
            if seen is None:
                self.written += len(params)
            return True
        except Exception as exc:  # any database failure: spool and retry, keep serving
            self.error = exc
            self.write_failures += 1
            return False

    def _replay(self) -> None:
        """Write every spooled batch in order; on a failure, back off (doubling, up to
        ``max_backoff``) and try again later."""
        for batch, params in self.spool.replay():
            if not self._write(batch, params):
                self._backoff = min(max(self._backoff * 2, 0.5), self.max_backoff)
                self._retry_at = time.monotonic() + self._backoff
                return
        self.spool.clear()
        self._backoff, self.error = 0.0, None

    def close(self) -> int:
        """Write everything queued, stop the writer, and return the rows written. Rows the
        database still refuses stay in the spool, for the next start to replay."""
        self.queue.put(None)
        self.thread.join()
        self.engine.dispose()
        self.spool.close()
        return self.written


def default_spool(url: str) -> Path:
    """Where a log spools by default (a prefix: each process adds its pid): beside a
    SQLite file; else in the working folder (the service passes a path in the repo's
    data folder, see ``FeatureRepo.prediction_spool``)."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///") + ".spool")
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path.cwd() / f".prediction-log-{digest}.spool"


def _missing_as_none(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    return value


def _expand(
    rows: list[dict[str, Any]],
    features: pd.DataFrame | None,
    columns: list[str] | None,
    logged_at: datetime,
) -> list[dict[str, Any]]:
    """The table rows of one ``log`` call (see ``PredictionLog.log``)."""
    out = [{**row, "logged_at": logged_at} for row in rows]
    if features is None:
        for row in out:
            row["features"] = json.dumps(row.get("features") or {}, default=str)
        return out
    names = [n for n in (columns or features.columns) if n != "event_timestamp"]
    columns = [features[n].tolist() for n in names]
    encoded = [
        json.dumps(dict(zip(names, [_missing_as_none(v) for v in row], strict=True)), default=str)
        for row in zip(*columns, strict=True)
    ]
    times = features["event_timestamp"].tolist() if "event_timestamp" in features else None
    seen: dict[Any, datetime] = {}
    for i, row in enumerate(out):
        row["features"] = encoded[i]
        if times is not None:
            t = times[i]
            if t not in seen:
                seen[t] = t.to_pydatetime()
            row["request_ts"] = seen[t]
    return out


def read_exposures(url: str | Path, experiment: str) -> pd.DataFrame:
    """Per entity and arm, the first logged exposure to ``experiment``: a pandas frame
    (entity_id, arm, exposed_at) with exposed_at the request's feature time."""
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(engine_url(url))
    query = sa.text(
        "SELECT entity_id, arm, MIN(request_ts) AS exposed_at FROM prediction_log "
        "WHERE experiment = :name GROUP BY entity_id, arm"
    )
    try:
        if not sa.inspect(engine).has_table("prediction_log"):
            frame = pd.DataFrame({"entity_id": [], "arm": [], "exposed_at": []})
            return frame.astype(
                {"entity_id": object, "arm": object, "exposed_at": "datetime64[us, UTC]"}
            )
        with engine.connect() as conn:
            frame = pd.read_sql(query, conn, params={"name": experiment})
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"Reading the prediction log at {engine.url!r} failed: {exc}") from exc
    finally:
        engine.dispose()
    frame["exposed_at"] = pd.to_datetime(frame["exposed_at"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    return frame


def _upgrade(sa: Any, engine: Any, table: Any) -> None:
    """Bring a table written by an earlier version up to this schema (columns are only added)."""
    inspector = sa.inspect(engine)
    have = {c["name"]: c for c in inspector.get_columns(table.name)}
    with engine.begin() as conn:
        widen_entity_columns(sa, conn, engine, table.name, have, ("entity_key", "entity_id"))
        if "experiment" not in have:
            conn.execute(sa.text("ALTER TABLE prediction_log ADD COLUMN experiment VARCHAR(64)"))
            conn.execute(
                sa.text(
                    "CREATE INDEX IF NOT EXISTS prediction_log_experiment "
                    "ON prediction_log (experiment)"
                )
            )
        if have["score"]["nullable"]:
            return
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE prediction_log ALTER COLUMN score DROP NOT NULL"))
        else:  # SQLite cannot drop a constraint: copy into a new table, in this transaction
            conn.execute(sa.text("DROP INDEX IF EXISTS prediction_log_experiment"))
            conn.execute(sa.text("ALTER TABLE prediction_log RENAME TO prediction_log_old"))
            table.create(conn)
            names = ", ".join(c.name for c in table.columns)
            conn.execute(
                sa.text(
                    f"INSERT INTO prediction_log ({names}) SELECT {names} FROM prediction_log_old"
                )
            )
            conn.execute(sa.text("DROP TABLE prediction_log_old"))
