"""FeatureRepo's catalog: every location in one place; report folders never collide."""

from __future__ import annotations

import threading

import pytest

from framework.declare.repo import FeatureRepo
from framework.errors import ConfigError
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
