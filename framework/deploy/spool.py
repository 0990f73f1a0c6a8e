"""A local, append-only spool for prediction-log batches the database did not take.

Each line is one batch: ``{"batch": ID, "rows": [[value, ...], ...]}`` (datetimes as
``{"$dt": ISO}``), appended and flushed to disk (``fsync``) before the writer takes
the next batch. Replay reads it line by line (memory bounded by one batch), and
the file is removed once every batch in it is in the database. Batches carry an
id that the database records in the same transaction as their rows, so a batch
that had in fact committed before its connection failed is not written twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from framework.errors import StoreError

__all__ = ["Spool"]


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

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows = 0  # rows waiting (counted on append and on open)
        self.batches = 0
        if self.path.exists():
            for _, rows in self.replay():
                self.rows += len(rows)
                self.batches += 1

    @property
    def pending(self) -> bool:
        return self.batches > 0

    def append(self, batch: str, rows: list[tuple[Any, ...]]) -> None:
        """Append one batch durably (flushed and fsynced before it returns)."""
        line = json.dumps({"batch": batch, "rows": [[_encode(v) for v in r] for r in rows]})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(line + "\n")
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise StoreError(
                f"The prediction-log spool {self.path} cannot be written: {exc}"
            ) from exc
        self.rows += len(rows)
        self.batches += 1

    def replay(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """Each spooled batch, oldest first. A last line cut short by a crash (never
        acknowledged to anyone) is skipped."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a torn last line
                yield record["batch"], [tuple(_decode(v) for v in r) for r in record["rows"]]

    def clear(self) -> None:
        """Every spooled batch is in the database: start afresh."""
        self.path.unlink(missing_ok=True)
        self.rows = self.batches = 0
