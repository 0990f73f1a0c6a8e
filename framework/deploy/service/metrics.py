"""``/metrics``: the service's state in the Prometheus text format (prometheus-client).

Per app: the values live in this module's objects, not in prometheus-client's
value store (importing Feast switches that store to files shared by every metric
of the same name in the process), so several apps in one process keep apart.

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

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from framework.deploy.prediction_log import PredictionLog
from framework.deploy.service.models import ModelCache

__all__ = ["MetricsMiddleware", "ServiceMetrics"]

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Counter:
    """A labelled counter kept in this object (not in prometheus-client's value store,
    which Feast switches to shared multiprocess files when it is imported)."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.values: dict[tuple[str, ...], float] = defaultdict(float)
        if not labels:
            self.values[()] = 0.0  # shown from the start
        self.lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self.lock:
            self.values[labels] += amount

    def family(self) -> Metric:
        out = CounterMetricFamily(self.name, self.doc, labels=list(self.labels))
        with self.lock:
            for labels, value in sorted(self.values.items()):
                out.add_metric(list(labels), value)
        return out


class _Histogram:
    """A labelled histogram kept in this object (see ``_Counter``)."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.counts: dict[tuple[str, ...], list[int]] = {}
        self.sums: dict[tuple[str, ...], float] = defaultdict(float)
        if not labels:
            self.counts[()] = [0] * (len(_LATENCY) + 1)  # shown from the start
        self.lock = threading.Lock()

    def observe(self, *labels: str, value: float) -> None:
        with self.lock:
            counts = self.counts.setdefault(labels, [0] * (len(_LATENCY) + 1))
            counts[bisect.bisect_left(_LATENCY, value)] += 1  # the first bucket with value <= le
            self.sums[labels] += value

    def family(self) -> Metric:
        out = HistogramMetricFamily(self.name, self.doc, labels=list(self.labels))
        with self.lock:
            for labels, counts in sorted(self.counts.items()):
                cumulative, buckets = 0, []
                for le, n in zip([*map(str, _LATENCY), "+Inf"], counts, strict=True):
                    cumulative += n
                    buckets.append((le, cumulative))
                out.add_metric(list(labels), buckets, sum_value=self.sums[labels])
        return out


class _Collector(Collector):
    """Everything ``/metrics`` shows: the recorded metrics, and at scrape time the
    prediction log's queue, spool and counts and the models served."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        for recorded in (m.requests, m.latency, m.store_reads, m.store_errors, m.exposures):
            yield recorded.family()
        log = m.log
        yield GaugeMetricFamily(
            "lifecycle_prediction_log_queue_depth",
            "Batches of predictions waiting for the log's writer.",
            value=log.queue.qsize(),
        )
        yield GaugeMetricFamily(
            "lifecycle_prediction_log_spooled_rows",
            "Rows spooled on local disk while the prediction log's database fails.",
            value=log.spool.rows,
        )
        yield CounterMetricFamily(
            "lifecycle_prediction_log_rows_written",
            "Rows the prediction log wrote to its database.",
            value=log.written,
        )
        yield CounterMetricFamily(
            "lifecycle_prediction_log_write_failures",
            "Writes of the prediction log that failed (their rows were spooled).",
            value=log.write_failures,
        )
        served = GaugeMetricFamily(
            "lifecycle_model_version_info",
            "The model version served per problem (1 for each loaded one).",
            labels=["problem", "version"],
        )
        for key, version in sorted(m.models.loaded().items()):
            if "/" not in key:  # experiment arms' fixed versions are keyed problem/version
                served.add_metric([key, version], 1)
        yield served
        success, counts = m.job_runs()
        last = GaugeMetricFamily(
            "lifecycle_job_last_success_timestamp_seconds",
            "When each scheduled job's latest successful run ended (Unix time; table job_runs).",
            labels=["job"],
        )
        for job, ended in sorted(success.items()):
            last.add_metric([job], ended)
        yield last
        runs = GaugeMetricFamily(
            "lifecycle_job_runs",
            "Recorded runs of each scheduled job by status (table job_runs).",
            labels=["job", "status"],
        )
        for (job, status), n in sorted(counts.items()):
            runs.add_metric([job, status], n)
        yield runs
        age = m.job_runs_age()
        if age is not None:
            yield GaugeMetricFamily(
                "lifecycle_job_runs_age_seconds",
                "Seconds since the job figures above were last read from the database: they "
                "keep their last values while it cannot be read.",
                value=age,
            )
        from framework.features.online_read import DAMAGED_STATES

        yield CounterMetricFamily(
            "lifecycle_online_state_damaged",
            "Online-store values that did not decode as a window state (those entities' "
            "features of the view were absent; the log names them).",
            value=DAMAGED_STATES.value,
        )
        yield CounterMetricFamily(
            "lifecycle_job_runs_read_errors",
            "Reads of the job figures that failed (the database was unreachable, say).",
            value=m.job_runs_errors,
        )


class ServiceMetrics:
    """The service's metrics and what records them (one per app)."""

    def __init__(self, log: PredictionLog, models: ModelCache) -> None:
        self.log, self.models = log, models
        self.requests = _Counter(
            "lifecycle_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
        )
        self.latency = _Histogram(
            "lifecycle_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ("route", "method"),
        )
        self.store_reads = _Histogram(
            "lifecycle_online_store_read_seconds",
            "One online-store read of a feature service's features.",
        )
        self.store_errors = _Counter(
            "lifecycle_online_store_errors",
            "Online-store reads that failed or passed the deadline.",
        )
        self.exposures = _Counter(
            "lifecycle_experiment_exposures",
            "Entities answered in an experiment arm.",
            ("experiment", "arm"),
        )
        self._job_runs: tuple[dict[str, float], dict[tuple[str, str], int]] = ({}, {})
        self._job_runs_at = -1e9  # the last attempt to read them
        self._job_runs_read: float | None = None  # the last read that succeeded
        self.job_runs_errors = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def job_runs_age(self) -> float | None:
        """Seconds since the job figures were last read (None: never)."""
        if self._job_runs_read is None:
            return None
        return time.monotonic() - self._job_runs_read

    def job_runs(self) -> tuple[dict[str, float], dict[tuple[str, str], int]]:
        """Last success per job (Unix time) and run counts per job and status, read from
        the log's database at most every 15 s; the last values when it cannot be read,
        with ``job_runs_errors`` counting the failed reads and ``job_runs_age`` telling
        how old they are."""
        now = time.monotonic()
        if now - self._job_runs_at < 15.0:
            return self._job_runs
        self._job_runs_at = now
        try:
            from framework.common.job_log import RunLog

            store = RunLog(self.log.url)
            try:
                success = {j: t.timestamp() for j, t in store.last_success().items()}
                counts = store.counts()
            finally:
                store.close()
            self._job_runs = (success, counts)
            self._job_runs_read = time.monotonic()
        except Exception:  # any database failure: counted, the last values kept
            self.job_runs_errors += 1
        return self._job_runs

    def record_exposures(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row.get("experiment"):
                self.exposures.inc(row["experiment"], row["arm"])

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
            self.metrics.requests.inc(route, method, str(status[0]))
            self.metrics.latency.observe(route, method, value=time.perf_counter() - start)
