"""Push: accepted events reach the online window state at once.

``push_events(repo, table, source=...)`` appends the events durably to the
source's offline log (:func:`framework.collect.ingest.append_batch`, exactly as
before) and then appends them, as one frame per entity, to the online state of
every windowed view that reads the source
(:mod:`framework.features.window_state`). A ``/predict`` after it sees them.

When the online store cannot be written the events stay accepted (they are on
disk): ``PushResult.online`` says ``pending`` and the next materialization replays
the inbox into the online state (``replay_inbox``); a re-sent batch with the same
batch id is applied again, and counts once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from framework.declare.repo import FeatureRepo
from framework.declare.windows import WindowSpec
from framework.errors import DataError, StoreError
from framework.features.window_state import event_frames, file_token, spec_digest
from framework.features.window_store import WindowStore, window_store

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PushResult", "online_specs", "push_events", "push_file", "replay_inbox"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushResult:
    """Rows taken offline; ``online``: ``updated`` (every view reading the source has
    them), ``pending`` (the online store failed: the next materialization adds them)
    or ``none`` (no online windowed view reads the source)."""

    accepted: int
    online: str
    error: str | None = None


def online_specs(repo: FeatureRepo, source_path: str | None = None) -> list[WindowSpec]:
    """The windowed views with online state (those reading ``source_path``, if given)."""
    online = {fv.name for fv in repo.contents.feature_views if fv.online}
    specs = [s for s in repo.declared_window_specs if s.name in online]
    if source_path is None:
        return specs
    target = Path(source_path).resolve()
    return [s for s in specs if Path(s.source_path).resolve() == target]


def push_file(
    repo: FeatureRepo,
    path: Path,
    store: WindowStore | None = None,
    table: pa.Table | None = None,
) -> int:
    """Append the events of one inbox file (``table``: its rows, if at hand) to the
    online state of the views reading its source; return the frames written (0: no
    view has online state yet)."""
    log_path = path.parent.with_name(path.parent.name.removesuffix(".inbox"))
    specs = online_specs(repo, str(log_path))
    store = store or window_store(repo.store)
    if not specs or store is None:
        return 0
    if table is None:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except FileNotFoundError:  # merged into the log meanwhile
            return 0
    token = file_token(path)
    frames = {(s.name, spec_digest(s)): event_frames(s, table, token) for s in specs}
    return store.append(frames)


def push_events(
    repo: FeatureRepo,
    table: pa.Table,
    *,
    source: str | None = None,
    origin: str = "events",
    batch_id: str | None = None,
) -> PushResult:
    """Append ``table`` durably to its source's log, then to the online state."""
    from framework.collect.ingest import append_batch

    taken = append_batch(repo, table, source=source, origin=origin, batch_id=batch_id)
    if taken.file is None:
        return PushResult(taken.rows, "none")
    try:
        written = push_file(repo, taken.file, table=taken.table)
    except (StoreError, DataError) as exc:  # stored offline all the same
        log.warning("events accepted, online state not updated: %s", exc)
        return PushResult(taken.rows, "pending", str(exc))
    return PushResult(taken.rows, "updated" if written else "none")


def replay_inbox(repo: FeatureRepo, store: WindowStore) -> int:
    """Apply every file in the inboxes to the online state (frames of a batch already
    applied count once); return the files replayed."""
    from framework.collect.ingest import inbox_files

    files = inbox_files(repo)
    for path in files:
        push_file(repo, path, store)
    return len(files)
