"""CLI: the end-to-end demo. The command is generic; its body is the example's own script.

``lifecycle demo`` runs ``examples/demo.py`` (beside the repo, or in the current
folder), whose ``run(repo, users=...)`` walks the example product through every
stage. Another product's repo brings its own script with ``--script``.
"""

from __future__ import annotations

from pathlib import Path

import click

from framework.cli._shared import Context, pass_ctx
from framework.common.scripts import find_example, load_script
from framework.errors import ConfigError

__all__ = ["demo"]


# the default scale finishes in about two minutes on 2 cores; --full is the example's own
SMALL_USERS = 1_500
FULL_USERS = 10_000


@click.command()
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=None,
    help=f"Users to generate when the example data is missing [default: {SMALL_USERS:,}, "
    f"about two minutes on 2 cores].",
)
@click.option(
    "--full",
    is_flag=True,
    help=f"The example at full scale: {FULL_USERS:,} users, about 10 minutes on 2 cores.",
)
@click.option(
    "--script",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The demo script (default: examples/demo.py beside the repo or in this folder).",
)
@pass_ctx
def demo(obj: Context, users: int | None, full: bool, script: Path | None) -> None:
    """Run every lifecycle stage on the example product (its examples/demo.py).

    \b
    Generates the example's data when the repo has none (a small example by default;
    --full or --users N for more), then applies, materializes, trains every problem,
    forecasts, serves with an experiment, ranks, monitors and runs a scheduled tick.
    Each step prints its time; the end says what to open and what to try next.
    """
    if full and users is not None:
        raise click.UsageError("--full and --users exclude each other.")
    path = script or find_example("demo.py", obj.repo_path)
    module = load_script(path, "lifecycle_demo")
    if not callable(getattr(module, "run", None)):
        raise ConfigError(f"{path} has no run(repo, users=...) function.")
    module.run(obj.repo, users=FULL_USERS if full else users or SMALL_USERS)
