"""CLI, declare: start a feature repository from an event file."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["init"]


@click.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--events",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="An event file (parquet or CSV) to declare a source, an entity and features over.",
)
@click.option("--key", default=None, help="The entity key column (default: the one *_id column).")
@click.option(
    "--timestamp",
    default=None,
    help="The event time column (default: the one timestamp column).",
)
@click.option(
    "--timezone",
    default=None,
    metavar="ZONE",
    help="The zone of timezone-naive event times, e.g. UTC or Europe/Berlin (an IANA name); "
    "without it naive times are refused as ambiguous.",
)
def init(
    folder: Path, events: Path | None, key: str | None, timestamp: str | None, timezone: str | None
) -> None:
    """Start a feature repository in FOLDER, like `feast init`.

    \b
    Writes feature_store.yaml on the embedded stores (DuckDB, SQLite: no server).
    Given --events, it reads the file's schema and writes the source (the file is
    copied to FOLDER/data/), the entity of --key, a starter windowed view (counts,
    sums of the numeric columns, filtered counts of the top values of each
    low-cardinality string column, over 7/30/90 days) and a feature service.
    Nothing is written until the file is accepted.
      lifecycle init payments_repo --events payments.parquet --key card_id --timestamp ts
      lifecycle init shop --events shop.csv --timezone Europe/Berlin   # naive times
      lifecycle --repo payments_repo apply
      lifecycle --repo payments_repo features online --entity card_id=c_17
    """
    from framework.declare.scaffold import init_repo

    result = init_repo(folder, events=events, key=key, timestamp=timestamp, timezone=timezone)
    for path in result.files:
        click.echo(f"wrote {path}")
    if result.features:
        click.echo(
            f"{len(result.features)} starter features, e.g. {', '.join(result.features[:3])}. "
            f"Next: lifecycle --repo {folder} apply"
        )
    else:
        click.echo(
            f"Next: declare sources and views under {folder}, then lifecycle --repo {folder} apply"
        )
