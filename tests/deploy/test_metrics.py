"""``/metrics`` in the Prometheus text format: what it counts, scraped and parsed."""

from __future__ import annotations

import requests

from framework.deploy.service import background_server, create_app
from framework.models.registry import registry_of
from tests.helpers import post_predict, scrape


def test_requests_latency_store_reads_log_and_models_are_exported(served, prediction_db):
    repo, _ = served
    with background_server(create_app(repo, log_url=prediction_db)) as url:
        for ids in ([1, 2], [3], [4, 5, 6]):
            assert post_predict(url, ids).status_code == 200
        unknown = requests.post(
            f"{url}/predict", json={"problem": "nope", "entities": [{"user_id": 1}]}, timeout=30
        )
        assert unknown.status_code == 422  # not one of the schema's problems
        assert requests.get(f"{url}/no/such/route", timeout=30).status_code == 404
        metrics = scrape(url)
    requests_total = metrics["lifecycle_http_requests_total"]
    post = (("method", "POST"), ("route", "/predict"))
    assert requests_total[(*post, ("status", "200"))] == 3
    assert requests_total[(*post, ("status", "422"))] == 1
    assert requests_total[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    assert metrics["lifecycle_http_request_duration_seconds_count"][post] == 4
    # each answered /predict read the churn service's features once; none failed
    assert metrics["lifecycle_online_store_read_seconds_count"][()] == 3
    assert metrics["lifecycle_online_store_errors_total"][()] == 0
    registry = registry_of(repo)
    served_versions = metrics["lifecycle_model_version_info"]
    for problem in ("churn", "spend"):
        version = registry.get(problem).version
        assert served_versions[(("problem", problem), ("version", version))] == 1
    assert metrics["lifecycle_prediction_log_spooled_rows"][()] == 0
    assert metrics["lifecycle_prediction_log_queue_depth"][()] >= 0
    assert metrics["lifecycle_prediction_log_write_failures_total"][()] == 0
    assert "lifecycle_prediction_log_rows_written_total" in metrics
    assert metrics["lifecycle_job_runs_read_errors_total"][()] == 0
    assert 0 <= metrics["lifecycle_job_runs_age_seconds"][()] < 60


def test_two_apps_in_one_process_keep_their_metrics_apart():
    """Importing Feast points prometheus-client's value store at files shared by every
    metric of a name in the process; the service's metrics must not share them."""
    import queue
    from types import SimpleNamespace

    import feast.metrics  # noqa: F401 - sets PROMETHEUS_MULTIPROC_DIR

    from framework.deploy.service.metrics import ServiceMetrics

    def service_metrics() -> ServiceMetrics:
        log = SimpleNamespace(
            queue=queue.Queue(), spool=SimpleNamespace(rows=0), written=0, write_failures=0
        )
        return ServiceMetrics(log, SimpleNamespace(loaded=dict))

    first, second = service_metrics(), service_metrics()
    first.requests.inc("/predict", "POST", "200")
    first.store_reads.observe(value=0.003)
    first.record_exposures([{"experiment": "e", "arm": "control"}])
    assert b'route="/predict"' in first.text()
    assert b'route="/predict"' not in second.text()
    assert b"lifecycle_online_store_read_seconds_count 0.0" in second.text()
    assert b"lifecycle_online_store_read_seconds_count 1.0" in first.text()
    text = first.text().decode()  # 3 ms: above the 2.5 ms bucket, within the 5 ms one
    assert 'lifecycle_online_store_read_seconds_bucket{le="0.0025"} 0.0' in text
    assert 'lifecycle_online_store_read_seconds_bucket{le="0.005"} 1.0' in text
    assert 'lifecycle_online_store_read_seconds_bucket{le="+Inf"} 1.0' in text
    assert b'lifecycle_experiment_exposures_total{arm="control",experiment="e"} 1.0' in first.text()


def test_job_figures_say_their_age_and_count_failed_reads(prediction_db, monkeypatch):
    """When the database cannot be read the job figures keep their last values: their
    age grows and the failed reads are counted, so a dashboard can tell they are stale."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from framework.deploy.service import metrics as service_metrics
    from framework.schedule.job_runs import RunStore

    store = RunStore(prediction_db)
    store.record("nightly", datetime(2025, 3, 1, 6, tzinfo=UTC), "schedule", "succeeded", "")
    store.close()
    clock = [1_000.0]
    monkeypatch.setattr(service_metrics.time, "monotonic", lambda: clock[0])
    log = SimpleNamespace(url=prediction_db)
    m = service_metrics.ServiceMetrics(log, SimpleNamespace())
    assert m.job_runs_age() is None
    success, counts = m.job_runs()
    assert "nightly" in success and counts[("nightly", "succeeded")] == 1
    assert m.job_runs_age() == 0 and m.job_runs_errors == 0
    log.url = "postgresql+psycopg://127.0.0.1:9/test"  # the database goes away (a closed port)
    clock[0] += 20
    assert m.job_runs() == (success, counts)  # the last values, kept
    assert m.job_runs_errors == 1 and m.job_runs_age() == 20
    clock[0] += 5  # read at most every 15 s: not tried again yet
    m.job_runs()
    assert m.job_runs_errors == 1 and m.job_runs_age() == 25
    log.url = prediction_db  # back
    clock[0] += 15
    m.job_runs()
    assert m.job_runs_errors == 1 and m.job_runs_age() == 0
