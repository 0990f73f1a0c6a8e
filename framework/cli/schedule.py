"""CLI, schedule: the declared jobs, the scheduler, one-off runs, backfills, exports."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from framework.cli._shared import (
    Context,
    at_option,
    db_option,
    json_option,
    pass_ctx,
    progress_bar,
    range_options,
    say,
)

if TYPE_CHECKING:
    from framework.schedule.job_runs import JobRun

__all__ = ["schedule"]


def _at(ts: datetime | None) -> str:
    return "-" if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _line(run: JobRun) -> str:
    took = f"{run.seconds:.1f}s" if run.seconds is not None else "-"
    made = ", ".join(f"{k} {v}" for k, v in run.produced.items() if not isinstance(v, dict | list))
    error = (run.error or "").splitlines()[0][:100] if run.status != "succeeded" else ""
    return (
        f"  {run.job:<22} {_at(run.scheduled_for):<18} {run.status:<10} {run.trigger:<9} "
        f"{run.attempts:>2} {took:>8}  {made or error}"
    )


def _exit_for(run: JobRun | None) -> None:
    if run is None:
        say("Stopped before the run started.")
        sys.exit(1)
    click.echo(_line(run))
    if run.status != "succeeded":
        say(
            f"Error: {run.job} {run.status}: {(run.error or '').splitlines()[0] if run.error else ''}"
        )
        sys.exit(1)


@click.group()
def schedule() -> None:
    """Jobs on a schedule: declared in the repo (framework.Job), run and recorded.

    \b
    Declare them beside the problems, e.g. feature_repo/schedules.py:
      Job(name="materialize", command="materialize", cron="0 6 * * *")
      Job(name="predict_churn", command="predict", problem="churn",
          cron="0 6 * * *", after="materialize", missed="catch_up", retries=2)
    Commands: apply, materialize, predict, monitor, performance, skew, retrain,
    or a function f(repo, tick). Times are UTC; every run is as of its tick.

    \b
    Every run is a row of the table job_runs in the prediction database
    (one per job and tick: two schedulers never run a tick twice).
      lifecycle schedule list                      the jobs and their next ticks
      lifecycle schedule run                       the scheduler (until SIGTERM)
      lifecycle schedule once predict_churn        run now
      lifecycle schedule backfill predict_churn --from 2025-11-01T00:00Z --to 2025-11-30T23:59Z
      lifecycle schedule runs                      recent runs
      lifecycle schedule export crontab|k8s|airflow
    """


@schedule.command("list")
@db_option("Where the runs are recorded")
@json_option
@pass_ctx
def schedule_list(obj: Context, db: str | None, as_json: bool) -> None:
    """The declared jobs: command, schedule (UTC), upstream jobs, next tick, last run."""
    from framework.schedule.job_runs import RunStore

    jobs = obj.repo.jobs
    if not jobs:
        click.echo(
            "No jobs declared: add framework.Job(...) objects under the repo, e.g. in "
            "schedules.py (`lifecycle schedule --help` shows how)."
        )
        return
    now = datetime.now(UTC)
    store = RunStore(db or obj.repo.prediction_db)
    try:
        store.reap()
        last: dict[str, JobRun | None] = {j: next(iter(store.runs(j, limit=1)), None) for j in jobs}
    finally:
        store.close()
    rows: list[dict[str, Any]] = []
    for job in jobs.values():
        run = last[job.name]
        upcoming = job.next_tick(now) if job.active else None
        rows.append(
            {
                "job": job.name,
                "command": job.command_name,
                "schedule": job.schedule_text,
                "after": list(job.after),
                "missed": job.missed,
                "retries": job.retries,
                "active": job.active,
                "next_tick": upcoming.isoformat() if upcoming else None,
                "last_run": run.to_json() if run else None,
            }
        )
    if as_json:
        click.echo(json.dumps({"jobs": rows}, indent=2))
        return
    click.echo(
        f"  {'job':<22} {'command':<20} {'schedule':<20} {'after':<14} {'next tick':<18} last run"
    )
    for r in rows:
        made = r["last_run"]
        lastly = f"{made['status']} @ {made['scheduled_for'][:16]}Z" if made else "never"
        next_tick = r["next_tick"][:16] + "Z" if r["next_tick"] else "inactive"
        click.echo(
            f"  {r['job']:<22} {r['command'][:20]:<20} {r['schedule'][:20]:<20} "
            f"{','.join(r['after'])[:14] or '-':<14} {next_tick:<18} {lastly}"
        )


@schedule.command("run")
@db_option("Where the runs are recorded")
@click.option(
    "--poll",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds between housekeeping looks (crashed runs marked, late ticks run).",
)
@pass_ctx
def schedule_run(obj: Context, db: str | None, poll: float) -> None:
    """The scheduler: runs every job at its ticks until SIGTERM or Ctrl-C.

    \b
    Built on APScheduler; what runs is decided by the records (job_runs), so a
    restart catches up (missed='catch_up') or records the missed ticks
    (missed='skip'), and several schedulers on one database run each tick once.
    SIGTERM: the run in flight finishes, then exit 0; a second SIGTERM abandons
    it (recorded 'abandoned', exit 143). The repo is read anew for every run;
    restart the scheduler after changing the jobs themselves.
    """
    from framework.schedule.process import serve_schedule

    sys.exit(serve_schedule(obj.repo, db=db, poll=poll, say=say))


@schedule.command("once")
@click.argument("job")
@at_option(
    "Run the job's tick at this time (or the latest before it), upstream jobs first; "
    "a tick that succeeded is not run again; what an orchestrator passes (Airflow: "
    "its data_interval_end)"
)
@click.option(
    "--due",
    is_flag=True,
    help="Run the job's ticks due now, as the scheduler would (what cron and Kubernetes call).",
)
@db_option("Where the runs are recorded")
@json_option
@pass_ctx
def schedule_once(
    obj: Context, job: str, at: datetime | None, due: bool, db: str | None, as_json: bool
) -> None:
    """Run JOB now (as of now, recorded as a manual run), or its tick with --at / --due.

    On a repo whose data is in the past, `--at data` runs the job's tick at the
    latest event time (the data's present) rather than the wall clock's.

    Exit 1 when the run did not succeed (failed after its retries, or skipped
    because an upstream job failed), so an orchestrator sees the failure.
    """
    from framework.schedule.runner import run_at, run_due, run_now

    if at is not None and due:
        raise click.UsageError("--at and --due exclude each other.")
    if due:
        runs = run_due(obj.repo, db=db, only=job, say=say)
        if as_json:
            click.echo(json.dumps([r.to_json() for r in runs], indent=2))
        if not runs:
            say(f"Nothing due for {job} now (its latest tick has a record).")
            return
        for run in runs:
            click.echo(_line(run))
        if any(r.status != "succeeded" for r in runs if r.job == job):
            sys.exit(1)
        return
    one = (
        run_at(obj.repo, job, at, db=db, say=say)
        if at is not None
        else run_now(obj.repo, job, db=db, say=say)
    )
    if as_json and one is not None:
        click.echo(json.dumps(one.to_json(), indent=2))
        if one.status != "succeeded":
            sys.exit(1)
        return
    _exit_for(one)


@schedule.command("backfill")
@click.argument("job")
@range_options("First time", "Last time (inclusive)", required=True)
@db_option("Where the runs are recorded")
@json_option
@pass_ctx
def schedule_backfill(
    obj: Context, job: str, start: datetime, end: datetime, db: str | None, as_json: bool
) -> None:
    """Run JOB for each of its ticks in [--from, --to], each as of its own tick.

    Idempotent: a tick run before is run again and replaces its record (a batch
    prediction replaces its run). For predict, monitor, skew and function jobs;
    upstream jobs are not rerun for past ticks. Exit 1 when any run failed.
    """
    from framework.schedule.runner import backfill

    runs = backfill(
        obj.repo, job, start, end, db=db, say=say, progress=progress_bar(f"{job} ticks")
    )
    if as_json:
        click.echo(json.dumps([r.to_json() for r in runs], indent=2))
    else:
        for run in runs:
            click.echo(_line(run))
    bad = [r for r in runs if r.status != "succeeded"]
    click.echo(f"{len(runs) - len(bad)} of {len(runs)} ticks succeeded.", err=True)
    if bad:
        sys.exit(1)


@schedule.command("runs")
@click.argument("job", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@db_option("Where the runs are recorded")
@json_option
@pass_ctx
def schedule_runs(obj: Context, job: str | None, limit: int, db: str | None, as_json: bool) -> None:
    """Recent runs, newest tick first: status, trigger, attempts, duration, what they made."""
    from framework.schedule.job_runs import RunStore

    if job is not None:
        obj.repo.job(job)
    store = RunStore(db or obj.repo.prediction_db)
    try:
        store.reap()
        runs = store.runs(job, limit=limit)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([r.to_json() for r in runs], indent=2))
        return
    if not runs:
        click.echo("No runs recorded yet.")
        return
    click.echo(
        f"  {'job':<22} {'tick':<18} {'status':<10} {'trigger':<9} {'n':>2} {'took':>8}  made / error"
    )
    for run in runs:
        click.echo(_line(run))


@schedule.command("export")
@click.argument("target", type=click.Choice(["crontab", "k8s", "airflow"]))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file (default: stdout).",
)
@click.option(
    "--bin",
    "bin_path",
    default=None,
    help="The lifecycle executable the jobs call (default: this one; k8s: 'lifecycle').",
)
@click.option("--image", default=None, help="k8s: the container image with lifecycle and the repo.")
@click.option(
    "--repo-path",
    default="/app/feature_repo",
    show_default=True,
    help="k8s: where the repo is inside the image.",
)
@pass_ctx
def schedule_export(
    obj: Context,
    target: str,
    out: Path | None,
    bin_path: str | None,
    image: str | None,
    repo_path: str,
) -> None:
    """The jobs as a crontab, Kubernetes CronJobs or an Airflow DAG file.

    \b
    Each calls `lifecycle schedule once JOB` (--due from cron and Kubernetes,
    --at the run's tick from Airflow), so the runs are recorded and claimed in
    job_runs as the embedded scheduler's are. LIFECYCLE_FS_YAML and
    LIFECYCLE_PREDICTION_DB, when set, are carried into the export.
      lifecycle schedule export crontab | crontab -
      lifecycle schedule export k8s --image registry.example.com/ml:1.4 > cronjobs.yaml
      lifecycle schedule export airflow --out dags/lifecycle_jobs.py
    """
    from framework.schedule import exports

    if not obj.repo.jobs:
        raise click.UsageError("No jobs declared in the repo: nothing to export.")
    env: dict[str, Any] = dict(os.environ)
    if target == "crontab":
        text = exports.crontab(obj.repo, bin_path=bin_path or exports.default_bin(), env=env)
    elif target == "airflow":
        text = exports.airflow_dag(obj.repo, bin_path=bin_path or exports.default_bin(), env=env)
    else:
        if not image:
            raise click.UsageError(
                "k8s needs --image: the container image holding lifecycle and the repo "
                "(e.g. --image registry.example.com/ml:1.4)."
            )
        text = exports.k8s_yaml(
            exports.k8s_cronjobs(
                obj.repo,
                image=image,
                repo_path=repo_path,
                bin_path=bin_path or "lifecycle",
                env=env,
            )
        )
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        say(f"Wrote {out}")
