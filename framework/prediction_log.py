"""The prediction log: every online prediction, written off the request path.

``PredictionLog(url)`` appends rows to a table ``prediction_log`` in SQLite
(``sqlite:///path``, the default under the repo) or PostgreSQL
(``postgresql://user@host:port/db``), through SQLAlchemy. ``log(rows)`` only
puts the rows on a queue; a writer thread inserts them in batches, one
transaction per batch. ``close()`` drains the queue before it returns, so a
clean shutdown loses nothing.

Columns: id, logged_at, problem, model_version, entity_key, entity_id,
request_ts, features (JSON: the values served), feature_status, score (null
for an experiment arm without a model), label, experiment, arm.
"""

from __future__ import annotations

import json
import queue
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from framework.errors import ConfigError, StoreError

__all__ = ["PredictionLog", "engine_url", "read_exposures"]


def engine_url(url: str | Path) -> str:
    """A SQLAlchemy URL: ``postgresql://`` uses psycopg 3; a bare path means SQLite."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if text.startswith(("sqlite://", "postgresql+psycopg://")):
        return text
    if "://" in text:
        raise ConfigError(
            f"Unsupported database URL {text!r}: use sqlite:///PATH or postgresql://..."
        )
    return f"sqlite:///{Path(text).resolve()}"


class PredictionLog:
    """Batched, durable logging of predictions (see the module docstring)."""

    def __init__(self, url: str | Path, *, batch: int = 500) -> None:
        import sqlalchemy as sa

        self.url = engine_url(url)
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
            self.table = _table(sa)
            self.table.metadata.create_all(self.engine)
            _upgrade(sa, self.engine, self.table)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"The prediction log at {self.url.split('@')[-1]} is unavailable: {exc}"
            ) from exc
        self.batch = batch
        self.queue: queue.Queue = queue.Queue()
        self.written = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.thread.start()

    def log(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows for writing; returns at once."""
        now = datetime.now(UTC)
        for row in rows:
            self.queue.put(
                {
                    **row,
                    "logged_at": now,
                    "features": json.dumps(row.get("features") or {}, default=str),
                }
            )

    def _run(self) -> None:
        done = False
        while not done:
            rows = [self.queue.get()]
            while len(rows) < self.batch:
                try:
                    rows.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            if rows[-1] is None:
                rows.pop()
                done = True
            if rows:
                self._write(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(self.table.insert(), rows)
            self.written += len(rows)
        except Exception as exc:  # keep serving; the error is reported by close()
            self.error = exc

    def close(self) -> int:
        """Write everything queued, stop the writer, and return the rows written."""
        self.queue.put(None)
        self.thread.join()
        self.engine.dispose()
        if self.error is not None:
            raise StoreError(f"Writing the prediction log failed: {self.error}") from self.error
        return self.written


def read_exposures(url: str | Path, experiment: str):
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
                {"entity_id": "int64", "arm": object, "exposed_at": "datetime64[us, UTC]"}
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


def _table(sa):
    metadata = sa.MetaData()
    return sa.Table(
        "prediction_log",
        metadata,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("problem", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(16), nullable=False),
        sa.Column("entity_key", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.BigInteger, nullable=False),
        sa.Column("request_ts", sa.DateTime(timezone=True)),
        sa.Column("features", sa.Text),
        sa.Column("feature_status", sa.String(16)),
        sa.Column("score", sa.Float),  # null in an experiment arm without a model
        sa.Column("label", sa.Integer),
        sa.Column("experiment", sa.String(64)),
        sa.Column("arm", sa.String(32)),
        sa.Index("prediction_log_experiment", "experiment"),
    )


def _upgrade(sa, engine, table) -> None:
    """Bring a table written by an earlier version up to this schema (columns are only added)."""
    inspector = sa.inspect(engine)
    have = {c["name"]: c for c in inspector.get_columns(table.name)}
    with engine.begin() as conn:
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
