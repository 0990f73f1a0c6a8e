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
    from framework.collect.example_data import write_example_data

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
@pass_ctx
def events_ingest(obj: Context, file: Path) -> None:
    """Check FILE (parquet or CSV) against the event schema and append it to the event log.

    \b
    Columns: user_id (int), event_timestamp (with a time zone, e.g.
    2025-06-01T12:00:00Z), event_type, source (strings), amount (number or empty).
    Rows must also keep the repo's EventContract (known event types and sources,
    no timestamps in the future, no amounts below the minimum, no missing keys).
    Nothing is appended when any row is bad; the error lists every violation with
    its row count and examples. Events identical to logged ones are kept once.
    The next `lifecycle apply` or `lifecycle materialize` counts them.
    """
    from framework.collect.checks import read_table
    from framework.collect.ingest import append, compact, event_log_path

    repo = obj.repo
    rows = append(repo, read_table(file, "Event"), source=str(file))
    merged = compact(repo)
    duplicates = f" ({merged.duplicates:,} were already logged)" if merged.duplicates else ""
    click.echo(
        f"Appended {merged.added:,} of {rows:,} events{duplicates} to {event_log_path(repo)} "
        f"({merged.total:,} in all). Run `lifecycle materialize` to count them online."
    )
