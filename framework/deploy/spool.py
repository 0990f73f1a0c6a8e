"""A local, append-only spool for prediction-log batches the database did not take.

Each line is one batch: ``{"batch": ID, "rows": [[value, ...], ...]}`` (datetimes as
``{"$dt": ISO}``), appended and flushed to disk (``fsync``) before the writer takes
the next batch. Replay reads it line by line (memory bounded by one batch), and
the file is removed once every batch in it is in the database. Batches carry an
id that the database records in the same transaction as their rows, so a batch
that had in fact committed before its connection failed is not written twice.

Each log spools to a file of its own, ``<prefix>.<pid>-<id>``, which it holds under
an exclusive ``flock`` for its lifetime (several service workers share a prefix).
On start, a spool takes over the files of processes that are gone (a file whose
lock it can get): their batches are moved into its own file, oldest first, so a
restart replays what an earlier run left.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from framework.errors import StoreError

__all__ = ["Spool"]

_OWNER = re.compile(r"[0-9]+-[0-9a-f]{8}")  # pid-instance: the suffix of a spool file


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "$dt" in value:
        return datetime.fromisoformat(value["$dt"])
    return value


class Spool:
    """Batches waiting for the database, in the order they were taken."""

    def __init__(self, prefix: str | Path) -> None:
        self.prefix = Path(prefix)
        # one file per log object (a process may hold several, one per database)
        self.path = self.prefix.with_name(
            f"{self.prefix.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self.rows = 0  # rows waiting (counted on append and on open)
        self.batches = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._own = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open
            fcntl.flock(self._own, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise StoreError(
                f"The prediction-log spool {self.path} cannot be opened: {exc}"
            ) from exc
        self._adopt_orphans()
        for _, rows in self.replay():
            self.rows += len(rows)
            self.batches += 1

    def _adopt_orphans(self) -> None:
        """Move the batches of spool files whose processes are gone into this one."""
        for other in sorted(self.prefix.parent.glob(f"{self.prefix.name}.*")):
            if other == self.path or not _OWNER.fullmatch(other.name.rsplit(".", 1)[-1]):
                continue
            with open(other, "a+", encoding="utf-8") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live process's spool
                handle.seek(0)
                lines = [line for line in handle if line.endswith("\n")]
                if lines:
                    self._own.writelines(lines)
                    self._own.flush()
                    os.fsync(self._own.fileno())
                other.unlink()

    @property
    def pending(self) -> bool:
        return self.batches > 0

    def append(self, batch: str, rows: list[tuple[Any, ...]]) -> None:
        """Append one batch durably (flushed and fsynced before it returns)."""
        line = json.dumps({"batch": batch, "rows": [[_encode(v) for v in r] for r in rows]})
        try:
            self._own.write(line + "\n")
            self._own.flush()
            os.fsync(self._own.fileno())
        except OSError as exc:
            raise StoreError(
                f"The prediction-log spool {self.path} cannot be written: {exc}"
            ) from exc
        self.rows += len(rows)
        self.batches += 1

    def replay(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """Each spooled batch, oldest first. A last line cut short by a crash (never
        acknowledged to anyone) is skipped."""
        with open(self.path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a torn last line
                yield record["batch"], [tuple(_decode(v) for v in r) for r in record["rows"]]

    def clear(self) -> None:
        """Every spooled batch is in the database: start afresh (the file stays, empty,
        and locked: it is this process's)."""
        self._own.truncate(0)
        self._own.flush()
        os.fsync(self._own.fileno())
        self.rows = self.batches = 0

    def close(self) -> None:
        """Release the file: removed when empty, else left for the next start to adopt."""
        empty = self.batches == 0
        if empty:
            self.path.unlink(missing_ok=True)
        fcntl.flock(self._own, fcntl.LOCK_UN)
        self._own.close()
