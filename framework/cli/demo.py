"""CLI: the end-to-end demo. The command is generic; its body is the example's own script.

``lifecycle demo`` runs ``examples/demo.py`` (beside the repo, or in the current
folder), whose ``run(repo, users=...)`` walks the example product through every
stage. Another product's repo brings its own script with ``--script``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from framework.cli._shared import Context, pass_ctx
from framework.errors import ConfigError

__all__ = ["demo"]

SCRIPT = Path("examples") / "demo.py"


def _find_script(repo_path: Path) -> Path:
    candidates = [repo_path.resolve().parent / SCRIPT, Path.cwd() / SCRIPT]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(
        f"No demo script: looked for {[str(p) for p in candidates]}. "
        "Pass --script PATH to a file with a run(repo, users=...) function."
    )


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
    path = script or _find_script(obj.repo_path)
    spec = importlib.util.spec_from_file_location("lifecycle_demo", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path} cannot be loaded as a Python module.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ConfigError(f"{path} has no run(repo, users=...) function.")
    module.run(obj.repo, users=users)
