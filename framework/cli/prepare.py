"""CLI, prepare data: check the inputs, build the window tables, register with Feast."""

from __future__ import annotations

import time
from typing import Any

import click

from framework.cli._shared import (
    Context,
    pass_ctx,
    progress_bar,
    say,
)

__all__ = ["apply"]


@click.command()
@pass_ctx
def apply(obj: Context) -> None:
    """Check the input files, rebuild every window table, and register the repo with Feast.

    Nothing is written when an input file is bad: the error names the file,
    the column and the fix.
    """
    from framework.prepare.apply import apply as run_apply

    bars: dict[str, Any] = {}

    def build_progress(view: str, done: int, total: int) -> None:
        bars.setdefault(view, progress_bar(f"{view} events"))(done, total)

    t0 = time.perf_counter()
    result = run_apply(obj.repo, progress=lambda m: say(f"- {m}"), build_progress=build_progress)
    for t in result.tables:
        click.echo(
            f"Built {t.view}: {t.rows:,} change points for {t.entities:,} entities "
            f"from {t.events:,} events."
        )
    click.echo(f"Registered {len(result.registered)} objects in {time.perf_counter() - t0:.1f}s.")
