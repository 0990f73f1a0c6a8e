"""The exports, read as their consumers read them: python-crontab parses the crontab,
the Kubernetes schemas validate the CronJobs, Airflow's own DagBag loads the DAG file
(in a virtual environment of its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from framework.declare.repo import FeatureRepo
from framework.declare.scaffold import init_repo
from framework.errors import ConfigError
from framework.schedule import exports
from tests.helpers import cli

JOBS = """
from framework import Job

def pull(repo, tick):
    return None

load = Job(name="load", command="materialize", every="6h")
pull_partner_feed = Job(name="pull_partner_feed", command=pull, every="15m", missed="catch_up")
nightly = Job(name="nightly", command="apply", cron="30 2 * * *", retries=3, after="load_at_0230")
load_at_0230 = Job(name="load_at_0230", command="materialize", cron="30 2 * * *")
weekly = Job(name="weekly", command="materialize", every="1w")
weekdays = Job(name="weekdays", command="materialize", cron="0 9 * * 1-5")
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> FeatureRepo:
    path = tmp_path_factory.mktemp("exports") / "repo"
    init_repo(path)
    (path / "jobs.py").write_text(JOBS)
    return FeatureRepo(path)


def test_crontab_lines_parse_and_call_the_jobs(repo):
    from crontab import CronTab

    env = {"LIFECYCLE_PREDICTION_DB": "postgresql://ml@db:5432/ml"}
    text = exports.crontab(repo, bin_path="/opt/venv/bin/lifecycle", env=env)
    tab = CronTab(tab=text)
    entries = list(tab)
    assert all(e.is_valid() for e in entries)
    by_job = {e.command.split(" once ")[1].split()[0]: e for e in entries}
    assert sorted(by_job) == sorted(repo.jobs)
    expected = {
        "load": "0 */6 * * *",
        "pull_partner_feed": "*/15 * * * *",
        "nightly": "30 2 * * *",
        "load_at_0230": "30 2 * * *",
        "weekly": "0 0 * * 4",
        "weekdays": "0 9 * * 1-5",
    }
    assert {j: str(e.slices) for j, e in by_job.items()} == expected
    for name, entry in by_job.items():
        assert f"--repo {repo.path} schedule once {name} --due" in entry.command
    assert tab.env["CRON_TZ"] == "UTC"
    assert tab.env["LIFECYCLE_PREDICTION_DB"] == env["LIFECYCLE_PREDICTION_DB"]
    # the crontab's next run of each entry is the job's own next tick
    now = datetime(2025, 6, 4, 10, 7, tzinfo=UTC)
    for name, entry in by_job.items():
        nxt = entry.schedule(date_from=now.replace(tzinfo=None)).get_next()
        assert nxt.replace(tzinfo=UTC) == repo.jobs[name].next_tick(now), name


def test_an_interval_without_a_crontab_form_is_refused(tmp_path):
    init_repo(tmp_path / "r")
    (tmp_path / "r" / "jobs.py").write_text(
        'from framework import Job\nodd = Job(name="odd", command="materialize", every="7m")\n'
    )
    with pytest.raises(ConfigError, match="no crontab form; declare cron="):
        exports.crontab(FeatureRepo(tmp_path / "r"), bin_path="lifecycle", env={})


def test_k8s_cronjobs_validate_against_the_kubernetes_schema(repo):
    import kubernetes_validate

    env = {"LIFECYCLE_FS_YAML": "/app/feature_repo/feature_store.production.yaml"}
    manifests = exports.k8s_cronjobs(
        repo,
        image="registry.example.com/ml:1.4",
        repo_path="/app/feature_repo",
        bin_path="lifecycle",
        env=env,
    )
    docs = list(yaml.safe_load_all(exports.k8s_yaml(manifests)))
    assert docs == manifests and len(docs) == len(repo.jobs)
    for doc in docs:
        for version in ("1.30.0", "1.33.0"):
            kubernetes_validate.validate(doc, version, strict=True)
    by_name = {d["metadata"]["name"]: d for d in docs}
    feed = by_name["lifecycle-pull-partner-feed"]["spec"]
    assert feed["schedule"] == "*/15 * * * *" and "startingDeadlineSeconds" not in feed
    container = feed["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-3:] == ["once", "pull_partner_feed", "--due"]
    assert container["env"] == [{"name": "LIFECYCLE_FS_YAML", "value": env["LIFECYCLE_FS_YAML"]}]
    assert by_name["lifecycle-load"]["spec"]["startingDeadlineSeconds"] == 3600
    # a manifest that breaks the schema is caught by the same check (the check can fail)
    broken = json.loads(json.dumps(docs[0]))
    broken["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = 7
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)
    unknown = json.loads(json.dumps(docs[0]))
    unknown["spec"]["retries"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, "1.30.0", strict=True)


def test_cli_exports(repo, tmp_path):
    out = tmp_path / "dags" / "jobs.py"
    result = cli(repo, "schedule", "export", "airflow", "--out", str(out))
    assert result.exit_code == 0, result.output
    compile(out.read_text(), str(out), "exec")
    result = cli(repo, "schedule", "export", "k8s")
    assert result.exit_code == 2 and "needs --image" in result.output
    result = cli(repo, "schedule", "export", "k8s", "--image", "ml:1")
    assert result.exit_code == 0 and result.output.count("kind: CronJob") == len(repo.jobs)
    result = cli(repo, "schedule", "export", "crontab")
    assert result.exit_code == 0 and "schedule once load --due" in result.output


AIRFLOW = "apache-airflow==3.3.2"
LOAD_DAGS = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag in bag.dags.values():
    out["dags"][dag.dag_id] = {
        "timetable": type(dag.timetable).__name__,
        "summary": repr(dag.timetable),
        "catchup": dag.catchup,
        "tasks": {t.task_id: {"upstream": sorted(t.upstream_task_ids), "command": t.bash_command}
                  for t in dag.tasks},
    }
print(json.dumps(out))
"""


def _airflow_python() -> str:
    """Python of a virtual environment with Airflow (made once, kept under the cache)."""
    root = Path(
        os.environ.get("LIFECYCLE_AIRFLOW_VENV", Path.home() / ".cache" / "lifecycle-airflow")
    )
    python = root / "bin" / "python"
    marker = root / f"{AIRFLOW}.ok"
    if marker.exists():
        return str(python)
    why = None
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(root)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", AIRFLOW],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if done.returncode != 0:
            why = done.stderr.strip().splitlines()[-1:] or ["pip failed"]
    except (subprocess.SubprocessError, OSError) as exc:
        why = [str(exc)]
    if why:
        reason = f"Airflow cannot be installed in a virtual environment here ({why[0]})"
        if os.environ.get("LIFECYCLE_REQUIRE_AIRFLOW"):
            pytest.fail(f"LIFECYCLE_REQUIRE_AIRFLOW is set but {reason}")
        pytest.skip(reason)
    marker.write_text("")
    return str(python)


@pytest.mark.slow
def test_airflow_loads_the_dag_file_with_its_own_dagbag(repo, tmp_path):
    python = _airflow_python()
    folder = tmp_path / "dags"
    folder.mkdir()
    now = datetime(2025, 6, 4, 10, 7, tzinfo=UTC)
    (folder / "lifecycle_jobs.py").write_text(
        exports.airflow_dag(repo, bin_path="/opt/venv/bin/lifecycle", env={}, now=now)
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow_home")}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [python, "-c", textwrap.dedent(LOAD_DAGS), str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["errors"] == {}
    dags = loaded["dags"]
    assert sorted(dags) == sorted(f"lifecycle_{j}" for j in repo.jobs)
    nightly = dags["lifecycle_nightly"]
    assert nightly["tasks"]["nightly"]["upstream"] == ["load_at_0230"]
    assert nightly["tasks"]["load_at_0230"]["upstream"] == []
    assert "30 2 * * *" in nightly["summary"] and nightly["catchup"] is False
    feed = dags["lifecycle_pull_partner_feed"]
    assert feed["catchup"] is True and feed["timetable"] == "DeltaTriggerTimetable"
    command = feed["tasks"]["pull_partner_feed"]["command"]
    assert command.startswith(
        f"/opt/venv/bin/lifecycle --repo {repo.path} schedule once pull_partner_feed --at"
    )
    assert "{{ data_interval_end.isoformat() }}" in command
