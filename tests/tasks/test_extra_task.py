"""A sixth task kind in one file: Poisson regression of a count, taken from its
declaration through training, the model card, ``POST /predict``, batch scoring and
realized performance without touching the package.

The kind (below) is a subclass of ``RegressionTask`` that changes what differs: its
candidates (LightGBM with the Poisson objective), its metrics (the mean Poisson deviance
chooses) and its realized metrics. Everything else is the shared machinery. Each number
is checked against an oracle computed here from the raw events and the formula.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from framework.tasks import TASKS, register_task
from framework.tasks.estimators import lightgbm
from framework.tasks.regression import RegressionTask
from tests.helpers import T, clone_repo

pytestmark = pytest.mark.slow


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    """Mean Poisson deviance, 2 * mean(y log(y / mu) - (y - mu)), with 0 log 0 = 0."""
    mu = np.maximum(np.asarray(mu, dtype=float), 1e-12)
    y = np.asarray(y, dtype=float)
    ratio = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return float(2 * np.mean(ratio - (y - mu)))


class PoissonTask(RegressionTask):
    """Counts: how many times (purchases, visits, tickets) in the horizon?"""

    name = "poisson"
    noun = "a Poisson regression"
    metrics = ("poisson_deviance", "mae", "rmse")
    candidates = ("baseline", "lightgbm")
    label_types = ("Count", "LabelTable")

    def estimator(self, name: str, seed: int = 0) -> Any:
        if name == "lightgbm":
            return lightgbm("regressor", seed, objective="poisson")
        return super().estimator(name, seed)

    def lower_is_better(self, metric: str) -> bool:
        return True  # deviance and errors

    def evaluate(self, y, score, threshold=0.5, classes=None, **context):
        from sklearn.metrics import mean_absolute_error, mean_poisson_deviance

        y, mu = np.asarray(y, dtype=float), np.maximum(np.asarray(score, dtype=float), 1e-12)
        return {
            "poisson_deviance": float(mean_poisson_deviance(y, mu)),
            "mae": float(mean_absolute_error(y, mu)),
            "rmse": float(np.sqrt(np.mean((y - mu) ** 2))),
        }

    def realized_metrics(self, y, score, predicted, lists=None, k=10):
        return self.evaluate(y, score)


PROBLEM = """
from sources import events_source

from framework.declare.problems import Count, Problem, WeeklyCutoffs

purchases = Problem(
    name="purchases",
    task="poisson",
    events=events_source,
    label=Count(horizon_days=30, where='event_type == "purchase"'),
    spine=WeeklyCutoffs(active_within_days=30, every_days=7, warmup_days=90),
    feature_service="spend_model_v1",
    metric="poisson_deviance",
    success_threshold=5.0,
    tuning_budget=1,
)
"""


@pytest.fixture(scope="module")
def poisson_repo(applied_repo, tmp_path_factory):
    """The small example repo with the count problem declared beside its own, trained
    and promoted, materialized at ``T``."""
    from framework.declare.repo import FeatureRepo
    from framework.features.materialize import materialize
    from framework.models.registry import registry_of
    from framework.training.run import run_training

    before = dict(TASKS)
    register_task(PoissonTask())
    base = clone_repo(applied_repo, tmp_path_factory.mktemp("poisson") / "repo")
    (base.path / "counts.py").write_text(PROBLEM)
    repo = FeatureRepo(base.path)
    run = run_training(repo, "purchases")
    registry_of(repo).promote("purchases", run.artifact.version)
    materialize(repo, end=T)
    yield repo, run
    TASKS.clear()
    TASKS.update(before)


def purchases_after(repo, at: pd.Timestamp, users: list[int]) -> np.ndarray:
    """The label by brute force: each user's purchases in (at, at + 30 days]."""
    events = pd.read_parquet(repo.data_dir / "events.parquet")
    window = events[
        (events.event_type == "purchase")
        & (events.event_timestamp > at)
        & (events.event_timestamp <= at + pd.Timedelta(days=30))
    ]
    counts = window.groupby("user_id").size()
    return np.array([counts.get(u, 0) for u in users], dtype=float)


def test_the_kind_is_declared_trained_and_judged_by_its_own_metric(poisson_repo):
    repo, run = poisson_repo
    problem = repo.problem("purchases")
    assert problem.kind.name == "poisson" and not problem.higher_is_better
    result = run.result
    assert [c.name for c in result.candidates] == ["baseline", "lightgbm"]
    lgbm = next(c for c in result.candidates if c.name == "lightgbm")
    assert lgbm.model.named_steps["model"].get_params()["objective"] == "poisson"
    # the test metric, against the formula on the test labels and scores
    y = result.split.test["label"].to_numpy(dtype=float)
    assert result.test["poisson_deviance"] == pytest.approx(
        poisson_deviance(y, result.test_scores), rel=1e-9
    )
    # the labels of the split are the brute-force counts
    test = result.split.test
    at = test["event_timestamp"].iloc[0]
    rows = test[test["event_timestamp"] == at]
    users = rows["user_id"].tolist()
    np.testing.assert_array_equal(
        rows["label"].to_numpy(dtype=float), purchases_after(repo, at, users)
    )
    # the winner is chosen on validation by the lower deviance
    best = min(result.candidates, key=lambda c: c.validation["poisson_deviance"])
    assert result.winner is best
    text = result.to_text()
    assert "poisson_deviance" in text and "success (poisson_deviance <= 5.0)" in text


def test_the_card_shows_the_kind_s_metrics_and_plots(poisson_repo):
    _, run = poisson_repo
    page = (run.artifact.path / "card.html").read_text()
    assert "<th>poisson_deviance</th>" in page and "Predicted vs actual (test)" in page
    assert run.artifact.meta.task == "poisson"


def test_predict_batch_and_realized_performance(poisson_repo, prediction_db):
    from framework.deploy.batch import predict_batch
    from framework.deploy.service import background_server, create_app
    from framework.monitor.performance import realized_performance
    from tests.helpers import batch_runs, user_ids

    repo, _ = poisson_repo
    users = user_ids(repo)[:40]
    at = T
    body = {
        "problem": "purchases",
        "entities": [{"user_id": u, "event_timestamp": int(at.timestamp())} for u in users],
    }
    with background_server(create_app(repo, log_url=prediction_db)) as url:
        response = requests.post(f"{url}/predict", json=body, timeout=60)
    assert response.status_code == 200, response.text
    online = {p["user_id"]: p for p in response.json()["predictions"]}
    assert all(p["score"] > 0 for p in online.values())  # a Poisson mean is positive
    assert all("label" not in p for p in online.values())  # a number, not a class
    predict_batch(repo, "purchases", at, entities=users, db=prediction_db)
    batch = batch_runs(prediction_db, at)
    assert sorted(batch.user_id.tolist()) == sorted(users)
    for row in batch.itertuples():
        assert row.score == pytest.approx(online[row.user_id]["score"], abs=1e-12)
    report = realized_performance(repo, "purchases", db=prediction_db)
    version = next(iter(report.versions))
    realized = report.versions[version]["realized"]
    assert report.labeled == 2 * len(users) and realized["n"] == 2 * len(users)
    truth = purchases_after(repo, at, users)
    scores = np.array([online[u]["score"] for u in users])
    # both the logged and the batch predictions: the same scores and labels, twice
    expected = poisson_deviance(np.r_[truth, truth], np.r_[scores, scores])
    assert realized["poisson_deviance"] == pytest.approx(expected, rel=1e-9)
