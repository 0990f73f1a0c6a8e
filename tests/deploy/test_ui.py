"""The web pages: index, model cards and drift reports, over HTTP and in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
import requests

from framework.models.registry import registry_of
from tests.helpers import cli, current_features


@pytest.fixture(scope="module")
def pages(served, tmp_path_factory):
    """The served repo with one drift report written by `lifecycle monitor`."""
    repo, url = served
    path, _ = current_features(
        repo, tmp_path_factory.mktemp("ui"), shift="user_page_views_google_count_30d"
    )
    result = cli(repo, "monitor", "churn", "--current", path)
    assert result.exit_code == 3, result.output
    reports = sorted((repo.data_dir / "reports" / "churn").iterdir())
    assert (reports[-1] / "report.json").is_file()
    return repo, url, reports[-1].name


@pytest.fixture(scope="module")
def assessed(pages):
    """The name of the report written by `lifecycle assess churn`."""
    repo = pages[0]
    result = cli(repo, "assess", "churn")
    assert result.exit_code == 0, result.output
    return sorted((repo.data_dir / "reports" / "churn").glob("*-assess-all"))[-1].name


def test_the_assessment_is_listed_and_served(pages, assessed):
    _, url, _ = pages
    assert f"/ui/reports/churn/{assessed}" in requests.get(f"{url}/ui", timeout=30).text
    page = requests.get(f"{url}/ui/reports/churn/{assessed}", timeout=30)
    assert page.status_code == 200 and "do we have enough data?" in page.text
    assert page.text.count("data:image/png;base64,") == 1 and "Learning curve" in page.text


def test_index_lists_cards_and_reports_and_pages_have_plots(pages):
    repo, url, report = pages
    index = requests.get(f"{url}/ui", timeout=30)
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    version = registry_of(repo).get("churn").version
    assert (
        f"/ui/models/churn/{version}" in index.text and f"/ui/reports/churn/{report}" in index.text
    )
    card = requests.get(f"{url}/ui/models/churn/{version}", timeout=30)
    assert card.status_code == 200 and card.text.count("data:image/png;base64,") >= 2
    page = requests.get(f"{url}/ui/reports/churn/{report}", timeout=30)
    assert page.status_code == 200 and "user_page_views_google_count_30d" in page.text
    assert page.text.count("data:image/png;base64,") >= 3  # PSI bars, the drifted feature, scores


def test_reports_over_time_drift_history_and_realized_metrics(pages, tmp_path, prediction_db):
    repo, url, _ = pages
    path, _ = current_features(repo, tmp_path, shift="user_page_views_facebook_count_30d")
    assert cli(repo, "monitor", "churn", "--current", path).exit_code == 3
    latest = sorted((repo.data_dir / "reports" / "churn").glob("*-drift-*"))[-1]
    page = (latest / "report.html").read_text()
    assert "Drift over time" in page  # two runs now: PSI per run
    db = prediction_db
    from framework.deploy.batch import predict_batch
    from tests.helpers import T

    predict_batch(repo, "churn", T, db=db)
    result = cli(repo, "performance", "churn", "--db", db)
    assert result.exit_code == 0, result.output
    performance = sorted((repo.data_dir / "reports" / "churn").glob("*-performance-all"))[-1]
    index = requests.get(f"{url}/ui", timeout=30).text
    assert f"/ui/reports/churn/{performance.name}" in index
    shown = requests.get(f"{url}/ui/reports/churn/{performance.name}", timeout=30)
    assert shown.status_code == 200 and "Metrics over time" in shown.text
    assert "data:image/png;base64," in shown.text


@pytest.mark.parametrize(
    "path",
    [
        "/ui/models/churn/..%2F..%2Fregistry.db",
        "/ui/models/..%2F..%2Fdata/v1",
        "/ui/reports/churn/..%2F..%2F..%2Ffeature_store.yaml",
        "/ui/models/churn/v999",
    ],
)
def test_names_cannot_escape_the_folders(pages, path):
    _, url, _ = pages
    response = requests.get(f"{url}{path}", timeout=30)
    assert response.status_code == 404
    assert "project:" not in response.text and "SQLite" not in response.text


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "Chromium is not installed (Debian package chromium; .ci/run installs it)"
    if os.environ.get("LIFECYCLE_REQUIRE_BROWSER"):
        pytest.fail(f"LIFECYCLE_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


def _screenshot(browser: str, url: str, out) -> np.ndarray:
    import matplotlib.image

    subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1400",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return matplotlib.image.imread(out)


def test_pages_render_in_headless_chromium(pages, assessed, tmp_path):
    browser = _chromium()
    repo, url, report = pages
    version = registry_of(repo).get("churn").version
    for name, path in (
        ("index", "/ui"),
        ("card", f"/ui/models/churn/{version}"),
        ("report", f"/ui/reports/churn/{report}"),
        ("assessment", f"/ui/reports/churn/{assessed}"),
    ):
        image = _screenshot(browser, f"{url}{path}", tmp_path / f"{name}.png")
        rgb = image[..., :3]
        ink = (rgb.mean(axis=2) < 0.9).mean()  # share of non-white pixels
        colour = (rgb.max(axis=2) - rgb.min(axis=2) > 0.2).mean()  # saturated pixels: plots
        assert ink > 0.01, f"{name} looks blank"
        if name != "index":
            assert colour > 0.005, f"{name} shows no coloured plot"
