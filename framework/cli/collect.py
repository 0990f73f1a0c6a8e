"""CLI, collect data: the example product's data, and events appended to the offline log."""

from __future__ import annotations

import time
from pathlib import Path

import click

from framework.cli._shared import (
    Context,
    pass_ctx,
)

__all__ = ["events", "example_data"]


@click.command("example-data")
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Number of users (about 110 events each).",
)
@click.option(
    "--seed",
    type=int,
    default=7,
    show_default=True,
    help="Random seed; the same seed gives the same files.",
)
@pass_ctx
def example_data(obj: Context, users: int, seed: int) -> None:
    """Generate the example product: users.parquet and events.parquet under REPO/data."""
    from framework.common.scripts import find_example, load_script

    generator = load_script(
        find_example("example_data.py", obj.repo_path), "lifecycle_example_data"
    )
    write_example_data = generator.write_example_data
    data_dir = obj.repo_path / "data"
    t0 = time.perf_counter()
    data = write_example_data(data_dir, users=users, seed=seed)
    click.echo(
        f"Wrote {len(data.users):,} users and {len(data.events):,} events to {data_dir} "
        f"in {time.perf_counter() - t0:.1f}s."
    )


@click.group()
def events() -> None:
    """Collect data: append product events to the offline event log."""


@events.command("ingest")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--source",
    "source",
    default=None,
    help="The event source FILE belongs to (optional when the repo has one).",
)
@click.option(
    "--batch-id",
    default=None,
    help="Makes re-running safe: a batch id already taken with the same rows is a no-op "
    "(other rows: refused).",
)
@pass_ctx
def events_ingest(obj: Context, file: Path, source: str | None, batch_id: str | None) -> None:
    """Check FILE (parquet or CSV) against its source's contract and append it to the log.

    \b
    The contract is the SourceContract declared beside the source (columns and
    kinds, which may be null, allowed values, ranges, how far in the future a
    timestamp may be), or the schema recorded by `lifecycle apply`. Timestamps
    need a time zone, e.g. 2025-06-01T12:00:00Z. Nothing is appended when any
    row is bad; the error lists every violation with its row count and examples.
    Identical rows are separate events; re-sending is safe with --batch-id, or
    with the contract's event_id (one row per id). Online windowed features
    count them at once (once the store has been materialized); the next
    `lifecycle apply` rebuilds the offline window tables with them.
    """
    from framework.collect.checks import read_table
    from framework.collect.ingest import compact, event_log_path
    from framework.features.push import push_events

    repo = obj.repo
    pushed = push_events(
        repo, read_table(file, "Event"), source=source, origin=str(file), batch_id=batch_id
    )
    merged = compact(repo)
    duplicates = f" ({merged.duplicates:,} were already logged)" if merged.duplicates else ""
    online = {
        "updated": "Online windowed features count them now.",
        "pending": f"The online store could not be updated ({pushed.error}); "
        "`lifecycle materialize` will count them online.",
        "none": "Run `lifecycle materialize` to count them online.",
    }[pushed.online]
    click.echo(
        f"Appended {merged.added:,} of {pushed.accepted:,} events{duplicates} to "
        f"{event_log_path(repo, source)} ({merged.total:,} in all). {online}"
    )
