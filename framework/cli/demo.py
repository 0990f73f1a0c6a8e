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


@click.command()
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Users to generate when the example data is missing.",
)
@click.option(
    "--script",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The demo script (default: examples/demo.py beside the repo or in this folder).",
)
@pass_ctx
def demo(obj: Context, users: int, script: Path | None) -> None:
    """Run every lifecycle stage on the example product (its examples/demo.py)."""
    path = script or find_example("demo.py", obj.repo_path)
    module = load_script(path, "lifecycle_demo")
    if not callable(getattr(module, "run", None)):
        raise ConfigError(f"{path} has no run(repo, users=...) function.")
    module.run(obj.repo, users=users)
