"""The prediction service over HTTP, against a real uvicorn server on loopback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import requests

from framework.deploy.service import create_app
from framework.features.historical import get_historical_features
from framework.models.registry import registry_of
from tests.helpers import T, register_copy, serve_app, user_ids


def test_online_scores_equal_scoring_the_offline_features(served):
    repo, url = served
    users = user_ids(repo, 20)
    body = {
        "problem": "churn",
        "entities": [{"user_id": u, "event_timestamp": int(T.timestamp())} for u in users],
    }
    response = requests.post(f"{url}/predict", json=body, timeout=30)
    assert response.status_code == 200, response.text
    out = response.json()
    artifact = registry_of(repo).get("churn")
    assert out["model_version"] == artifact.version
    offline = get_historical_features(
        repo, pd.DataFrame({"user_id": users, "event_timestamp": T}), "churn_model_v1"
    )
    from framework.models.scoring import to_model_frame

    expected = artifact.load_model().predict_proba(to_model_frame(offline, artifact.meta.features))[
        :, 1
    ]
    got = np.array([p["score"] for p in out["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert [p["user_id"] for p in out["predictions"]] == users
    assert all(
        p["label"] == int(p["score"] >= artifact.meta.decision_threshold)
        for p in out["predictions"]
    )


def test_regression_and_unknown_entity(served):
    _, url = served
    out = requests.post(
        f"{url}/predict",
        json={"problem": "spend", "entities": [{"user_id": 10_000_000}]},
        timeout=30,
    ).json()
    (p,) = out["predictions"]
    assert p["feature_status"] == "defaults" and "label" not in p and np.isfinite(p["score"])


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"data": "{not json", "headers": {"content-type": "application/json"}}, 400, None),
        ({"data": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 400, None),
        ({"json": {"entities": [{"user_id": 1}]}}, 422, "problem"),
        ({"json": {"problem": "churn"}}, 422, "entities"),
        ({"json": {"problem": "churn", "entities": []}}, 422, "entities"),
        ({"json": {"problem": "churn", "entities": "user 1"}}, 422, "entities"),
        (
            {"json": {"problem": "churn", "entities": [{"user_id": "42"}]}},
            422,
            "entities.0.user_id",
        ),
        ({"json": {"problem": "churn", "entities": [{"customer": 1}]}}, 422, "entities.0.user_id"),
        ({"json": {"problem": "nope", "entities": [{"user_id": 1}]}}, 422, "problem"),
        (
            {"json": {"problem": "churn", "entities": [{"user_id": 2**63}]}},
            422,
            "entities.0.user_id",
        ),
        (
            {"json": {"problem": "churn", "entities": [{"user_id": -(2**63) - 1}]}},
            422,
            "entities.0.user_id",
        ),
        (
            {"json": {"problem": "churn", "entities": [{"user_id": 2**64}]}},
            422,
            "entities.0.user_id",
        ),
        (
            {"json": {"problem": "churn", "entities": [{"user_id": 1, "event_timestamp": 1e12}]}},
            422,
            "entities.0.event_timestamp",
        ),
        (
            {"json": {"problem": "churn", "entities": [{"user_id": True}]}},
            422,
            "entities.0.user_id",
        ),
        ({"json": {"problem": "churn", "entities": [{"user_id": 1.5}]}}, 422, "entities.0.user_id"),
        (
            {"json": {"problem": "churn", "entities": [{"user_id": i} for i in range(51)]}},
            413,
            "entities",
        ),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(served, kwargs, status, field):
    _, url = served
    response = requests.post(f"{url}/predict", timeout=30, **kwargs)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    if field is None:  # no JSON: nothing to name but the body
        assert status == 400 and "the body is not JSON" in detail["error"], detail
        return
    fields = [d["field"] for d in detail] if isinstance(detail, list) else [detail["field"]]
    assert any(f.startswith(field) for f in fields), fields


def test_health_and_models(served):
    repo, url = served
    health = requests.get(f"{url}/health", timeout=30)
    assert health.status_code == 200 and health.json()["checks"]["online_store"] == "ok"
    models = requests.get(f"{url}/models", timeout=30).json()["models"]
    assert models["churn"]["version"] == registry_of(repo).get("churn").version
    assert requests.get(f"{url}/openapi.json", timeout=30).json()["paths"]["/predict"]


def test_health_is_ready_while_any_problem_is_served(served):
    """A problem without a production model degrades /health but does not fail it (a
    readiness probe would take the promoted problems down); with none served it is 503."""
    repo, url = served
    root = registry_of(repo).root
    moved = []
    try:
        (root / "spend" / "stages.json").rename(root / "spend" / "stages.away")
        moved.append("spend")
        health = requests.get(f"{url}/health", timeout=30)
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "degraded"
        assert body["problems"]["churn"]["status"] == "serving"
        assert body["problems"]["spend"]["status"] == "unavailable"
        assert "lifecycle models promote spend" in body["problems"]["spend"]["reason"]
        answer = requests.post(
            f"{url}/predict", json={"problem": "churn", "entities": [{"user_id": 1}]}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        (root / "churn" / "stages.json").rename(root / "churn" / "stages.away")
        moved.append("churn")
        assert requests.get(f"{url}/health", timeout=30).status_code == 503
        assert requests.get(f"{url}/health/live", timeout=30).json() == {"status": "alive"}
    finally:
        for problem in moved:
            (root / problem / "stages.away").rename(root / problem / "stages.json")
    health = requests.get(f"{url}/health", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text


def test_a_promotion_swaps_the_model(served):
    repo, url = served
    before = registry_of(repo).get("spend").version
    version = register_copy(repo, "spend")
    registry_of(repo).promote("spend", version)
    out = requests.post(
        f"{url}/predict", json={"problem": "spend", "entities": [{"user_id": 1}]}, timeout=30
    ).json()
    assert out["model_version"] == version != before


def test_api_key(applied_repo, served):
    repo, _ = served
    server, thread, url = serve_app(create_app(repo, api_key="s3cret"))
    try:
        body = {"problem": "churn", "entities": [{"user_id": 1}]}
        assert requests.post(f"{url}/predict", json=body, timeout=30).status_code == 401
        wrong = requests.post(
            f"{url}/predict", json=body, headers={"X-API-Key": "nope"}, timeout=30
        )
        assert wrong.status_code == 401 and wrong.json()["detail"]["field"] == "X-API-Key"
        ok = requests.post(f"{url}/predict", json=body, headers={"X-API-Key": "s3cret"}, timeout=30)
        assert ok.status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)
