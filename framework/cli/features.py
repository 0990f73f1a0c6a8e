"""CLI, features: load the online store, read point-in-time and online features."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from framework.cli._shared import (
    AwareTime,
    Context,
    feature_option,
    json_option,
    parse_entities,
    pass_ctx,
    progress_bar,
    range_options,
    read_entities,
)
from framework.errors import DataError

__all__ = ["features", "materialize"]


@click.command()
@range_options(
    "Only rows at or after this time (default: all history)",
    "Load values as of this time (default: now)",
)
@pass_ctx
def materialize(obj: Context, start: datetime | None, end: datetime | None) -> None:
    """Load the online store with every entity's values as of --to.

    \b
    Windowed views also get an online window state per entity (its events inside
    the longest window, and running lifetime values): from --to on, the
    framework's online reads are exact at the read time, and events posted later
    count at once. Stock Feast reads the values as of --to.
    """
    from framework.features.materialize import materialize as run

    bars: dict[str, Any] = {}

    def progress(view: str, done: int, total: int) -> None:
        bars.setdefault(view, progress_bar(view))(done, total)

    t0 = time.perf_counter()
    result = run(obj.repo, start=start, end=end, progress=progress)
    total = sum(result.rows.values())
    if result.merged_events:
        click.echo(f"Merged {result.merged_events:,} appended events and rebuilt the windows.")
    click.echo(
        f"Materialized {total:,} entity rows ({', '.join(f'{k}: {v:,}' for k, v in result.rows.items())}) "
        f"up to {result.end.isoformat()} in {time.perf_counter() - t0:.1f}s."
    )
    if result.states:
        states = ", ".join(f"{k}: {v:,}" for k, v in result.states.items())
        click.echo(f"Online window states ({states} entities): exact from then on.")


@click.group()
def features() -> None:
    """Read features: point-in-time (historical) or online."""


@features.command("historical")
@click.option(
    "--entities",
    "entities_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Parquet or CSV with the join keys of the features and event_timestamp (UTC).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Output file (.parquet or .csv).",
)
@click.option(
    "--service", default=None, help="Feature service to read (default: every feature in the repo)."
)
@feature_option
@click.option(
    "--engine",
    type=click.Choice(["auto", "direct", "feast"]),
    default="auto",
    show_default=True,
    help="'feast' runs Feast's own get_historical_features.",
)
@pass_ctx
def features_historical(
    obj: Context,
    entities_path: Path,
    out_path: Path,
    service: str | None,
    feature_names: tuple[str, ...],
    engine: str,
) -> None:
    """Point-in-time correct features for each entity row.

    Every feature's value is the one known at the row's event_timestamp (no
    later data). The output holds the input rows, in order, plus one column
    per feature.
    """
    from framework.features.historical import get_historical_features

    if out_path.suffix.lower() not in (".parquet", ".csv"):
        raise click.BadParameter("must end in .parquet or .csv", param_hint="--out")
    df = read_entities(entities_path)
    t0 = time.perf_counter()
    out = get_historical_features(
        obj.repo, df, service, features=list(feature_names) or None, engine=engine
    )
    elapsed = time.perf_counter() - t0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    if out_path.suffix.lower() == ".csv":
        out.to_csv(tmp, index=False)
    else:
        out.to_parquet(tmp, index=False)
    tmp.replace(out_path)
    n_features = out.shape[1] - df.shape[1]
    click.echo(f"Wrote {len(out):,} rows x {n_features} features to {out_path} ({elapsed:.2f}s).")


@features.command("online")
@click.option(
    "--entity",
    "entity",
    multiple=True,
    required=True,
    help="KEY=VALUE, e.g. card_id=c_17; KEY=VALUE,KEY=VALUE for a composite key "
    "(user_id=42,product_id=sku_9). Repeat for more entities.",
)
@click.option("--service", default=None, help="Feature service to read (default: every feature).")
@feature_option
@click.option(
    "--at",
    type=AwareTime(),
    default=None,
    help="Read the values as of this time (ISO 8601 with zone), at or after the last "
    "materialization: windowed features are exact at T, comparable with `lifecycle "
    "features historical` at T. Default: now.",
)
@json_option
@pass_ctx
def features_online(
    obj: Context,
    entity: tuple[str, ...],
    service: str | None,
    feature_names: tuple[str, ...],
    at: datetime | None,
    as_json: bool,
) -> None:
    """Online feature values from the online store.

    Windowed features are exact at the read time (--at, default now): the
    online state holds each entity's recent events, so a window keeps sliding
    between materializations and events posted since count at once. An entity
    the store does not know gets the documented defaults (0 for windowed counts
    and sums, null otherwise) and feature_status 'defaults'.

    \b
    Check an online value against the offline one:
      lifecycle features online --entity user_id=42 --at 2025-06-01T12:00:00Z --json
      lifecycle features historical --entities rows.csv   (same key and time)
    """
    from framework.features.online import get_online_features

    rows = parse_entities(entity)
    if at is not None:
        rows = [{**r, "event_timestamp": at} for r in rows]
    try:
        out = get_online_features(obj.repo, rows, service, features=list(feature_names) or None)
    except DataError as exc:
        if str(exc).startswith("entity row"):  # a key of the wrong kind or a missing key
            raise click.BadParameter(str(exc), param_hint="--entity") from None
        if str(exc).startswith("event_timestamp") and at is not None:  # before T0
            raise click.BadParameter(str(exc), param_hint="--at") from None
        raise
    records = json.loads(out.to_json(orient="records", date_format="iso"))
    if as_json:
        click.echo(json.dumps(records if len(records) > 1 else records[0], indent=2))
    else:
        click.echo(out.T.to_string(header=False))
