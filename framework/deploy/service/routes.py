"""The service's routes: /predict, /rank, /events, /models, /health and the /ui pages.

``add_routes(app, service)`` attaches them; each is a thin function over the
``Service`` (the repo, the model cache, the prediction log and the online-store
reader under its deadline) that ``create_app`` builds once.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.background import BackgroundTask

from framework.common.jsonable import finite
from framework.declare.repo import FeatureRepo
from framework.deploy import ui
from framework.deploy.prediction_log import PredictionLog
from framework.deploy.service.metrics import ServiceMetrics
from framework.deploy.service.models import ModelCache
from framework.deploy.service.predict import Pending, Predictor
from framework.deploy.service.rank import Ranker
from framework.deploy.service.schemas import (
    EventsResponse,
    HealthResponse,
    PredictResponse,
    RankResponse,
    RequestModels,
    error_responses,
)
from framework.errors import (
    ConfigError,
    DataError,
    InvalidRequest,
    LifecycleError,
    StoreError,
    Unauthorized,
)
from framework.features.push import PushResult

__all__ = ["Service", "add_routes"]


@dataclass
class Service:
    """What the routes share; built once per app."""

    repo: FeatureRepo
    models: ModelCache
    log: PredictionLog
    predictor: Predictor
    ranker: Ranker
    with_deadline: Callable[..., Any]  # runs a blocking store call under the deadline
    metrics: ServiceMetrics
    api_key: str | None = None

    async def authorize(self, x_api_key: Annotated[str | None, Header()] = None) -> None:
        if self.api_key is not None and not hmac.compare_digest(
            (x_api_key or "").encode(), self.api_key.encode()
        ):
            raise Unauthorized("X-API-Key", "missing or wrong API key")

    async def log_predictions(self, pending: Pending) -> None:
        # Runs on the event loop right after the response went out: the encoding costs
        # the next request at most this request's share, instead of a writer thread
        # taking the GIL in bursts (which tripled the p99 of one-entity requests).
        for rows, frame, columns in pending:
            self.log.log(rows, features=frame, columns=columns)


def add_routes(app: FastAPI, service: Service, bodies: RequestModels) -> None:
    guarded = [Depends(service.authorize)]

    async def predict(body: Any) -> JSONResponse:
        answer, pending = await service.predictor(body)
        for rows, _, _ in pending:
            service.metrics.record_exposures(rows)
        # Built here and returned as is (the response model documents it): FastAPI's
        # validation and encoding of the answer cost more than the model's scoring.
        return JSONResponse(
            finite(answer), background=BackgroundTask(service.log_predictions, pending)
        )

    async def rank(body: Any) -> JSONResponse:
        """Order a user's candidates by the ranking problem's model (or, in an experiment
        arm, by popularity) and answer the top k."""
        answer, pending = await service.ranker(body)
        for rows, _, _ in pending:
            service.metrics.record_exposures(rows)
        return JSONResponse(
            finite(answer), background=BackgroundTask(service.log_predictions, pending)
        )

    def post_events(
        body: Any,
        idempotency_key: Annotated[
            str | None,
            Header(
                max_length=256,
                description="Makes re-sending safe: a batch with a key already taken is "
                "accepted once (the same rows again: the same answer; other rows: 422).",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Append events durably to their source's offline log, then to the online state
        of every windowed view reading the source: a /predict after the answer counts
        them. Answered only once the events are on disk."""
        pushed = _append_events(service.repo, bodies, body.source, body.events, idempotency_key)
        return {"accepted": pushed.accepted, "online": pushed.online}

    # The bodies are this repo's models (built at run time): given to FastAPI as such.
    predict.__annotations__["body"] = bodies.predict
    post_events.__annotations__["body"] = bodies.events
    rank.__annotations__["body"] = bodies.rank
    app.post(
        "/rank",
        response_model=RankResponse,
        response_model_exclude_none=True,
        dependencies=guarded,
        responses=error_responses(400, 401, 404, 413, 422, 503),
    )(rank)
    app.post(
        "/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        dependencies=guarded,
        responses=error_responses(400, 401, 404, 413, 422, 503),
    )(predict)
    app.post(
        "/events",
        status_code=202,
        response_model=EventsResponse,
        dependencies=guarded,
        responses=error_responses(400, 401, 413, 422, 503),
    )(post_events)

    @app.get("/models", dependencies=guarded, responses=error_responses(401))
    def list_models() -> dict[str, Any]:
        return finite({"models": _models(service)})

    @app.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
    def metrics() -> Response:
        """Prometheus text format (see ``framework.deploy.service.metrics``)."""
        return Response(service.metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    def ui_index() -> HTMLResponse:
        """Model cards and monitoring reports, newest first."""
        return HTMLResponse(ui.index_page(service.repo))

    @app.get("/ui/jobs", response_class=HTMLResponse, include_in_schema=False)
    def ui_jobs() -> HTMLResponse:
        """The declared jobs and their recent runs."""
        return HTMLResponse(ui.jobs_page(service.repo, service.log.url))

    @app.get("/ui/models/{problem}/{version}", response_class=HTMLResponse, include_in_schema=False)
    def ui_card(problem: str, version: str) -> HTMLResponse:
        return ui.file_page(ui.card_path(service.repo, problem, version))

    @app.get("/ui/reports/{problem}/{name}", response_class=HTMLResponse, include_in_schema=False)
    def ui_report(problem: str, name: str) -> HTMLResponse:
        return ui.file_page(ui.report_path(service.repo, problem, name))

    @app.get(
        "/health",
        response_model=HealthResponse,
        responses={503: {"model": HealthResponse, "description": "Not ready: see the checks."}},
    )
    async def health() -> JSONResponse:
        """Readiness: 200 when the service can answer (see ``HealthResponse.status``)."""
        checks = await _health_checks(service)
        problems = {
            k.removeprefix("model:"): _problem_health(v)
            for k, v in checks.items()
            if k.startswith("model:")
        }
        store_up = not checks["online_store"].startswith("unavailable")
        ready = store_up and (
            not problems or any(p["status"] == "serving" for p in problems.values())
        )
        ok = ready and all(v == "ok" for k, v in checks.items() if not k.startswith("model:"))
        ok = ok and all(p["status"] == "serving" for p in problems.values())
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "ok" if ok else "degraded", "checks": checks, "problems": problems},
        )

    @app.get("/health/live", include_in_schema=False)
    def live() -> dict[str, str]:
        """Liveness: the process answers (a probe that restarts it uses this one)."""
        return {"status": "alive"}


def _problem_health(check: str) -> dict[str, str | None]:
    if check.startswith("unavailable"):
        return {
            "status": "unavailable",
            "version": None,
            "reason": check.removeprefix("unavailable: "),
        }
    return {"status": "serving", "version": check, "reason": None}


def _append_events(
    repo: FeatureRepo,
    bodies: RequestModels,
    source: str | None,
    events: list[Any],
    batch_id: str | None,
) -> PushResult:
    import pyarrow as pa
    from pydantic import ValidationError

    from framework.collect.ingest import log_schema
    from framework.features.push import push_events

    try:
        src = repo.event_source(source)
        schema = log_schema(repo.source_contract(src))
    except ConfigError as exc:
        raise InvalidRequest("source", str(exc)) from exc
    model = bodies.event_models.get(src.name)
    try:
        rows = []
        for e in events:
            if model is not None and not isinstance(e, model):
                # parsed as another source's event (or as a plain dict): check it as this one's
                raw = e.model_dump(mode="json") if isinstance(e, BaseModel) else e
                e = model.model_validate(raw)
            rows.append(e.model_dump() if isinstance(e, BaseModel) else e)
        table = pa.Table.from_pylist(rows, schema=schema)
    except ValidationError as exc:
        raise InvalidRequest("events", f"not an event of source {src.name!r}: {exc}") from exc
    except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
        raise InvalidRequest("events", str(exc)) from exc
    try:
        return push_events(repo, table, source=src.name, origin="events", batch_id=batch_id)
    except DataError as exc:
        if type(exc) is DataError:  # RefusedEvents keeps its own status and violations
            raise InvalidRequest("events", str(exc)) from exc
        raise
    except OSError as exc:
        raise StoreError(f"The event log cannot be written: {exc}") from exc


def _models(service: Service) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in service.repo.problems:
        try:
            meta = service.models.get(name).artifact.meta
        except LifecycleError as exc:
            out[name] = {"error": str(exc)}
            continue
        out[name] = {
            "version": meta.version,
            "winner": meta.winner,
            "feature_service": meta.feature_service,
            "metric": meta.metric,
            "test": meta.metrics["test"],
        }
        experiment = service.repo.active_experiment(name)
        if experiment is not None:
            out[name]["experiment"] = {
                "name": experiment.name,
                "control": experiment.control,
                "treatment": experiment.treatment,
                "split": experiment.split,
            }
    return out


async def _health_checks(service: Service) -> dict[str, str]:
    repo = service.repo
    checks: dict[str, str] = {}
    view = repo.feature_views[0]
    try:
        await service.with_deadline(
            lambda: repo.store.get_online_features(
                features=[f"{view.name}:{view.features[0].name}"],
                entity_rows=[{view.entity_columns[0].name: -1}],
            )
        )
        checks["online_store"] = "ok"
    except Exception as exc:  # any store failure is reported, not raised
        checks["online_store"] = f"unavailable: {type(exc).__name__}: {exc}"
    checks["prediction_log"] = service.log.status()  # degraded: spooling, still answering
    for name in repo.problems:
        try:
            checks[f"model:{name}"] = service.models.get(name).artifact.version
        except LifecycleError as exc:
            checks[f"model:{name}"] = f"unavailable: {exc}"
    return checks
