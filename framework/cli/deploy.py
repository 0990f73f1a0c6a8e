"""CLI, deploy: the prediction service, batch prediction, experiments."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from framework.cli._shared import (
    Context,
    at_option,
    db_option,
    json_option,
    out_option,
    pass_ctx,
    say,
)

__all__ = ["experiment", "predict", "serve"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--api-key",
    envvar="LIFECYCLE_API_KEY",
    default=None,
    help="Require this key in the X-API-Key header. Env: LIFECYCLE_API_KEY.",
)
@db_option("Prediction log", "--log-db")
@click.option(
    "--store-timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    envvar="LIFECYCLE_STORE_TIMEOUT",
    help="Seconds an online-store read may take before /predict answers 503.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    envvar="LIFECYCLE_WORKERS",
    help="Processes sharing the port, each with its own models, store connections and "
    "prediction-log writer (drained on shutdown). About one per core.",
)
@pass_ctx
def serve(
    obj: Context,
    host: str,
    port: int,
    api_key: str | None,
    db: str | None,
    store_timeout: float,
    workers: int,
) -> None:
    """Serve the production models over HTTP (OpenAPI at /docs).

    \b
    POST /predict  {"problem": "churn", "entities": [{"user_id": 42}]}
    POST /rank     {"problem": "...", "query": {"user_id": 42},
                    "candidates": [{"product_id": "sku_0001"}, ...], "k": 10}
    POST /events   {"events": [{"user_id": 42, "event_timestamp": "...Z", ...}]}
    GET  /health   online store and models
    GET  /models   production versions and their test metrics
    GET  /ui       model cards and monitoring reports
    GET  /metrics  Prometheus metrics (requests, latency, store, log, models)

    Errors are JSON naming the field (400/401/404/413/422); a failing store gets
    503 within --store-timeout. Bodies over 4 MiB get 413. The API key is
    compared in constant time and never logged. Production: see the README's
    "Running in production" (LIFECYCLE_FS_YAML, LIFECYCLE_PREDICTION_DB).
    """
    import uvicorn

    from framework.deploy.service import WORKER_ENV, create_app

    problems = sorted(obj.repo.problems)
    if workers == 1:
        app = create_app(obj.repo, api_key=api_key, log_url=db, store_timeout=store_timeout)
        say(f"Serving {problems} on http://{host}:{port} (docs at /docs)")
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    # Each worker process builds its own app from these (uvicorn starts the processes).
    settings = {
        "repo": str(obj.repo.path),
        "fs_yaml": str(obj.repo.fs_yaml),
        "api_key": api_key,
        "log_url": db,
        "store_timeout": store_timeout,
    }
    os.environ[WORKER_ENV] = json.dumps(settings)
    say(f"Serving {problems} on http://{host}:{port} with {workers} workers (docs at /docs)")
    uvicorn.run(
        "framework.deploy.service.app:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


class Horizon(click.ParamType):  # type: ignore[type-arg]  # generic in click's stubs only
    """Whole days ahead: ``365d`` or ``365``."""

    name = "days"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().removesuffix("d")
        if not text.isdigit() or int(text) < 1:
            self.fail(f"{value!r} is not a number of days such as 365d or 28.", param, ctx)
        return int(text)


@click.command()
@click.argument("problem")
@at_option("Score with the features as of this time", required=True, dest="as_of")
@click.option(
    "--entities",
    "entities_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Parquet or CSV with the problem's key column(s) (default: the population of "
    "the problem's spine rule at that time, e.g. the entities active within its lookback).",
)
@click.option(
    "--horizon",
    type=Horizon(),
    default=None,
    help="A forecast problem only: how many days ahead, e.g. 365d or 28 (default: its "
    "label's horizon). The target days are the H whole days (UTC) after the day of --at, "
    "as the model was trained: at midnight the day that begins then is not among them (to "
    "forecast from day D on, give a time on the day before D). One row per entity and "
    "target day goes to the table `forecasts`.",
)
@db_option("Where to write the run")
@out_option(
    "Spark profile only: write the run to this partitioned parquet dataset "
    "(<out>/problem=P/model_version=V/as_of=T/) instead of the database, for "
    "populations a database should not hold.",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
)
@pass_ctx
def predict(
    obj: Context,
    problem: str,
    as_of: datetime,
    entities_path: Path | None,
    horizon: int | None,
    db: str | None,
    out: Path | None,
) -> None:
    """Batch-score PROBLEM as of a time and write the run to the table `predictions`
    (a forecast problem: to the table `forecasts`, one row per entity and target day).

    A run is one transaction; rerunning the same problem, model version and
    as-of replaces the earlier run. On the Spark profile (LIFECYCLE_FS_YAML=
    feature_store.spark.yaml) the population is joined and scored on Spark.

    \b
    Examples:
      lifecycle predict churn --at 2025-12-01T00:00:00Z
      lifecycle predict demand --at 2025-12-01T00:00:00Z --horizon 365d
      lifecycle --fs-yaml feature_repo/feature_store.spark.yaml predict churn \\
          --at 2025-12-01T00:00:00Z --out data/scores
    """
    from framework.collect.checks import read_table
    from framework.deploy.batch import predict_batch
    from framework.errors import DataError

    entities = None
    if entities_path is not None:
        keys = list(obj.repo.problem(problem).keys)
        table = read_table(entities_path, "Entity")
        missing = [k for k in keys if k not in table.column_names]
        if missing:
            raise DataError(
                f"{entities_path} has no {missing} column(s); it has {table.column_names} "
                f"(problem {problem!r} is keyed by {keys})."
            )
        entities = table.select(keys).to_pandas()
    t0 = time.perf_counter()
    forecast = obj.repo.problem(problem).kind.route == "horizon"
    if forecast:
        from framework.deploy.forecast import predict_forecast

        if out is not None:
            raise click.BadParameter(
                "forecasts go to the table `forecasts`; --out is for batch scores.",
                param_hint="--out",
            )

        run = predict_forecast(
            obj.repo, problem, as_of, horizon_days=horizon, entities=entities, db=db
        )
    elif horizon is not None:
        raise click.BadParameter(
            f"problem {problem!r} is not a forecast; --horizon applies to forecasts only.",
            param_hint="--horizon",
        )
    else:
        run = predict_batch(obj.repo, problem, as_of, entities=entities, db=db, output=out)
    elapsed = time.perf_counter() - t0
    replaced = f", replacing {run.replaced:,} rows of the earlier run" if run.replaced else ""
    what = "forecast rows (entity x target day)" if forecast else "predictions"
    click.echo(
        f"Wrote {run.rows:,} {what} of {run.problem} {run.model_version} as of "
        f"{run.as_of.isoformat()} (run {run.run_id}{replaced}) in {elapsed:.1f}s."
    )
    if forecast:
        click.echo(_target_days(obj.repo.problem(problem), run.as_of, horizon))


def _target_days(declared: Any, as_of: datetime, horizon: int | None) -> str:
    """Which days a forecast made at ``as_of`` covers, in words."""
    from datetime import UTC, timedelta

    days = horizon or declared.label.days
    day = as_of.astimezone(UTC).date()
    first, last = day + timedelta(days=1), day + timedelta(days=days)
    note = ""
    if as_of.astimezone(UTC).time() == datetime.min.time():
        note = (
            f"; {day} begins at --at and is not forecast: for it, give --at "
            f"{day - timedelta(days=1)}T23:59:59Z"
        )
    return f"Target days: {first} to {last} (UTC), the {days} days after {day}{note}."


@click.group()
def experiment() -> None:
    """A/B experiments declared in the feature repo (framework.Experiment)."""


@experiment.command("list")
@pass_ctx
def experiment_list(obj: Context) -> None:
    """The declared experiments: problem, arms, split, outcome, and whether they run."""
    found = obj.repo.experiments
    if not found:
        click.echo("No experiments declared: add a framework.Experiment under the repo.")
        return
    for e in found.values():
        state = "active" if e.active else "stopped"
        click.echo(
            f"  {e.name:<20} {e.problem:<8} {state:<8} control={e.control} "
            f"treatment={e.treatment} split={1 - e.split:.0%}/{e.split:.0%} "
            f"outcome {e.outcome!r} within {e.window_days}d"
        )


@experiment.command("report")
@click.argument("name")
@db_option("The prediction log holding the exposures")
@at_option(
    "Count outcomes known at this time (default: now; exposures whose window is still "
    "open are left out)",
    dest="as_of",
)
@json_option
@pass_ctx
def experiment_report(
    obj: Context, name: str, db: str | None, as_of: datetime | None, as_json: bool
) -> None:
    """Exposures, conversions and rate per arm; lift with 95% CI; p-value; verdict.

    \b
    Exposures come from the prediction log (every /predict answer in the
    experiment's problem while it is active), outcomes from the event log
    (events matching the experiment's outcome filter, e.g. from POST /events).
    """
    from framework.monitor.experiment_report import experiment_report as run

    result = run(obj.repo, name, db=db, now=as_of)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(result.to_text())
