"""CLI, models: the registry's versions and promotions."""

from __future__ import annotations

import click

from framework.cli._shared import (
    Context,
    pass_ctx,
)

__all__ = ["models"]


@click.group()
def models() -> None:
    """The model registry: list versions, promote one to production."""


@models.command("list")
@click.argument("problem", required=False)
@pass_ctx
def models_list(obj: Context, problem: str | None) -> None:
    """Versions of PROBLEM (or of every problem): stage and key metrics."""
    from framework.models.registry import registry_of

    registry = registry_of(obj.repo)
    problems = [problem] if problem else registry.problems()
    if problem:
        obj.repo.problem(problem)
    rows = []
    for name in problems:
        for version in registry.versions(name):
            meta = registry.get(name, version).meta
            metric = meta.metric
            rows.append(
                f"  {name:<10} {version:<5} {registry.stage_of(name, version):<11} {meta.winner:<20} "
                f"test {metric} {meta.metrics['test'][metric]:.4f}  baseline {meta.baseline['test'][metric]:.4f}  "
                f"dataset {meta.dataset['hash']}  {meta.created_at[:19]}"
            )
    click.echo("\n".join(rows) if rows else "No models yet: run `lifecycle train PROBLEM`.")


@models.command("promote")
@click.argument("problem")
@click.argument("version")
@click.option(
    "--override",
    metavar="REASON",
    default=None,
    help="Promote although the gate refuses (a ranking without a counterfactual lift clear "
    "of zero); the reason is recorded beside the promotion.",
)
@pass_ctx
def models_promote(obj: Context, problem: str, version: str, override: str | None) -> None:
    """Make VERSION (e.g. v3) the production model of PROBLEM.

    A ranking is promoted only when its counterfactual CTR beats the popularity order's
    with a 95% interval clear of zero (see its card); --override "reason" promotes it
    anyway and records why."""
    from framework.models.registry import registry_of

    obj.repo.problem(problem)
    artifact = registry_of(obj.repo).promote(problem, version, override=override)
    note = f" (override recorded: {override})" if override else ""
    click.echo(f"{problem} {artifact.version} is now in production{note}.")
