"""CLI, train: training sets, their validation, training runs."""

from __future__ import annotations

import json
import time

import click

from framework.cli._shared import Context, json_option, pass_ctx, say

__all__ = ["assess", "dataset", "train", "validate"]


@click.group()
def dataset() -> None:
    """Training sets: labels joined with point-in-time features."""


@dataset.command("build")
@click.argument("problem")
@pass_ctx
def dataset_build(obj: Context, problem: str) -> None:
    """Build and save the training set of PROBLEM (under REPO/data/datasets)."""
    from framework.training.dataset import build_training_set

    t0 = time.perf_counter()
    ts = build_training_set(obj.repo, problem)
    path = ts.save(obj.repo.data_dir / "datasets")
    summary = ts.summary()
    click.echo(
        f"Dataset {summary['hash']}: {summary['rows']:,} rows, {summary['entities']:,} entities, "
        f"{summary['features']} features, {summary['time_range'][0]} .. {summary['time_range'][1]} "
        f"({time.perf_counter() - t0:.1f}s) -> {path}"
    )


@click.command()
@click.argument("problem")
@json_option
@pass_ctx
def assess(obj: Context, problem: str, as_json: bool) -> None:
    """Do we have enough data for PROBLEM? Answered before (or beside) training.

    Builds the training set and reports: observations, entities and time span
    against the label horizon and warm-up; the time split; label balance
    (positives, base rate, class counts) or distribution; missing rate and
    coverage of every feature; and a learning curve: the problem's metric on
    validation when the latest registered winner's configuration (or, before any
    model, the first candidate's defaults) is trained on the last 1/8, 1/4, 1/2
    and all of the training period, with a verdict and the expected gain over the
    baseline. Too few positives or too short a span exits 1 with the numbers.
    The HTML report (with the curve) is written under REPO/data/reports and
    listed at /ui.

    \b
    Example:
      lifecycle assess churn
      lifecycle assess churn --json | jq .learning_curve.verdict
    """
    from framework.training.assess import assess as run_assess
    from framework.training.assess_report import write_assessment

    result = run_assess(obj.repo, problem, progress=None if as_json else say)
    version = "all"
    folder = obj.repo.new_report_folder(result.problem, "assess", version)
    page = write_assessment(result, folder)
    if as_json:
        click.echo(json.dumps({**result.as_json(), "report": str(page)}, default=float))
        return
    click.echo(result.to_text())
    click.echo(f"Report: {page}")


@click.command()
@click.argument("problem")
@pass_ctx
def validate(obj: Context, problem: str) -> None:
    """Validate the training set of PROBLEM with its generated Great Expectations suite.

    Exit code 1 when an expectation fails; the report names each failing
    expectation, its column and sample values.
    """
    from framework.training.dataset import build_training_set
    from framework.training.validation import validate as run_validate

    declared = obj.repo.problem(problem)
    result = run_validate(
        build_training_set(obj.repo, declared), categories=dict(declared.categories)
    )
    click.echo(result.report())
    if result.failures:
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("problem")
@json_option
@pass_ctx
def train(obj: Context, problem: str, as_json: bool) -> None:
    """Build, validate and train PROBLEM; register the winner as a candidate version.

    Candidates (baseline, LightGBM tuned with time-series cross-validation,
    scikit-learn models) are compared on validation by the problem's metric;
    the winner is reported on test, and gets a model card (card.html).
    """
    from framework.training.run import run_training

    run = run_training(obj.repo, problem, progress=say)
    out = {"version": run.artifact.version, **run.result.as_json()}
    out = {"problem": out.pop("problem"), "version": out.pop("version"), **out}
    if as_json:
        click.echo(json.dumps(out, default=float))
        return
    click.echo(run.result.to_text())
    click.echo(
        f"Registered {problem} {run.artifact.version} (candidate). Card: {run.artifact.path / 'card.html'}"
    )
