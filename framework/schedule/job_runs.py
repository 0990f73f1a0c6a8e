"""The scheduler's writes to the record of job runs: a run claims its (job, tick) row,
renews its heartbeat while it runs, and records how it ended (the table and its reads:
``framework.common.job_log``).

A unique constraint on (job, scheduled_for) is the lock: of two schedulers that see
the same tick, one inserts the row and runs the job, the other's insert fails and it
goes on.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from framework.common.job_log import FINAL, JobRun, RunLog, naive
from framework.errors import StoreError

__all__ = ["FINAL", "HEARTBEAT_SECONDS", "JobRun", "RunStore"]

HEARTBEAT_SECONDS = 15.0


class RunStore(RunLog):
    """Reads and writes ``job_runs`` (see ``RunLog`` for the reads)."""

    def claim(
        self,
        job: str,
        tick: datetime,
        trigger: str,
        *,
        replace: bool = False,
        over: JobRun | None = None,
    ) -> str | None:
        """Insert a running row for (job, tick); None when the tick has a row already.

        ``replace``: take over a finished row instead (a rerun). The takeover is a
        compare-and-set on the row as read (its id and status): ``over`` when the caller
        decided on a row it read, else the row read here. Of two processes retrying the
        same finished row, one takes it; the other gets None, also when the first has
        already finished again."""
        import sqlalchemy as sa

        now = datetime.now(UTC).replace(tzinfo=None)
        run_id = str(uuid.uuid4())
        values = {
            "id": run_id,
            "status": "running",
            "trigger": trigger,
            "attempts": 1,
            "started_at": now,
            "ended_at": None,
            "error": None,
            "produced": None,
            "owner": self.owner,
            "heartbeat_at": now,
        }
        t = self.table
        try:
            with self.engine.begin() as conn:
                conn.execute(t.insert().values(job=job, scheduled_for=naive(tick), **values))
        except sa.exc.IntegrityError:
            if not replace:
                return None
            seen = over if over is not None else self.get(job, tick)
            if seen is None or seen.status == "running":
                return None
            with self.engine.begin() as conn:
                done = conn.execute(
                    t.update()
                    .where(
                        t.c.job == job,
                        t.c.scheduled_for == naive(tick),
                        t.c.id == seen.id,
                        t.c.status == seen.status,
                    )
                    .values(**values)
                ).rowcount
            if not done:
                return None
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"Cannot record a run of {job} in {self.where}: {exc}") from exc
        with self._lock:
            self._held.add(run_id)
        return run_id

    def record(self, job: str, tick: datetime, trigger: str, status: str, error: str) -> str | None:
        """A finished row without a run (missed, skipped); None when the tick has one."""
        run_id = self.claim(job, tick, trigger)
        if run_id is not None:
            self.finish(run_id, status, error=error, attempts=0)
        return run_id

    def retrying(self, run_id: str, attempts: int, error: str) -> None:
        self._update(run_id, attempts=attempts, error=error)

    def finish(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        produced: dict[str, Any] | None = None,
        attempts: int | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "status": status,
            "ended_at": datetime.now(UTC).replace(tzinfo=None),
            "error": error,
            "produced": json.dumps(produced or {}, default=str),
        }
        if attempts is not None:
            values["attempts"] = attempts
        try:
            for wait in (1.0, 2.0, 4.0, 8.0, None):  # a database that blinks gets 15 s
                try:
                    self._update(run_id, **values)
                    return
                except StoreError:
                    if wait is None:
                        raise
                    time.sleep(wait)
        finally:  # recorded, or not recordable: either way no longer renewed as running
            with self._lock:
                self._held.discard(run_id)

    def _update(self, run_id: str, **values: Any) -> None:
        import sqlalchemy as sa

        t = self.table
        try:
            with self.engine.begin() as conn:
                conn.execute(t.update().where(t.c.id == run_id).values(**values))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"Cannot update run {run_id} in {self.where}: {exc}") from exc

    def beat(self) -> None:
        """Renew the heartbeat of every run this process holds."""
        with self._lock:
            held = list(self._held)
        if held:
            t = self.table
            with self.engine.begin() as conn:
                conn.execute(
                    t.update()
                    .where(t.c.id.in_(held), t.c.status == "running")
                    .values(heartbeat_at=datetime.now(UTC).replace(tzinfo=None))
                )

    def start_heartbeat(self, every: float = HEARTBEAT_SECONDS) -> None:
        """A daemon thread renewing this process's heartbeats (until ``close``)."""
        if self._beating is not None:
            return
        stop = self._beating = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                # a missed beat is retried at the next one; the lease is long
                with contextlib.suppress(Exception):
                    self.beat()

        threading.Thread(target=loop, name="job-heartbeat", daemon=True).start()
