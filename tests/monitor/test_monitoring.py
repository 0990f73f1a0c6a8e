"""`lifecycle monitor`: the training reference, the prediction log or a file as current data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import requests

from framework.deploy.service import background_server, create_app
from framework.errors import ArtifactError, DataError
from framework.models.registry import ModelArtifact, registry_of
from framework.models.scoring import score
from framework.monitor.drift import detect_drift
from tests.helpers import T, cli, current_features, user_ids


def test_the_reference_sample_is_kept_with_the_model(served):
    repo, _ = served
    artifact = registry_of(repo).get("churn")
    reference = artifact.load_reference()
    features = artifact.meta.features
    assert list(reference.columns) == [*features, "label", "score"]
    assert 0 < len(reference) <= 20_000
    again, _ = score(artifact.meta, artifact.load_model(), reference)
    np.testing.assert_allclose(reference["score"].to_numpy(), again, rtol=0, atol=1e-12)
    bare = ModelArtifact(artifact.path, artifact.meta.with_(reference={}))
    with pytest.raises(ArtifactError, match="no reference statistics"):
        bare.load_reference()


def test_monitor_reads_the_prediction_log(served, prediction_db):
    repo, _ = served
    db = prediction_db
    users = user_ids(repo)[:120]
    with background_server(create_app(repo, log_url=db)) as url:
        for lo in range(0, len(users), 40):
            body = {
                "problem": "churn",
                "entities": [
                    {"user_id": u, "event_timestamp": int(T.timestamp())}
                    for u in users[lo : lo + 40]
                ],
            }
            assert requests.post(f"{url}/predict", json=body, timeout=30).status_code == 200
    from framework.deploy.batch import predict_batch

    predict_batch(repo, "churn", T - pd.Timedelta(days=7), entities=users[:50], db=db)
    report = detect_drift(repo, "churn", db=db)
    features = registry_of(repo).get("churn").meta.features
    assert report.rows == len(users) + 50  # the logged predictions and the batch run
    # their labels are known (30 days after T is inside the data): the label is compared too
    assert report.target_drift is not None and report.target_drift.test == "chi2"
    assert [f.name for f in report.features] == features
    assert report.prediction_drift is not None
    result = cli(repo, "monitor", "churn", "--db", db, "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == (0 if out["action"] == "none" else 3)
    assert out["action"] == report.action and len(out["features"]) == len(features)
    empty = cli(repo, "monitor", "churn", "--db", db, "--from", "2030-01-01T00:00:00Z")
    assert empty.exit_code == 1 and "No logged or batch predictions" in empty.output, empty.output


def test_a_shifted_feature_in_a_current_file_is_caught(served, tmp_path):
    repo, _ = served
    shifted = "user_page_views_google_count_30d"
    path, _ = current_features(repo, tmp_path, shift=shifted)
    result = cli(repo, "monitor", "churn", "--current", path, "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 3 and out["drifted"] is True
    drifted = {f["name"] for f in out["features"] if f["drifted"]}
    assert shifted in drifted
    assert out["action"] in ("investigate", "retrain")
    text = cli(repo, "monitor", "churn", "--current", path)
    assert "Action:" in text.output and shifted in text.output


def test_a_current_file_missing_a_feature_is_one_clear_error(served, tmp_path):
    repo, _ = served
    path, frame = current_features(repo, tmp_path)
    frame.drop(columns=["plan"]).to_parquet(path)
    result = cli(repo, "monitor", "churn", "--current", path)
    assert result.exit_code == 1 and "lacks feature(s) ['plan']" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(DataError):
        detect_drift(repo, "churn", current=path)


def test_skew_is_zero_when_served_at_the_materialization_time_and_finds_an_injected_one(
    served, tmp_path
):
    import sqlite3

    from framework.monitor.skew import skew

    repo, _ = served
    db = tmp_path / "skew.db"
    users = [*user_ids(repo)[:60], 10_000_000]
    with background_server(create_app(repo, log_url=f"sqlite:///{db}")) as url:
        for problem in ("churn", "spend"):
            body = {
                "problem": problem,
                "entities": [{"user_id": u, "event_timestamp": int(T.timestamp())} for u in users],
            }
            response = requests.post(f"{url}/predict", json=body, timeout=30)
            assert response.status_code == 200
    clean = skew(repo, "churn", db=f"sqlite:///{db}")
    assert clean.rows == len(users) and clean.skewed == []
    assert len(clean.features) == len(registry_of(repo).get("churn").meta.features)
    assert cli(repo, "skew", "spend", "--db", f"sqlite:///{db}").exit_code == 0
    # Corrupt what was logged for one entity: the report names the feature and the row.
    con = sqlite3.connect(db)
    entity, features = con.execute(
        "SELECT entity_id, features FROM prediction_log WHERE problem = 'churn' LIMIT 1"
    ).fetchone()
    values = json.loads(features)
    values["user_events_count_30d"] += 1
    con.execute(
        "UPDATE prediction_log SET features = ? WHERE problem = 'churn' AND entity_id = ?",
        (json.dumps(values), entity),
    )
    con.commit()
    con.close()
    result = cli(repo, "skew", "churn", "--db", f"sqlite:///{db}", "--json")
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    assert out["skewed"] == ["user_events_count_30d"]
    (bad,) = [f for f in out["features"] if f["mismatches"]]
    assert bad["mismatches"] == 1 and bad["examples"][0]["entity_id"] == entity
    assert bad["examples"][0]["served"] == bad["examples"][0]["offline"] + 1


def test_realized_performance_joins_the_labels_known_since(served, prediction_db):
    from framework.deploy.batch import predict_batch
    from framework.monitor.performance import realized_performance

    repo, _ = served
    db = prediction_db
    users = user_ids(repo)[:80]
    late = pd.Timestamp("2025-12-20T00:00:00Z")  # its 30-day horizon is past the data's end
    with background_server(create_app(repo, log_url=db)) as url:
        for at in (T, T + pd.Timedelta(days=7), late):
            body = {
                "problem": "churn",
                "entities": [{"user_id": u, "event_timestamp": int(at.timestamp())} for u in users],
            }
            assert requests.post(f"{url}/predict", json=body, timeout=30).status_code == 200
    predict_batch(repo, "churn", T, entities=users, db=db)
    report = realized_performance(repo, "churn", db=db)
    assert report.labeled == 3 * len(users) and report.pending == len(users)
    # the labels, by brute force from the raw events: no event in (t, t + 30 days]
    events = pd.read_parquet(repo.data_dir / "events.parquet")
    truth = {}
    for at in (T, T + pd.Timedelta(days=7)):
        window = events[
            (events.event_timestamp > at) & (events.event_timestamp <= at + pd.Timedelta(days=30))
        ]
        active = set(window.user_id)
        truth[at] = np.array([0 if u in active else 1 for u in users])
    from sklearn.metrics import precision_score, recall_score

    from framework.monitor.performance import predictions_of

    preds = predictions_of(db, "churn")

    done = preds[preds["at"] < late]
    y = np.array(
        [truth[at][users.index(int(e))] for e, at in zip(done.entity_id, done["at"], strict=True)]
    )
    version = registry_of(repo).get("churn").version
    realized = report.versions[version]["realized"]
    assert realized["n"] == len(done)
    assert realized["precision"] == pytest.approx(
        precision_score(y, done["predicted"].astype(int), zero_division=0)
    )
    assert realized["recall"] == pytest.approx(
        recall_score(y, done["predicted"].astype(int), zero_division=0)
    )
    assert {s["week"] for s in report.versions[version]["slices"]} == {"2025-09-15", "2025-09-22"}
    result = cli(repo, "performance", "churn", "--db", db, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["pending"] == len(users)
    # A version gone from the registry keeps its realized metrics, without test ones ...
    folder = registry_of(repo).get("churn").path
    moved = folder.with_name("gone")
    folder.rename(moved)
    try:
        assert realized_performance(repo, "churn", db=db).versions[version]["test"] == {}
    finally:
        moved.rename(folder)
    # ... but a registry that cannot be read is an error, not a silent "no test metric".
    meta = folder / "model.json"
    text = meta.read_text()
    meta.write_text("{}")
    try:
        with pytest.raises(ArtifactError, match="lacks"):
            realized_performance(repo, "churn", db=db)
    finally:
        meta.write_text(text)


def test_retrain_promotes_only_a_better_challenger(served, tmp_path):
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import Pipeline

    from framework.models.scoring import to_model_frame
    from framework.monitor.retrain import retrain
    from framework.tasks.estimators import preprocessor as _preprocessor
    from tests.helpers import clone_repo

    repo = clone_repo(served[0], tmp_path / "repo")
    registry = registry_of(repo)
    champion = registry.get("churn")
    same = retrain(repo, "churn")  # same data, same pipeline: an equal challenger
    assert same.champion == champion.version and not same.promoted
    assert same.challenger_score == pytest.approx(same.champion_score, abs=1e-9)
    assert registry.get("churn").version == champion.version
    # A weak champion (always the base rate) loses to the challenger.
    reference = champion.load_reference()
    x = to_model_frame(reference, champion.meta.features)
    weak = Pipeline([("preprocess", _preprocessor(x)), ("model", DummyClassifier())])
    weak.fit(x, reference["label"].astype(int))
    meta = champion.meta.with_(version="", sha256="", reference={})
    weak_version = registry.register(weak, meta).version
    registry.promote("churn", weak_version)
    result = cli(repo, "retrain", "churn", "--json")
    assert result.exit_code == 0, result.output
    better = json.loads(result.stdout)
    assert better["champion"] == weak_version and better["promoted"] is True
    assert better["challenger_score"] > better["champion_score"]
    assert registry.get("churn").version == better["challenger"]
    decisions = registry.decisions("churn")
    assert [d["promoted"] for d in decisions] == [False, True]
    assert decisions[-1]["champion_score"] == pytest.approx(better["champion_score"])
