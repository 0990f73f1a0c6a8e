"""The ``lifecycle`` command line: one module per lifecycle stage, attached here.

Each stage's commands live in ``framework/cli/<stage>.py`` as free-standing click
commands and groups; this module builds the group, its context object (the repo,
built once) and attaches them with ``add_command``. Heavy libraries (Feast, pandas,
DuckDB) are imported inside the commands, so ``lifecycle --help`` answers quickly.
Our own errors become one line on stderr and exit code 1; bad usage (a bad option
value, e.g. a time without a zone) exits 2 (click's convention).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from framework.cli import (
    collect,
    declare,
    demo,
    deploy,
    features,
    models,
    monitor,
    prepare,
    schedule,
    training,
)
from framework.cli._shared import Context
from framework.errors import LifecycleError

__all__ = ["main"]


class _Group(click.Group):
    """Lists commands in the order data flows; turns our errors into one line and exit 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LifecycleError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.option(
    "--repo",
    "repo_path",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("feature_repo"),
    show_default=True,
    envvar="LIFECYCLE_REPO",
    help="The feature repository (a folder with feature_store.yaml). Env: LIFECYCLE_REPO.",
)
@click.option(
    "--fs-yaml",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    envvar="LIFECYCLE_FS_YAML",
    help="Use another Feast config, e.g. feature_store.production.yaml (Redis, PostgreSQL) "
    "or feature_store.spark.yaml (Spark). Env: LIFECYCLE_FS_YAML.",
)
@click.version_option(package_name="lifecycle-framework")
@click.pass_context
def main(ctx: click.Context, repo_path: Path, fs_yaml: Path | None) -> None:
    """Declarative ML lifecycle on a Feast feature repository.

    \b
    Typical flow on the example product:
      lifecycle example-data            # write feature_repo/data/{users,events}.parquet
      lifecycle apply                   # check inputs, build window tables, register with Feast
      lifecycle materialize             # load the online store (all data up to now)
      lifecycle features historical --entities rows.parquet --out features.parquet
      lifecycle features online --entity user_id=42
    or all of it at once:
      lifecycle demo
    """
    ctx.obj = Context(repo_path, fs_yaml)


# In the order data flows through the lifecycle.
for _command in (
    declare.init,
    collect.example_data,
    collect.events,
    prepare.apply,
    features.materialize,
    features.features,
    training.dataset,
    training.assess,
    training.validate,
    training.train,
    models.models,
    deploy.serve,
    deploy.predict,
    deploy.experiment,
    monitor.monitor,
    monitor.performance,
    monitor.skew_command,
    monitor.retrain,
    schedule.schedule,
    demo.demo,
):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
