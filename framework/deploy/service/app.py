"""The prediction service's application: ``create_app(repo)``, and a server for it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any, TypeVar

from fastapi import FastAPI

from framework.declare.repo import FeatureRepo
from framework.deploy.service.errors import install_error_handlers
from framework.deploy.service.metrics import MetricsMiddleware, ServiceMetrics
from framework.deploy.service.middleware import MAX_BODY_BYTES, BodyLimit
from framework.deploy.service.models import ModelCache, warm_up
from framework.deploy.service.predict import MAX_ENTITIES, Predictor
from framework.deploy.service.rank import Ranker
from framework.deploy.service.routes import Service, add_routes
from framework.deploy.service.schemas import build_request_models
from framework.errors import StoreError

__all__ = ["STORE_TIMEOUT_S", "WORKER_ENV", "background_server", "create_app", "worker_app"]

STORE_TIMEOUT_S = 5.0
WORKER_ENV = "LIFECYCLE_SERVE_SETTINGS"  # JSON: how `lifecycle serve --workers N` was called
T = TypeVar("T")


def create_app(
    repo: FeatureRepo,
    *,
    api_key: str | None = None,
    max_entities: int = MAX_ENTITIES,
    max_body_bytes: int = MAX_BODY_BYTES,
    log_url: str | None = None,
    store_timeout: float = STORE_TIMEOUT_S,
) -> FastAPI:
    """The FastAPI application serving ``repo``'s production models.

    Online-store reads run on a small thread pool under a deadline of
    ``store_timeout`` seconds: a store that hangs gets a 503 within it (drivers
    retry on their own schedule; a Redis client retries three times with backoff).

    Every prediction is logged to ``log_url`` (default: the repo's prediction
    database); the log is drained when the app shuts down.
    """
    from framework.deploy.prediction_log import PredictionLog
    from framework.features.online import get_online_features
    from framework.models.registry import registry_of

    models = ModelCache(registry_of(repo))
    url = log_url or repo.prediction_db
    log = PredictionLog(url, spool=repo.prediction_spool(url))
    store_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="online-store")
    metrics = ServiceMetrics(log, models)

    async def with_deadline(fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(store_pool, fn, *args), timeout=store_timeout
            )
        except TimeoutError as exc:
            raise StoreError(
                f"The online store did not answer within {store_timeout:g} s."
            ) from exc

    async def read_features(rows: list[dict[str, Any]], service: str) -> Any:
        start = time.perf_counter()
        try:
            return await with_deadline(
                partial(get_online_features, early="clamp"), repo, rows, service
            )
        except Exception:
            metrics.store_errors.inc()
            raise
        finally:
            metrics.store_reads.observe(value=time.perf_counter() - start)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        warm_up(repo, models)
        yield
        store_pool.shutdown(wait=False, cancel_futures=True)  # a hung read must not hold exit
        log.close()  # writes everything still queued

    app = FastAPI(title="lifecycle prediction service", version="1", lifespan=lifespan)
    app.state.prediction_log = log
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts every answer
    install_error_handlers(app)
    predictor = Predictor(repo, models, read_features, max_entities)
    ranker = Ranker(repo, models, read_features, max_entities)
    bodies = build_request_models(repo, max_entities)
    service = Service(repo, models, log, predictor, ranker, with_deadline, metrics, api_key)
    add_routes(app, service, bodies)
    return app


def worker_app() -> FastAPI:
    """The app of one ``lifecycle serve --workers N`` process (a uvicorn factory): built
    from the settings the command left in ``LIFECYCLE_SERVE_SETTINGS``."""
    import json
    import os

    from framework.errors import ConfigError

    text = os.environ.get(WORKER_ENV)
    if not text:
        raise ConfigError(f"{WORKER_ENV} is not set: start workers with `lifecycle serve`.")
    settings = json.loads(text)
    repo = FeatureRepo(settings["repo"], settings["fs_yaml"])
    return create_app(
        repo,
        api_key=settings["api_key"],
        log_url=settings["log_url"],
        store_timeout=settings["store_timeout"],
    )


@contextmanager
def background_server(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
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
