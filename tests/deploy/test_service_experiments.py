"""The service in an experiment, event logging over HTTP, and the Redis online store."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pandas as pd
import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from framework.cli import main
from framework.collect.ingest import inbox_files, read_events
from framework.common.database import engine_url
from framework.declare.experiments import assign
from framework.declare.repo import FeatureRepo
from framework.deploy.service import background_server, create_app
from framework.features.materialize import materialize
from framework.models.registry import registry_of
from framework.monitor.experiment_report import experiment_report
from tests.helpers import (
    EXAMPLE_REPO,
    T,
    clone_repo,
    predict_all,
    redis_yaml,
    register_copy,
    scrape,
    user_ids,
)

AT = int(T.timestamp())


@pytest.fixture(scope="module")
def experiment_repo(served, tmp_path_factory):
    """A copy of the served repo with the example's experiment declared."""
    repo, _ = served
    # the served app may be writing its log while it is copied: the copy starts without it
    copy = clone_repo(repo, tmp_path_factory.mktemp("exp") / "repo", leave_out=("predictions.db*",))
    shutil.copy(EXAMPLE_REPO / "experiments.py", copy.path / "experiments.py")
    materialize(copy, end=T)  # the copy's own online store (a new project in production)
    return FeatureRepo(copy.path, copy.fs_yaml)


def test_arms_are_served_logged_and_reported(served, experiment_repo, prediction_db):
    repo, plain_url = served
    exp = experiment_repo.experiment("retention_offers")
    users = user_ids(experiment_repo, 240)
    db = prediction_db
    with background_server(create_app(experiment_repo, log_url=db)) as url:
        models = requests.get(f"{url}/models", timeout=30).json()["models"]
        assert models["churn"]["experiment"]["name"] == "retention_offers"
        assert "experiment" not in models["spend"]
        answers = predict_all(url, "churn", users)
        converted = users[::3]
        events = [
            {
                "user_id": u,
                "event_timestamp": (T + pd.Timedelta(hours=1)).isoformat(),
                "event_type": "conversion",
                "source": "email",
            }
            for u in converted
        ]
        posted = requests.post(f"{url}/events", json={"events": events}, timeout=30)
        assert posted.status_code == 202 and posted.json() == {
            "accepted": len(converted),
            "online": "updated",
        }
        exposures = scrape(url)["lifecycle_experiment_exposures_total"]
    counted = Counter(a["arm"] for a in answers)
    assert exposures == {
        (("arm", arm), ("experiment", "retention_offers")): float(n) for arm, n in counted.items()
    }
    # the same user always gets the same arm, and it is the declared hash's
    arms = assign(exp.salt_text, users, exp.split)
    assert [a["arm"] for a in answers] == arms
    plain = {p["user_id"]: p["score"] for p in predict_all(plain_url, "churn", users)}
    production = registry_of(repo).get("churn").version
    for answer in answers:
        if answer["arm"] == "control":  # policy none: no model, no score
            assert "score" not in answer and "label" not in answer
        else:
            assert answer["score"] == pytest.approx(plain[answer["user_id"]], abs=1e-12)
            assert answer["model_version"] == production
    # every exposure is logged with its experiment and arm; the control has no score
    engine = sa.create_engine(engine_url(db))
    with engine.connect() as conn:
        logged = conn.execute(
            sa.text("SELECT entity_id, arm, score, experiment, model_version FROM prediction_log")
        ).fetchall()
    engine.dispose()
    assert sorted((int(r[0]), r[1]) for r in logged) == sorted(zip(users, arms, strict=True))
    assert all(r[3] == "retention_offers" for r in logged)
    assert all((r[2] is None) == (r[1] == "control") for r in logged)
    assert {r[4] for r in logged if r[1] == "control"} == {"none"}
    # the accepted events are on disk, and the report counts them per arm
    assert inbox_files(experiment_repo)
    assert (read_events(experiment_repo).event_type == "conversion").sum() == len(converted)
    result = experiment_report(
        experiment_repo, "retention_offers", db=db, now=T + pd.Timedelta(days=8)
    )
    for arm in ("control", "treatment"):
        members = {u for u, a in zip(users, arms, strict=True) if a == arm}
        assert result.arms[arm]["exposures"] == len(members)
        assert result.arms[arm]["conversions"] == len(members & set(converted))
    cli = CliRunner().invoke(
        main,
        [
            "--repo",
            str(experiment_repo.path),
            "experiment",
            "report",
            "retention_offers",
            "--db",
            db,
            "--at",
            (T + pd.Timedelta(days=8)).isoformat(),
            "--json",
        ],
    )
    assert cli.exit_code == 0, cli.output
    out = json.loads(cli.output)
    assert out["arms"]["treatment"]["exposures"] == result.arms["treatment"]["exposures"]
    for key in ("lift_abs", "lift_rel", "ci95", "p_value", "srm_p_value", "verdict"):
        assert key in out
    listed = CliRunner().invoke(main, ["--repo", str(experiment_repo.path), "experiment", "list"])
    assert "retention_offers" in listed.output and "control=none" in listed.output


def test_an_arm_can_serve_another_version(experiment_repo, tmp_path, prediction_db):
    repo = clone_repo(experiment_repo, tmp_path / "repo")
    registry = registry_of(repo)
    old = registry.get("churn").version
    new = register_copy(repo, "churn")
    registry.promote("churn", new)
    (repo.path / "experiments.py").write_text(
        "from framework import Experiment\n"
        f"v = Experiment(name='versions', problem='churn', control='{old}', "
        "treatment='production', outcome='event_type == \"conversion\"')\n"
    )
    repo = FeatureRepo(repo.path)
    users = user_ids(repo, 60)
    with background_server(create_app(repo, log_url=prediction_db)) as url:
        answers = predict_all(url, "churn", users)
    arms = assign("versions", users)
    assert {(a["arm"], a["model_version"]) for a in answers} == {
        ("control", old),
        ("treatment", new),
    }
    assert [a["arm"] for a in answers] == arms


GOOD = {
    "user_id": 7,
    "event_timestamp": "2025-09-17T10:00:00Z",
    "event_type": "page_view",
    "source": "google",
}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"user_id": "7"}, "events.0.user_id"),
        ({"event_timestamp": "2025-09-17T10:00:00"}, "events.0.event_timestamp"),
        ({"event_timestamp": "yesterday"}, "events.0.event_timestamp"),
        ({"event_type": ""}, "events.0.event_type"),
        ({"amount": "lots"}, "events.0.amount"),
        ({"color": "red"}, "events.0.color"),
    ],
)
def test_bad_events_are_422_naming_the_field(served, event, field):
    repo, url = served
    before = len(inbox_files(repo))
    response = requests.post(f"{url}/events", json={"events": [{**GOOD, **event}]}, timeout=30)
    assert response.status_code == 422, response.text
    assert any(d["field"] == field for d in response.json()["detail"]), response.text
    assert len(inbox_files(repo)) == before


def test_events_breaking_the_contract_are_422_with_a_report(served):
    repo, url = served
    before = len(inbox_files(repo))
    # What the schema (built from the contract) says: refused with the fields named.
    body = {"events": [GOOD, {**GOOD, "amount": -1.0}, {**GOOD, "event_type": "telepathy"}]}
    response = requests.post(f"{url}/events", json=body, timeout=30)
    assert response.status_code == 422, response.text
    fields = {d["field"] for d in response.json()["detail"]}
    assert fields == {"events.1.amount", "events.2.event_type"}, fields
    # What no schema can say (not in the future): the contract's report, every violation.
    late = {**GOOD, "event_timestamp": "2099-01-01T00:00:00Z"}
    body = {"events": [GOOD, late, {**late, "user_id": 8}]}
    response = requests.post(f"{url}/events", json=body, timeout=30)
    assert response.status_code == 422, response.text
    (violation,) = response.json()["detail"]["violations"]
    assert violation["check"].startswith("event_timestamp in the future")
    assert violation["rows"] == 2 and violation["examples"][0]["row"] == 2
    assert len(inbox_files(repo)) == before


def test_identical_events_are_two_events_and_an_idempotency_key_takes_a_batch_once(served):
    repo, url = served
    # A user the other tests do not score: these events change its features.
    event = {**GOOD, "user_id": 987_654}
    before = len(inbox_files(repo))
    response = requests.post(f"{url}/events", json={"events": [event, event]}, timeout=30)
    assert response.status_code == 202 and response.json()["accepted"] == 2
    assert len(inbox_files(repo)) == before + 1
    key = {"Idempotency-Key": "batch-42"}
    for _ in range(2):  # a client re-sends after a timeout: the same answer, one batch
        again = requests.post(f"{url}/events", json={"events": [event]}, headers=key, timeout=30)
        assert again.status_code == 202 and again.json()["accepted"] == 1
    assert len(inbox_files(repo)) == before + 2
    other = {**event, "event_type": "purchase", "amount": 3.0}
    refused = requests.post(f"{url}/events", json={"events": [other]}, headers=key, timeout=30)
    assert refused.status_code == 422 and "batch-42" in refused.text
    assert len(inbox_files(repo)) == before + 2
    unknown = requests.post(f"{url}/events", json={"source": "nope", "events": [event]}, timeout=30)
    assert unknown.status_code == 422 and "source" in unknown.text
    empty = requests.post(f"{url}/events", json={"events": []}, timeout=30)
    assert empty.status_code == 422


def test_redis_online_store_and_postgres_log_serve_the_same_scores(
    served, redis_server, postgres_url, tmp_path
):
    repo, plain_url = served
    on_redis = clone_repo(repo, tmp_path / "repo", fs_yaml=redis_yaml)
    materialize(on_redis, end=T)
    users = [*user_ids(repo, 40), 10_000_000]
    with background_server(create_app(on_redis, log_url=postgres_url)) as url:
        health = requests.get(f"{url}/health", timeout=30).json()
        assert health["checks"]["online_store"] == "ok"
        started = pd.Timestamp.now(tz="UTC")
        answers = predict_all(url, "churn", users)
    expected = predict_all(plain_url, "churn", users)
    assert answers == expected
    assert answers[-1]["feature_status"] == "defaults"
    engine = sa.create_engine(engine_url(postgres_url))
    with engine.connect() as conn:
        logged = conn.execute(
            sa.text(
                "SELECT entity_id, score FROM prediction_log "
                "WHERE problem = 'churn' AND logged_at >= :t ORDER BY id"
            ),
            {"t": started.to_pydatetime()},
        ).fetchall()
    engine.dispose()
    mine = [(int(r[0]), r[1]) for r in logged if int(r[0]) in set(users)]
    assert mine[-len(users) :] == [(a["user_id"], a["score"]) for a in answers]
