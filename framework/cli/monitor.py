"""CLI, monitor: drift, realized performance, train/serve skew, retraining."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from framework.cli._shared import (
    Context,
    db_option,
    json_option,
    model_version_option,
    pass_ctx,
    range_options,
    say,
)

__all__ = ["monitor", "performance", "retrain", "skew_command"]


@click.command()
@click.argument("problem")
@model_version_option
@range_options("Predictions from this time on", "Predictions before this time", "since", "until")
@click.option(
    "--current",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Compare this parquet/CSV of feature rows instead of the prediction log.",
)
@db_option("The prediction log")
@json_option
@pass_ctx
def monitor(
    obj: Context,
    problem: str,
    version: str | None,
    since: datetime | None,
    until: datetime | None,
    current: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Drift of PROBLEM's model: current data against its training reference.

    \b
    Per feature: PSI and a test (Kolmogorov-Smirnov for numbers, chi-square for
    categories), Jensen-Shannon distance, missing and out-of-range rates; the
    same for the scores. Thresholds come from the problem's Monitoring(...).
    Exit code 0 when no action is needed, 3 when one is (investigate or retrain).
    """
    from framework.monitor.drift import detect_drift

    report = detect_drift(
        obj.repo,
        problem,
        version=version,
        since=since,
        until=until,
        current=current,
        db=db,
    )
    from framework.monitor.reports import write_drift_report

    folder = obj.repo.new_report_folder(report.problem, "drift", report.model_version)
    page = write_drift_report(report, folder, obj.repo.problem(problem).monitoring.psi)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.to_text())
    say(f"Report: {page} (also at /ui under `lifecycle serve`)")
    if report.action != "none":
        sys.exit(3)


@click.command()
@click.argument("problem")
@db_option("The predictions (log and batch runs)")
@json_option
@pass_ctx
def performance(obj: Context, problem: str, db: str | None, as_json: bool) -> None:
    """Realized performance: predictions joined with the labels known since.

    Online and batch predictions of PROBLEM get the label the problem's own rule
    gives at their entity and time, once the label horizon has passed; metrics
    per model version and per week, beside the test metrics from training.
    """
    from framework.monitor.performance import realized_performance
    from framework.monitor.reports import write_performance_report

    report = realized_performance(obj.repo, problem, db=db)
    folder = obj.repo.new_report_folder(report.problem, "performance", "all")
    page = write_performance_report(report, folder)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.to_text())
    say(f"Report: {page} (also at /ui under `lifecycle serve`)")


@click.command()
@click.argument("problem")
@json_option
@pass_ctx
def retrain(obj: Context, problem: str, as_json: bool) -> None:
    """Train a challenger on the latest data; promote it only if it beats the champion.

    Both are scored on the most recent labeled window (the challenger's test
    split). The challenger must be better than the production model by more than
    the problem's `margin` on its metric. The decision and both scores are
    recorded in the registry (decisions.json).
    """
    from framework.monitor.retrain import retrain as run

    decision = run(obj.repo, problem, progress=None if as_json else lambda m: say(f"- {m}"))
    click.echo(json.dumps(decision.to_json(), indent=2) if as_json else decision.to_text())


@click.command("skew")
@click.argument("problem")
@model_version_option
@range_options("Predictions from this time on", "Predictions before this time", "since", "until")
@db_option("The prediction log")
@json_option
@pass_ctx
def skew_command(
    obj: Context,
    problem: str,
    version: str | None,
    since: datetime | None,
    until: datetime | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Train/serve skew: logged online features against the historical ones.

    Every logged prediction's features are fetched again at its entity and
    request time with the point-in-time retrieval that builds training sets;
    features that differ are named with examples. Exit 0 when none differs, 3
    otherwise (a stale online store counts: materialize more often).
    """
    from framework.monitor.skew import skew

    report = skew(
        obj.repo,
        problem,
        version=version,
        since=since,
        until=until,
        db=db,
    )
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.to_text())
    if report.skewed:
        sys.exit(3)
