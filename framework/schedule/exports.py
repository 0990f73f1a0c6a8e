"""The declared jobs for the orchestrators teams already run: crontab, Kubernetes, Airflow.

Every export calls the same command, ``lifecycle schedule once JOB``, so a run
started by cron, a Kubernetes CronJob or an Airflow task is claimed and recorded
in ``job_runs`` like the embedded scheduler's (one run per job and tick, whoever
starts it, upstream jobs first):

- ``crontab``: one line per job, ``... once JOB --due`` (the job's due ticks at
  that moment); ``CRON_TZ=UTC`` first (cronie; elsewhere run cron in UTC).
- ``k8s``: a ``batch/v1`` CronJob per job (``timeZone: Etc/UTC``,
  ``concurrencyPolicy: Forbid``, no pod retries: the job's own retries apply),
  the same ``--due`` command in the given image; settings from the ConfigMap
  ``lifecycle-env`` when present (LIFECYCLE_FS_YAML, LIFECYCLE_PREDICTION_DB).
- ``airflow``: a DAG file, one DAG per job with its upstream jobs as tasks
  before it, each ``... once JOB --at {{ data_interval_end }}`` (the run's tick).

An interval (``every=``) becomes a crontab expression where one exists
(minutes dividing an hour, hours dividing a day, a day, a week); Airflow takes
any interval.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

from framework.declare.repo import FeatureRepo
from framework.declare.schedules import EPOCH, Job, ancestors
from framework.errors import ConfigError

__all__ = ["airflow_dag", "cron_expression", "crontab", "default_bin", "k8s_cronjobs", "k8s_yaml"]

SETTINGS = ("LIFECYCLE_FS_YAML", "LIFECYCLE_PREDICTION_DB")


def cron_expression(job: Job) -> str:
    """The job's schedule as five crontab fields (UTC)."""
    if job.cron is not None:
        return " ".join(job.cron.split())
    assert isinstance(job.every, timedelta)
    seconds = int(job.every.total_seconds())
    minutes, hours = seconds // 60, seconds // 3600
    if seconds % 60 == 0 and minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if seconds % 3600 == 0 and hours < 24 and 24 % hours == 0:
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    if seconds == 86400:
        return "0 0 * * *"
    if seconds == 7 * 86400:  # counted from 1970-01-01, a Thursday
        return "0 0 * * 4"
    raise ConfigError(
        f"Job {job.name!r} runs every {job.schedule_text.removeprefix('every ')}, which has "
        "no crontab form; declare cron='...' for it (Airflow's export takes any interval)."
    )


def _command(bin_path: str, repo: FeatureRepo, job: str, *when: str) -> list[str]:
    return [bin_path, "--repo", str(repo.path), "schedule", "once", job, *when]


def _settings(env: dict[str, str]) -> dict[str, str]:
    return {k: env[k] for k in SETTINGS if env.get(k)}


def crontab(repo: FeatureRepo, *, bin_path: str, env: dict[str, str]) -> str:
    jobs = [j for j in repo.jobs.values() if j.active]
    logs = repo.data_dir / "logs"
    lines = [
        f"# lifecycle jobs of {repo.path} (`lifecycle schedule export crontab`)",
        "# Times are UTC: CRON_TZ is read by cronie; with another cron, run it in UTC.",
        f"# Output goes to {logs}/JOB.log (create the folder first).",
        "CRON_TZ=UTC",
        "SHELL=/bin/sh",
        *(f"{k}={v}" for k, v in _settings(env).items()),
    ]
    for job in jobs:
        command = shlex.join(_command(bin_path, repo, job.name, "--due"))
        log = shlex.quote(str(logs / f"{job.name}.log"))
        lines.append(f"# {job.name}: {job.command_name}, {job.schedule_text}")
        lines.append(f"{cron_expression(job)} {command} >> {log} 2>&1")
    return "\n".join(lines) + "\n"


def _k8s_name(job: str) -> str:
    return ("lifecycle-" + job.replace("_", "-"))[:52].rstrip("-")


def k8s_cronjobs(
    repo: FeatureRepo, *, image: str, repo_path: str, bin_path: str, env: dict[str, str]
) -> list[dict]:
    """One ``batch/v1`` CronJob manifest per job; the repo at ``repo_path`` in the image."""
    manifests = []
    settings = [{"name": k, "value": v} for k, v in _settings(env).items()]
    for job in (j for j in repo.jobs.values() if j.active):
        assert isinstance(job.grace, timedelta)
        spec: dict = {
            "schedule": cron_expression(job),
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,  # the job's own retries (with backoff) apply
                    "template": {
                        "metadata": {"labels": {"app.kubernetes.io/name": "lifecycle"}},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "lifecycle",
                                    "image": image,
                                    "command": [bin_path],
                                    "args": [
                                        "--repo",
                                        repo_path,
                                        "schedule",
                                        "once",
                                        job.name,
                                        "--due",
                                    ],
                                    "envFrom": [
                                        {
                                            "configMapRef": {
                                                "name": "lifecycle-env",
                                                "optional": True,
                                            }
                                        }
                                    ],
                                    **({"env": settings} if settings else {}),
                                }
                            ],
                        },
                    },
                }
            },
        }
        if job.missed == "skip":  # a start later than the grace is a missed tick
            spec["startingDeadlineSeconds"] = max(10, int(job.grace.total_seconds()))
        manifests.append(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {
                    "name": _k8s_name(job.name),
                    "labels": {
                        "app.kubernetes.io/name": "lifecycle",
                        "lifecycle/job": job.name.replace("_", "-"),
                    },
                    "annotations": {"lifecycle/command": job.command_name},
                },
                "spec": spec,
            }
        )
    return manifests


def k8s_yaml(manifests: list[dict]) -> str:
    import yaml

    return "---\n".join(yaml.safe_dump(m, sort_keys=False) for m in manifests)


def _start(job: Job, now: datetime) -> datetime:
    """The DAG's start: the job's first tick after the day of the export."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = job.next_tick(day - timedelta(microseconds=1))
    return first or EPOCH


def airflow_dag(
    repo: FeatureRepo, *, bin_path: str, env: dict[str, str], now: datetime | None = None
) -> str:
    """A DAG file: one DAG per job, its upstream jobs as tasks before it."""
    jobs = repo.jobs
    now = now or datetime.now(UTC)
    settings = _settings(env)
    blocks = []
    for job in (j for j in jobs.values() if j.active):
        if job.cron is not None:
            schedule = repr(cron_expression(job))
        else:
            assert isinstance(job.every, timedelta)
            schedule = f"timedelta(seconds={int(job.every.total_seconds())})"
        start = _start(job, now)
        tasks = [*ancestors(jobs, job.name), job.name]
        lines = [
            f"with DAG(\n    dag_id={'lifecycle_' + job.name!r},\n"
            f"    description={(job.description or job.command_name)!r},\n"
            f"    schedule={schedule},\n"
            f"    start_date=datetime({start.year}, {start.month}, {start.day}, {start.hour}, "
            f"{start.minute}, tzinfo=timezone.utc),\n"
            f"    catchup={job.missed == 'catch_up'},\n"
            "    max_active_runs=1,\n"
            "    tags=['lifecycle'],\n) as dag:"
        ]
        for name in tasks:
            command = shlex.join(_command(bin_path, repo, name, "--at")) + " " + TICK
            lines.append(
                f"    t_{name} = BashOperator(task_id={name!r}, bash_command={command!r}, env=ENV, "
                "append_env=True)"
            )
        for name in tasks:
            for upstream in jobs[name].after:
                if upstream in tasks:
                    lines.append(f"    t_{upstream} >> t_{name}")
        blocks.append("\n".join(lines))
    return AIRFLOW_HEADER.format(repo=repo.path, env=repr(settings)) + "\n\n".join(blocks) + "\n"


TICK = '"{{ data_interval_end.isoformat() }}"'
AIRFLOW_HEADER = '''"""lifecycle jobs of {repo} (`lifecycle schedule export airflow`).

One DAG per job; its upstream jobs are tasks before it. Every task runs
`lifecycle schedule once JOB --at <the run's tick>`, which claims and records the
run in the project's database (one run per job and tick, whoever starts it).
"""

from datetime import datetime, timedelta, timezone

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

ENV = {env}

'''


def default_bin() -> str:
    import shutil
    import sys

    beside = Path(sys.executable).parent / "lifecycle"
    return str(beside) if beside.exists() else (shutil.which("lifecycle") or "lifecycle")
