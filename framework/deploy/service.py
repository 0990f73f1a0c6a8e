"""Deploy: the online prediction service (FastAPI).

``create_app(repo)`` serves the production model of every problem:

- ``POST /predict`` ``{"problem": "churn", "entities": [{"user_id": 42}, ...]}`` fetches the
  problem's feature service from the online store, applies the model's stored
  preprocessing and answers a score per entity (and a label at the model's
  threshold for classifiers), with ``feature_status`` (``ok``, ``partial``,
  ``defaults`` for entities the store does not know);
- ``POST /events`` ``{"events": [{"user_id": 42, "event_timestamp": "...Z", ...}]}``
  appends product events durably to the offline event log (:mod:`framework.collect.ingest`);
- ``GET /health`` checks the online store and the models; ``GET /models`` lists them.

Models are loaded once and swapped under a lock when ``stages.json`` changes
(``lifecycle models promote``). Bad requests get a 4xx JSON body naming the
field; a failing store gets 503 with the reason. A 5xx other than 503 is a bug.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AwareDatetime, BaseModel, Field, StrictInt
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from framework.common.jsonable import finite
from framework.declare.experiments import assign
from framework.declare.repo import FeatureRepo
from framework.deploy import ui
from framework.errors import LifecycleError, RefusedEvents, StoreError
from framework.models.registry import ModelArtifact, Registry
from framework.models.scoring import score

TIMESTAMP = "event_timestamp"

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_ENTITIES",
    "MAX_EVENTS",
    "ModelCache",
    "background_server",
    "create_app",
]

MAX_ENTITIES = 1000
MAX_EVENTS = 10_000
MAX_BODY_BYTES = 4 * 1024 * 1024  # 10,000 events of ~150 bytes fit; larger bodies get 413
STORE_TIMEOUT_S = 5.0
INT64 = (-(2**63), 2**63 - 1)


class PredictRequest(BaseModel):
    problem: str = Field(min_length=1, max_length=64)
    entities: list[dict[str, StrictInt | float | str | None]] = Field(
        min_length=1,
        description="One object per entity: its key (e.g. user_id) and optional request fields.",
    )


class ErrorDetail(BaseModel):
    field: str | None = Field(default=None, description="The request field at fault, if one.")
    error: str
    violations: list[dict[str, Any]] | None = Field(
        default=None, description="For refused events: every failed check of the contract."
    )


class ErrorResponse(BaseModel):
    """Every error answer: a JSON body naming the problem (and the field, when one is)."""

    detail: ErrorDetail | list[ErrorDetail]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {
        400: "The body is not JSON.",
        401: "Missing or wrong X-API-Key (when the service has one).",
        404: "Unknown problem, or no production model for it.",
        413: "Body or batch too large.",
        422: "A field is invalid; the body names it.",
        503: "The online store or the event log is unavailable; retry later.",
    }
    return {c: {"model": ErrorResponse, "description": what[c]} for c in codes}


class HealthResponse(BaseModel):
    status: str = Field(description="ok, or degraded (then the answer is a 503).")
    checks: dict[str, str]


class Event(BaseModel):
    """One product event (the event log's schema; see ``framework.collect.checks``)."""

    user_id: StrictInt = Field(ge=INT64[0], le=INT64[1])
    event_timestamp: AwareDatetime = Field(
        description="With a time zone, e.g. 2025-06-01T12:00:00Z."
    )
    event_type: str = Field(min_length=1, max_length=64, examples=["page_view"])
    source: str = Field(min_length=1, max_length=64, examples=["google"])
    amount: float | None = Field(default=None, allow_inf_nan=False)
    model_config = {"extra": "forbid"}


class EventsRequest(BaseModel):
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    accepted: int


class Prediction(BaseModel):
    score: float | None = Field(
        default=None, description="Absent only in an experiment arm with no model (policy none)."
    )
    label: int | None = None
    feature_status: str
    arm: str | None = Field(default=None, description="The experiment arm, when one is running.")
    model_version: str | None = None
    model_config = {"extra": "allow"}


class PredictResponse(BaseModel):
    problem: str
    model_version: str
    predictions: list[Prediction]


@dataclass
class _Loaded:
    artifact: ModelArtifact
    model: Any
    stages_mtime: int


class ModelCache:
    """Production models, loaded once per problem and reloaded when a promotion changes them."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    def _stages_mtime(self, problem: str) -> int:
        try:
            return os.stat(self.registry.root / problem / "stages.json").st_mtime_ns
        except OSError:
            return -1

    def get(self, problem: str) -> _Loaded:
        mtime = self._stages_mtime(problem)
        current = self._loaded.get(problem)
        if current is not None and current.stages_mtime == mtime:
            return current
        with self._lock:
            current = self._loaded.get(problem)
            if current is None or current.stages_mtime != mtime:
                artifact = self.registry.get(problem)
                current = _Loaded(artifact, artifact.load_model(), mtime)
                self._loaded[problem] = current  # swapped whole: readers see old or new
                _settle()
        return current

    def version(self, problem: str, version: str) -> _Loaded:
        """A given version (an experiment arm); versions never change, so it is kept."""
        key = f"{problem}/{version}"
        current = self._loaded.get(key)
        if current is None:
            with self._lock:
                current = self._loaded.get(key)
                if current is None:
                    artifact = self.registry.get(problem, version)
                    current = _Loaded(artifact, artifact.load_model(), 0)
                    self._loaded[key] = current
                    _settle()
        return current

    def loaded(self) -> dict[str, str]:
        return {p: v.artifact.version for p, v in self._loaded.items()}


def _settle() -> None:
    """Move every live object to the GC's permanent generation.

    The registry, the models and the caches live as long as the process; left in
    the collected generations, each full collection walks them all (90 ms pauses
    were measured). Called at startup and after a model is (re)loaded.
    """
    import gc

    gc.collect()
    gc.freeze()


def _warm_up(repo: FeatureRepo, models: ModelCache) -> None:
    """Load what the first requests would: production models, feature readers, lazy imports."""
    from framework.features.online_read import reader

    for name in repo.problems:
        try:
            loaded = models.get(name)
            reader(repo, loaded.artifact.meta.feature_service)
        except LifecycleError:
            continue  # reported by /health and by requests for this problem
    _settle()


@contextmanager
def background_server(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` under uvicorn on a free port in a thread; yields its base URL and stops
    it (running the app's shutdown, which drains the prediction log) on exit."""
    import socket
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise StoreError(f"The prediction service did not start on {host}:{port}.")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class _TooLarge(StarletteHTTPException):
    """A body past the limit: an HTTP error, so that FastAPI's body parsing passes it on
    (instead of answering 400) and the app's handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail={"error": f"the body is over {limit:,} bytes"})


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413 before it is read whole
    (by its Content-Length, or as it streams in when it has none)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            refused = _TooLarge(self.limit)
            response = JSONResponse(status_code=413, content={"detail": refused.detail})
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


def create_app(
    repo: FeatureRepo,
    *,
    api_key: str | None = None,
    max_entities: int = MAX_ENTITIES,
    max_body_bytes: int = MAX_BODY_BYTES,
    log_url: str | None = None,
    store_timeout: float = STORE_TIMEOUT_S,
):
    """The FastAPI application serving ``repo``'s production models.

    Online-store reads run on a small thread pool under a deadline of
    ``store_timeout`` seconds: a store that hangs gets a 503 within it (drivers
    retry on their own schedule; a Redis client retries three times with backoff).

    Every prediction is logged to ``log_url`` (default: SQLite at
    ``<repo>/data/predictions.db``); the log is drained when the app shuts down.
    """
    from contextlib import asynccontextmanager

    from framework.deploy.prediction_log import PredictionLog
    from framework.features.online import get_online_features
    from framework.models.registry import registry_of

    models = ModelCache(registry_of(repo))
    log = PredictionLog(log_url or repo.prediction_db)

    @asynccontextmanager
    async def lifespan(_app):
        _warm_up(repo, models)
        yield
        store_pool.shutdown(wait=False, cancel_futures=True)  # a hung read must not hold exit
        log.close()  # writes everything still queued

    app = FastAPI(title="lifecycle prediction service", version="1", lifespan=lifespan)
    app.state.prediction_log = log
    app.add_middleware(BodyLimit, limit=max_body_bytes)

    async def _log_predictions(pending: list[tuple]) -> None:
        # Runs on the event loop right after the response went out: the encoding costs
        # the next request at most this request's share, instead of a writer thread
        # taking the GIL in bursts (which tripled the p99 of one-entity requests).
        for rows, frame, columns in pending:
            log.log(rows, features=frame, columns=columns)

    store_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="online-store")

    async def _with_deadline(fn, *args):
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(store_pool, fn, *args), timeout=store_timeout
            )
        except TimeoutError as exc:
            raise StoreError(
                f"The online store did not answer within {store_timeout:g} s."
            ) from exc

    def _policy(problem: str, policy: str) -> _Loaded | None:
        if policy == "none":
            return None
        if policy == "production":
            return models.get(problem)
        return models.version(problem, policy)

    async def authorize(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if api_key is not None and not hmac.compare_digest(
            (x_api_key or "").encode(), api_key.encode()
        ):
            raise HTTPException(
                401, detail={"field": "X-API-Key", "error": "missing or wrong API key"}
            )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "error": e.get("msg", ""),
            }
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        # One error shape: {"detail": {"error": ...}} also for FastAPI's own (e.g. a body
        # that is not JSON: 400).
        detail = exc.detail if isinstance(exc.detail, dict | list) else {"error": str(exc.detail)}
        return JSONResponse(
            status_code=exc.status_code, content={"detail": detail}, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        # A bug: still answer JSON, with what failed.
        return JSONResponse(
            status_code=500, content={"detail": {"error": f"{type(exc).__name__}: {exc}"}}
        )

    @app.exception_handler(StoreError)
    async def _store(_request: Request, exc: StoreError):
        return JSONResponse(status_code=503, content={"detail": {"error": str(exc)}})

    @app.post(
        "/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        dependencies=[Depends(authorize)],
        responses=_errors(400, 401, 404, 413, 422, 503),
    )
    async def predict(body: PredictRequest) -> JSONResponse:
        if len(body.entities) > max_entities:
            raise HTTPException(
                413,
                detail={
                    "field": "entities",
                    "error": f"at most {max_entities} entities per request",
                },
            )
        try:
            problem = repo.problem(body.problem)
            loaded = models.get(problem.name)
        except LifecycleError as exc:
            raise HTTPException(404, detail={"field": "problem", "error": str(exc)}) from exc
        key = problem.entity
        for i, row in enumerate(body.entities):
            value = row.get(key)
            if not isinstance(value, int) or not INT64[0] <= value <= INT64[1]:
                raise HTTPException(
                    422,
                    detail={
                        "field": f"entities.{i}.{key}",
                        "error": f"{key} must be an integer (64-bit)",
                    },
                )
        rows = [{**r, key: int(r[key])} for r in body.entities]
        experiment = repo.active_experiment(problem.name)
        if experiment is None:
            arms: list[str | None] = [None] * len(rows)
            policies = {None: loaded}
        else:
            arms = assign(experiment.salt_text, [r[key] for r in rows], experiment.split)
            try:
                policies = {arm: _policy(problem.name, experiment.policy(arm)) for arm in set(arms)}
            except LifecycleError as exc:
                raise StoreError(f"Experiment {experiment.name!r} cannot run: {exc}") from exc
        # Features once per feature service; a no-model arm logs the production model's.
        frames: dict[str, Any] = {}
        for model in {id(m): m for m in [loaded, *policies.values()] if m}.values():
            service = model.artifact.meta.feature_service
            if service not in frames:
                try:
                    frames[service] = await _with_deadline(get_online_features, repo, rows, service)
                except StoreError:
                    raise
                except LifecycleError as exc:
                    raise HTTPException(
                        422, detail={"field": "entities", "error": str(exc)}
                    ) from exc
        predictions: list[dict[str, Any]] = [{} for _ in rows]
        pending: list[tuple] = []  # logged once the answer is sent
        for arm, model in policies.items():
            idx = [i for i, a in enumerate(arms) if a == arm]
            used = model or loaded
            full = frames[used.artifact.meta.feature_service]
            frame = full if len(idx) == len(rows) else full.iloc[idx]
            scores, labels = score(used.artifact.meta, used.model, frame) if model else (None, None)
            status = frame["feature_status"].tolist()
            version = model.artifact.version if model else "none"
            for j, i in enumerate(idx):
                item: dict[str, Any] = {key: rows[i][key], "feature_status": status[j]}
                if model is not None:
                    item["score"] = float(scores[j])
                    if labels is not None:
                        item["label"] = int(labels[j])
                if arm is not None:
                    item["arm"] = arm
                    if model is not None:
                        item["model_version"] = version
                predictions[i] = item
            logged = [
                {
                    "problem": problem.name,
                    "model_version": version,
                    "entity_key": key,
                    "entity_id": predictions[i][key],
                    "feature_status": predictions[i]["feature_status"],
                    "score": predictions[i].get("score"),
                    "label": predictions[i].get("label"),
                    "experiment": experiment.name if experiment else None,
                    "arm": arm,
                }
                for i in idx
            ]
            pending.append((logged, frame, used.artifact.meta.features))
        # Built here and returned as is (the response model documents it): FastAPI's
        # validation and encoding of the answer cost more than the model's scoring.
        return JSONResponse(
            finite(
                {
                    "problem": problem.name,
                    "model_version": loaded.artifact.version,
                    "predictions": predictions,
                }
            ),
            background=BackgroundTask(_log_predictions, pending),
        )

    @app.post(
        "/events",
        status_code=202,
        response_model=EventsResponse,
        dependencies=[Depends(authorize)],
        responses=_errors(400, 401, 413, 422, 503),
    )
    def post_events(body: EventsRequest) -> dict[str, Any]:
        """Append events durably to the offline event log (merged by the next apply or
        materialize). Answered only once the events are on disk."""
        import pyarrow as pa

        from framework.collect.ingest import EVENT_SCHEMA, append
        from framework.errors import DataError

        try:
            rows = [e.model_dump() for e in body.events]
            table = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
        except (pa.ArrowException, OverflowError, ValueError) as exc:  # e.g. year 9999 at -23:59
            raise HTTPException(422, detail={"field": "events", "error": str(exc)}) from exc
        try:
            accepted = append(repo, table, source="events")
        except RefusedEvents as exc:
            violations = [v.as_json() for v in exc.violations]
            detail = {"field": "events", "error": str(exc), "violations": violations}
            raise HTTPException(422, detail=detail) from exc
        except DataError as exc:
            raise HTTPException(422, detail={"field": "events", "error": str(exc)}) from exc
        except OSError as exc:
            raise StoreError(f"The event log cannot be written: {exc}") from exc
        return {"accepted": accepted}

    @app.get("/models", dependencies=[Depends(authorize)], responses=_errors(401))
    def list_models() -> dict[str, Any]:
        out = {}
        for name in repo.problems:
            try:
                meta = models.get(name).artifact.meta
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
            experiment = repo.active_experiment(name)
            if experiment is not None:
                out[name]["experiment"] = {
                    "name": experiment.name,
                    "control": experiment.control,
                    "treatment": experiment.treatment,
                    "split": experiment.split,
                }
        return finite({"models": out})

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    def ui_index() -> HTMLResponse:
        """Model cards and monitoring reports, newest first."""
        return HTMLResponse(ui.index_page(repo))

    @app.get("/ui/models/{problem}/{version}", response_class=HTMLResponse, include_in_schema=False)
    def ui_card(problem: str, version: str) -> HTMLResponse:
        return ui.file_page(ui.card_path(repo, problem, version))

    @app.get("/ui/reports/{problem}/{name}", response_class=HTMLResponse, include_in_schema=False)
    def ui_report(problem: str, name: str) -> HTMLResponse:
        return ui.file_page(ui.report_path(repo, problem, name))

    @app.get(
        "/health",
        response_model=HealthResponse,
        responses={503: {"model": HealthResponse, "description": "Degraded: a check failed."}},
    )
    async def health() -> JSONResponse:
        checks: dict[str, Any] = {}
        view = repo.feature_views[0]
        try:
            await _with_deadline(
                lambda: repo.store.get_online_features(
                    features=[f"{view.name}:{view.features[0].name}"],
                    entity_rows=[{view.entity_columns[0].name: -1}],
                )
            )
            checks["online_store"] = "ok"
        except Exception as exc:  # any store failure is reported, not raised
            checks["online_store"] = f"unavailable: {type(exc).__name__}: {exc}"
        for name in repo.problems:
            try:
                checks[f"model:{name}"] = models.get(name).artifact.version
            except LifecycleError as exc:
                checks[f"model:{name}"] = f"unavailable: {exc}"
        healthy = checks["online_store"] == "ok" and not any(
            str(v).startswith("unavailable") for v in checks.values()
        )
        return JSONResponse(
            status_code=200 if healthy else 503,
            content={"status": "ok" if healthy else "degraded", "checks": checks},
        )

    return app
