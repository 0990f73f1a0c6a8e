"""The ``lifecycle`` command line: one module per lifecycle stage, loaded lazily.

Each stage's commands live in ``framework/cli/<stage>.py`` as free-standing click
commands and groups; this module builds the group and its context object (the repo,
built once) and names each command's module in ``COMMANDS``: a stage's module (and
what it imports) loads only when one of its commands runs, so ``lifecycle --help``
and every other command answer without paying for the rest.
Our own errors become one line on stderr and exit code 1; bad usage (a bad option
value, e.g. a time without a zone) exits 2 (click's convention).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

from framework.cli._shared import Context
from framework.errors import LifecycleError

__all__ = ["main"]


# In the order data flows through the lifecycle: command -> "module:attribute".
COMMANDS = {
    "init": "framework.cli.declare:init",
    "example-data": "framework.cli.collect:example_data",
    "events": "framework.cli.collect:events",
    "apply": "framework.cli.prepare:apply",
    "materialize": "framework.cli.features:materialize",
    "features": "framework.cli.features:features",
    "dataset": "framework.cli.training:dataset",
    "assess": "framework.cli.training:assess",
    "validate": "framework.cli.training:validate",
    "train": "framework.cli.training:train",
    "models": "framework.cli.models:models",
    "serve": "framework.cli.deploy:serve",
    "predict": "framework.cli.deploy:predict",
    "experiment": "framework.cli.deploy:experiment",
    "monitor": "framework.cli.monitor:monitor",
    "performance": "framework.cli.monitor:performance",
    "skew": "framework.cli.monitor:skew_command",
    "retrain": "framework.cli.monitor:retrain",
    "schedule": "framework.cli.schedule:schedule",
    "demo": "framework.cli.demo:demo",
}


class _Group(click.Group):
    """Loads a stage's command when it is called; lists commands in the order data flows
    (from ``SHORT_HELP``, importing nothing); turns our errors into one line and exit 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        _short_helps(command, name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SHORT_HELP[name]) for name in COMMANDS])

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
      lifecycle train churn             # compare candidates, register the winner
      lifecycle models promote churn v1
      lifecycle serve                   # POST /predict, /rank, /events; pages at /ui
    or all of it at once:
      lifecycle demo

    \b
    One vocabulary across commands: --at TIME (a point in time), --from/--to (a
    range), --db (the project's database), --model-version, --out, --json. Times
    are ISO 8601 with a zone (2025-06-01T00:00:00Z), `now`, or `data`: the latest
    event time in the repo (the data's present, for a repo of past data).
    """
    ctx.obj = Context(repo_path, fs_yaml)


# The root help is a map: one short line per command, in the order data flows.
SHORT_HELP = {
    "init": "Start a repo from your own event file.",
    "example-data": "Generate the example product's data.",
    "events": "Collect events: append a file to a source's log.",
    "events ingest": "Check FILE against its source's contract and append it.",
    "apply": "Check inputs, build window tables, register with Feast.",
    "materialize": "Load the online store as of a time.",
    "features": "Read features: point-in-time or online.",
    "features historical": "Point-in-time features for each entity row.",
    "features online": "Online feature values of entities.",
    "dataset": "Build and save a problem's training set.",
    "dataset build": "Build and save the training set of PROBLEM.",
    "assess": "Do we have enough data for a problem?",
    "validate": "Validate a problem's training set.",
    "train": "Train, compare and register a problem's models.",
    "models": "The model registry: list, promote.",
    "models list": "Versions of a problem and their stages.",
    "models promote": "Make a version the production model.",
    "serve": "Serve the production models over HTTP.",
    "predict": "Batch-score a problem and write the run to the database.",
    "experiment": "A/B experiments: list them, report one.",
    "experiment list": "The declared experiments.",
    "experiment report": "Per-arm rates, lift with its interval, verdict.",
    "monitor": "Drift of a model's inputs and scores.",
    "performance": "Realized performance once labels are known.",
    "skew": "Train/serve skew of the logged features.",
    "retrain": "Train a challenger; promote it only if it wins.",
    "schedule": "Declared jobs: list, run, backfill, export.",
    "schedule list": "The declared jobs and their next ticks.",
    "schedule run": "The scheduler process: every job at its ticks.",
    "schedule once": "Run one job now or at a tick.",
    "schedule backfill": "Run a job for each tick in a range.",
    "schedule runs": "Recent runs and their status.",
    "schedule export": "The jobs as crontab, Kubernetes or Airflow.",
    "demo": "Run every stage on the example product.",
}


def _short_helps(command: click.Command, path: str) -> None:
    """Each command's one-line help from ``SHORT_HELP`` (the root help's map)."""
    command.short_help = SHORT_HELP[path]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            _short_helps(sub, f"{path} {name}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
