"""The record of job runs, read: one row per job and tick, in the project's database.

The table ``job_runs`` lives beside the predictions (SQLite by default,
PostgreSQL in production): id, job, scheduled_for (the tick, UTC), trigger
(schedule, catch_up, external, backfill, manual), status, attempts,
started_at, ended_at, error, produced (JSON: what the run made), owner
(host:pid of the process running it) and heartbeat_at.

A unique constraint on (job, scheduled_for) is the lock: of two schedulers
that see the same tick, one inserts the row and runs the job, the other's
insert fails and it goes on. A running row carries its owner's heartbeat;
a row whose owner stopped (its process is gone on this host, or no
heartbeat for ``lease``) is marked ``crashed``, never left ``running``.

Statuses: running, succeeded, failed (after its retries), skipped (an
upstream job did not succeed at that tick), missed (a tick the scheduler
did not see in time, with missed='skip'), crashed, abandoned (stopped on
purpose: a second SIGTERM, or a stop during the backoff before a retry).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from framework.common.database import engine_url, job_runs_table
from framework.errors import StoreError

__all__ = ["FINAL", "LEASE", "JobRun", "RunLog", "naive", "owner_id"]

FINAL = ("succeeded", "failed", "skipped", "missed", "crashed", "abandoned")
LEASE = timedelta(minutes=5)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None)


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts.replace(tzinfo=UTC)


@dataclass(frozen=True)
class JobRun:
    id: str
    job: str
    scheduled_for: datetime
    trigger: str
    status: str
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    produced: dict[str, Any]
    owner: str | None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job": self.job,
            "scheduled_for": self.scheduled_for.isoformat(),
            "trigger": self.trigger,
            "status": self.status,
            "attempts": self.attempts,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "seconds": self.seconds,
            "error": self.error,
            "produced": self.produced,
            "owner": self.owner,
        }


class RunLog:
    """Reads ``job_runs`` in the database at ``url`` (a SQLite path or URL, or
    postgresql://...), and marks ``crashed`` the runs whose owner stopped (``reap``): what
    the pages, the metrics and the CLI need. The scheduler writes through ``RunStore``
    (``framework.schedule.job_runs``)."""

    def __init__(self, url: str | Path) -> None:
        import sqlalchemy as sa

        self.url = engine_url(url)
        self.where = self.url.split("@")[-1]
        args = {"timeout": 60} if self.url.startswith("sqlite") else {}
        if self.url.startswith("sqlite"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(self.url, pool_pre_ping=True, connect_args=args)
        self.table = job_runs_table(sa)
        self.owner = owner_id()
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._beating: threading.Event | None = None
        try:
            self.table.metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.SQLAlchemyError as exc:
            self._race_or_raise(exc, "create the table job_runs")

    def _race_or_raise(self, exc: Exception, what: str) -> None:
        import sqlalchemy as sa

        # two processes creating the table at once: the other one made it
        if sa.inspect(self.engine).has_table("job_runs"):
            return
        raise StoreError(f"Cannot {what} in {self.where}: {exc}") from exc

    def close(self) -> None:
        if self._beating is not None:
            self._beating.set()
        self.engine.dispose()

    def reap(self, lease: timedelta = LEASE) -> int:
        """Mark ``crashed`` the running rows whose owner stopped: its process is gone on
        this host, or it gave no heartbeat for ``lease``. Returns how many."""
        import sqlalchemy as sa

        t = self.table
        now = datetime.now(UTC).replace(tzinfo=None)
        host = socket.gethostname()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.id, t.c.owner, t.c.heartbeat_at).where(t.c.status == "running")
            ).all()
        dead = []
        for run_id, owner, beat in rows:
            name, _, pid = (owner or "").rpartition(":")
            gone = name == host and pid.isdigit() and not _alive(int(pid))
            stale = beat is None or now - beat > lease
            if (gone or stale) and run_id not in self._held:
                why = "its process is gone" if gone else f"no heartbeat since {beat}"
                dead.append((run_id, f"{owner} stopped without finishing this run ({why})"))
        for run_id, why in dead:
            with self.engine.begin() as conn:
                conn.execute(
                    t.update()
                    .where(t.c.id == run_id, t.c.status == "running")
                    .values(status="crashed", ended_at=now, error=why)
                )
        return len(dead)

    # --- reads --------------------------------------------------------------------

    def _runs(
        self, where: Any = None, limit: int | None = None, newest: bool = True
    ) -> list[JobRun]:
        import sqlalchemy as sa

        t = self.table
        query = sa.select(t)
        if where is not None:
            query = query.where(where)
        order = t.c.scheduled_for.desc() if newest else t.c.scheduled_for.asc()
        query = query.order_by(order, t.c.started_at.desc())
        if limit is not None:
            query = query.limit(limit)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"Cannot read job_runs in {self.where}: {exc}") from exc
        return [
            JobRun(
                id=r["id"],
                job=r["job"],
                scheduled_for=r["scheduled_for"].replace(tzinfo=UTC),
                trigger=r["trigger"],
                status=r["status"],
                attempts=r["attempts"],
                started_at=_aware(r["started_at"]),
                ended_at=_aware(r["ended_at"]),
                error=r["error"],
                produced=json.loads(r["produced"]) if r["produced"] else {},
                owner=r["owner"],
            )
            for r in rows
        ]

    def get(self, job: str, tick: datetime) -> JobRun | None:
        t = self.table
        found = self._runs((t.c.job == job) & (t.c.scheduled_for == naive(tick)))
        return found[0] if found else None

    def runs(self, job: str | None = None, limit: int | None = 50) -> list[JobRun]:
        """Newest tick first."""
        return self._runs(None if job is None else self.table.c.job == job, limit)

    def latest_tick(self, job: str) -> datetime | None:
        """The latest tick the schedule has seen for ``job`` (manual runs do not count)."""
        import sqlalchemy as sa

        t = self.table
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.max(t.c.scheduled_for)).where(
                    t.c.job == job, t.c.trigger != "manual"
                )
            ).scalar()
        return _aware(value)

    def last_success(self) -> dict[str, datetime]:
        """Per job, when its latest successful run ended."""
        import sqlalchemy as sa

        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.job, sa.func.max(t.c.ended_at))
                .where(t.c.status == "succeeded")
                .group_by(t.c.job)
            ).all()
        return {job: ended.replace(tzinfo=UTC) for job, ended in rows if ended is not None}

    def counts(self) -> dict[tuple[str, str], int]:
        """Runs per (job, status)."""
        import sqlalchemy as sa

        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.job, t.c.status, sa.func.count()).group_by(t.c.job, t.c.status)
            ).all()
        return {(job, status): int(n) for job, status, n in rows}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
