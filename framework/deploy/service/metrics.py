"""``/metrics``: the service's state in the Prometheus text format (prometheus-client).

Per app (its own ``CollectorRegistry``, so that several apps in one process keep
apart):

============================================== ========= ==========================================
metric                                         type      labels / meaning
============================================== ========= ==========================================
``lifecycle_http_requests_total``              counter   route (the path template), method, status
``lifecycle_http_request_duration_seconds``    histogram route, method
``lifecycle_online_store_read_seconds``        histogram one read of a feature service's features
``lifecycle_online_store_errors_total``        counter   reads that failed or passed the deadline
``lifecycle_prediction_log_queue_depth``       gauge     batches waiting for the writer
``lifecycle_prediction_log_spooled_rows``      gauge     rows spooled while the database fails
``lifecycle_prediction_log_rows_written_total`` counter  rows in the database
``lifecycle_prediction_log_write_failures_total`` counter failed writes (each then spooled)
``lifecycle_model_version_info``               gauge     problem, version: 1 for each model served
``lifecycle_experiment_exposures_total``       counter   experiment, arm: entities answered in an arm
============================================== ========= ==========================================
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from framework.deploy.prediction_log import PredictionLog
from framework.deploy.service.models import ModelCache

__all__ = ["MetricsMiddleware", "ServiceMetrics"]

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _LiveState(Collector):
    """Read at scrape time: the prediction log's queue, spool and counts; the models."""

    def __init__(self, log: PredictionLog, models: ModelCache) -> None:
        self.log, self.models = log, models

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "lifecycle_prediction_log_queue_depth",
            "Batches of predictions waiting for the log's writer.",
            value=self.log.queue.qsize(),
        )
        yield GaugeMetricFamily(
            "lifecycle_prediction_log_spooled_rows",
            "Rows spooled on local disk while the prediction log's database fails.",
            value=self.log.spool.rows,
        )
        yield CounterMetricFamily(
            "lifecycle_prediction_log_rows_written",
            "Rows the prediction log wrote to its database.",
            value=self.log.written,
        )
        yield CounterMetricFamily(
            "lifecycle_prediction_log_write_failures",
            "Writes of the prediction log that failed (their rows were spooled).",
            value=self.log.write_failures,
        )
        served = GaugeMetricFamily(
            "lifecycle_model_version_info",
            "The model version served per problem (1 for each loaded one).",
            labels=["problem", "version"],
        )
        for key, version in sorted(self.models.loaded().items()):
            if "/" not in key:  # experiment arms' fixed versions are keyed problem/version
                served.add_metric([key, version], 1)
        yield served


class ServiceMetrics:
    """The service's metrics and what records them."""

    def __init__(self, log: PredictionLog, models: ModelCache) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lifecycle_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lifecycle_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=_LATENCY,
            registry=self.registry,
        )
        self.store_reads = Histogram(
            "lifecycle_online_store_read_seconds",
            "One online-store read of a feature service's features.",
            buckets=_LATENCY,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "lifecycle_online_store_errors",
            "Online-store reads that failed or passed the deadline.",
            registry=self.registry,
        )
        self.exposures = Counter(
            "lifecycle_experiment_exposures",
            "Entities answered in an experiment arm.",
            ["experiment", "arm"],
            registry=self.registry,
        )
        self.registry.register(_LiveState(log, models))

    def record_exposures(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row.get("experiment"):
                self.exposures.labels(row["experiment"], row["arm"]).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware: count and time every HTTP request by its route template (so that
    paths with parameters do not make a label each)."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]  # a request that raised past every handler

        async def sent(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status[0])).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - start)
