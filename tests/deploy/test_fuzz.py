"""Hostile input: the service's OpenAPI schema fuzzed with schemathesis.

Every generated request (valid and invalid bodies, odd types, huge numbers, odd
time zones) must get a non-5xx answer whose status code, content type and body
conform to the schema the service publishes; bodies the schema refuses must be
refused (4xx). Oversized bodies and batches get 413.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from framework.declare.repo import FeatureRepo
from framework.deploy.service import MAX_BODY_BYTES, background_server, create_app
from tests.helpers import T, clone_repo, production

# Per operation and mode (valid, invalid); the total is asserted below. The production
# profile's run sends a quarter of them: it checks that the same requests meet Redis and
# the PostgreSQL registry; the breadth of the inputs is the embedded run's.
EXAMPLES = 150 if production() else 600
LEAST_SENT = 500 if production() else 2000


@pytest.fixture(scope="module")
def fuzzed(served, tmp_path_factory):
    from framework.features.materialize import materialize

    # the served app may be writing its log while it is copied: the copy starts without it
    repo = clone_repo(
        served[0], tmp_path_factory.mktemp("fuzz") / "repo", leave_out=("predictions.db*",)
    )
    # JSON Schema cannot say "not after now + 5 minutes", and most date-times a generator
    # makes are later than today: this repo's contract takes any time, so that valid
    # events reach the log (the future check has tests of its own, in collect/).
    sources = repo.path / "sources.py"
    text = sources.read_text().replace(
        '    ranges={"amount": (0.0, None)},\n',
        '    ranges={"amount": (0.0, None)},\n    max_future=timedelta(days=3_000_000),\n',
    )
    assert "max_future" in text
    sources.write_text("from datetime import timedelta\n" + text)
    repo = FeatureRepo(repo.path, repo.fs_yaml)
    materialize(repo, end=T)
    app = create_app(repo, log_url=f"sqlite:///{repo.data_dir / 'p.db'}", max_entities=50)
    with background_server(app) as url:
        yield url


def _fuzz(operation, mode, url: str, session, sent: list) -> None:
    """Run ``EXAMPLES`` generated requests of one operation and mode."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case):
        headers = case.headers or {}
        if isinstance(headers.get("Idempotency-Key"), str):
            # A key names one batch: a generated key repeated with other events is rightly
            # refused (tested in test_service_experiments); keep the keys apart.
            headers["Idempotency-Key"] += f"-{len(sent)}"
        response = case.call_and_validate(
            base_url=url, session=session, excluded_checks=[positive_data_acceptance]
        )
        sent.append((operation.path, mode.value, response.status_code))
        assert response.status_code < 500, response.text

    run()


def test_thousands_of_generated_requests_get_no_5xx_and_conform(fuzzed):
    """Valid and invalid requests for every operation of the published schema."""
    schema = schemathesis.openapi.from_url(f"{fuzzed}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/events", "/health", "/models"}
    sent: list[tuple[str, str, int]] = []
    session = requests.Session()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, fuzzed, session, sent)
            except Unsatisfiable:  # a GET without inputs has no invalid form
                assert operation.method.upper() == "GET" and mode is GenerationMode.NEGATIVE
    by_path = dict(Counter(path for path, _, _ in sent))
    assert len(sent) >= LEAST_SENT, by_path
    assert not [s for s in sent if s[2] >= 500]
    codes = {code for _, _, code in sent}
    assert {200, 202, 422} <= codes, codes  # the fuzzing reached answers and refusals both
    # The schema is the repo's (problems, keys, contract): generated requests reach the
    # working paths (features, scoring, the logs), not only the refusals.
    reached = {
        path: sum(1 for p, _, code in sent if p == path and 200 <= code < 300) / n
        for path, n in by_path.items()
    }
    assert reached["/predict"] >= 1 / 3 and reached["/events"] >= 1 / 3, reached
    report = os.environ.get("LIFECYCLE_FUZZ_REPORT")  # benchmarks/reliability.py reads it
    if report:
        Path(report).write_text(
            json.dumps(
                {
                    "requests": len(sent),
                    "by_path": by_path,
                    "codes": sorted(codes),
                    "reached_2xx": reached,
                }
            )
        )


def test_oversized_bodies_and_batches_are_refused(fuzzed):
    big = b'{"problem": "churn", "entities": [' + b'{"user_id": 1},' * (MAX_BODY_BYTES // 15)
    response = requests.post(
        f"{fuzzed}/predict",
        data=big + b'{"user_id": 1}]}',
        timeout=60,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413 and "bytes" in response.json()["detail"]["error"]

    def chunks():  # no Content-Length: refused while it streams in
        yield b'{"events": ['
        for _ in range(MAX_BODY_BYTES // 1000 + 10):
            yield b" " * 1000

    streamed = requests.post(
        f"{fuzzed}/events", data=chunks(), timeout=60, headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    many = {"problem": "churn", "entities": [{"user_id": 1}] * 51}  # the app serves <= 50
    assert requests.post(f"{fuzzed}/predict", json=many, timeout=60).status_code == 413
    events = {
        "events": [
            {
                "user_id": 1,
                "event_timestamp": T.isoformat(),
                "event_type": "page_view",
                "source": "google",
            }
        ]
        * 10_001
    }
    assert requests.post(f"{fuzzed}/events", json=events, timeout=60).status_code == 422
