"""FeatureRepo's catalog: every location in one place; report folders never collide."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner

from framework.cli import main
from framework.declare.repo import FeatureRepo
from framework.errors import ConfigError, FeatureRepoError
from tests.helpers import copy_example_repo


@pytest.fixture
def repo(tmp_path):
    return FeatureRepo(copy_example_repo(tmp_path / "feature_repo", users=None))


def test_the_catalog_names_every_location_under_data(repo):
    data = repo.path / "data"
    assert repo.data_dir == data
    assert (repo.datasets_dir, repo.models_dir, repo.reports_dir) == (
        data / "datasets",
        data / "models",
        data / "reports",
    )


def test_report_folders_made_in_the_same_instant_never_collide(repo, monkeypatch):
    """Two runs in the same microsecond (the clock frozen) get two folders."""
    from datetime import UTC, datetime

    frozen = datetime(2025, 9, 17, 13, 45, 10, 123456, tzinfo=UTC)

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return frozen

    monkeypatch.setattr("datetime.datetime", Clock)
    first = repo.new_report_folder("churn", "drift", "v1")
    second = repo.new_report_folder("churn", "drift", "v1")
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name == "20250917T134510123456Z-drift-v1"
    assert second.name == "20250917T134510123456Z-drift-v1-2"


def test_concurrent_report_folders_are_all_distinct(repo):
    made, lock = [], threading.Lock()

    def make():
        folder = repo.new_report_folder("churn", "performance", "all")
        with lock:
            made.append(folder)

    threads = [threading.Thread(target=make) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 16 and len(set(made)) == 16


def test_a_missing_repo_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; pass --repo"):
        FeatureRepo(tmp_path / "nowhere")


def _declare(repo: FeatureRepo, text: str) -> None:
    (repo.path / "extra_problems.py").write_text(text)


def test_a_bad_declaration_is_one_line_naming_its_file_line_and_field(repo):
    _declare(
        repo,
        "from framework.declare.problems import Problem\n\n"
        'broken = Problem(name="broken", task="binary", feature_service="x",\n'
        '                 metric="roc_auc", success_threshold=0.6)\n',
    )
    with pytest.raises(FeatureRepoError) as caught:
        _ = FeatureRepo(repo.path).problems
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("extra_problems.py:3: TypeError"), message
    assert "'label'" in message
    result = CliRunner().invoke(main, ["--repo", str(repo.path), "assess", "broken"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: extra_problems.py:3:"), result.output


def test_a_checked_declaration_error_also_names_where(repo):
    _declare(
        repo,
        "from framework.declare.problems import AnyEvent, Problem\n"
        "from sources import events_source\n\n"
        'nameless = Problem(name="Bad Name", task="binary", events=events_source,\n'
        '    label=AnyEvent(horizon=7), feature_service="x", metric="roc_auc",\n'
        "    success_threshold=0.6)\n",
    )
    with pytest.raises(FeatureRepoError, match=r"^extra_problems.py:4: Problem name 'Bad Name'"):
        _ = FeatureRepo(repo.path).problems


def test_a_label_table_problem_needs_neither_events_nor_spine(repo, tmp_path):
    from datetime import timedelta

    from feast import FileSource

    from framework.declare.problems import AnyEvent, Cutoffs, LabelTable, Problem

    table = FileSource(name="t", path=str(tmp_path / "t.parquet"), timestamp_field="ts")
    common = dict(task="binary", feature_service="x", metric="roc_auc", success_threshold=0.6)
    label = LabelTable(source=table, column="y", horizon=timedelta(days=3))
    assert Problem(name="labelled", label=label, **common).spine is None
    with pytest.raises(FeatureRepoError, match="remove spine="):
        Problem(name="labelled", label=label, spine=Cutoffs(every=7), **common)
    with pytest.raises(FeatureRepoError, match="declare events="):
        Problem(name="evented", label=AnyEvent(horizon=7), spine=Cutoffs(every=7), **common)


def test_repo_files_are_feasts_list(repo):
    from feast.repo_operations import get_repo_files

    from framework.declare.loader import repo_files

    (repo.path / "drafts").mkdir()
    (repo.path / "drafts" / "old.py").write_text("x = 1\n")
    (repo.path / "sub").mkdir()
    (repo.path / "sub" / "more.py").write_text("y = 2\n")
    (repo.path / "sub" / "__init__.py").write_text("")
    assert repo_files(repo.path) == get_repo_files(repo.path)
    assert repo.path / "drafts" / "old.py" in repo_files(repo.path)
    (repo.path / ".feastignore").write_text("drafts/  # not declarations\n\n*/more.py\n")
    assert repo_files(repo.path) == get_repo_files(repo.path)
    assert repo.path / "drafts" / "old.py" not in repo_files(repo.path)


def _listed(path, what: str) -> tuple[list[str], bool]:
    """The names of the repo's jobs or experiments, read in a new process, and whether
    that process imported Feast."""
    import subprocess
    import sys

    code = (
        "import sys; from framework.declare.repo import FeatureRepo; "
        f"r = FeatureRepo({str(path)!r}); print(','.join(r.{what})); print('feast' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0].split(","), out[1] == "True"


def test_jobs_and_experiments_are_read_from_a_snapshot_while_no_file_changes(tmp_path):
    path = copy_example_repo(tmp_path / "feature_repo", users=None, experiments=True)
    snapshot = path / "data" / ".declared" / "jobs.json"
    loaded = FeatureRepo(path).jobs  # imports the repo, writes the snapshot
    assert "predict_churn" in loaded and snapshot.exists()
    names, imported = _listed(path, "jobs")  # a new process reads the snapshot
    assert names == list(loaded) and not imported
    read = FeatureRepo(path).jobs
    assert list(read) == list(loaded) and read == loaded  # fields equal, in order
    experiments = FeatureRepo(path).experiments
    assert _listed(path, "experiments") == (list(experiments), False)
    # a changed file is read again: the snapshot is keyed by every file's bytes
    text = (path / "schedules.py").read_text().replace("predict_churn", "score_churn")
    (path / "schedules.py").write_text(text)
    renamed = FeatureRepo(path).jobs
    assert "score_churn" in renamed and "predict_churn" not in renamed
    assert "score_churn" in snapshot.read_text()


def test_a_job_running_a_function_is_not_snapshotted(tmp_path):
    from framework.declare.loader import cached
    from framework.declare.schedules import Job

    path = copy_example_repo(tmp_path / "feature_repo", users=None)
    job = Job(name="custom", command=print, cron="0 6 * * *")
    calls = []

    def load():
        calls.append(1)
        return {"custom": job}

    for _ in range(2):
        assert cached(path, path / "data", "jobs", Job, load) == {"custom": job}
    assert len(calls) == 2 and not (path / "data" / ".declared" / "jobs.json").exists()
