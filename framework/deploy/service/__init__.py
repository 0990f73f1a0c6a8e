"""Deploy: the online prediction service (FastAPI).

``create_app(repo)`` serves the production model of every problem:

- ``POST /predict`` ``{"problem": "churn", "entities": [{"user_id": 42}, ...]}`` fetches the
  problem's feature service from the online store, applies the model's stored
  preprocessing and answers a score per entity (and a label at the model's
  threshold for classifiers), with ``feature_status`` (``ok``, ``partial``,
  ``defaults`` for entities the store does not know);
- ``POST /rank`` ``{"problem": ..., "query": {...}, "candidates": [{...}, ...], "k": 10}``
  orders a ranking problem's candidates for one user by its model (or, in an
  experiment arm, by popularity) and answers the top k with scores;
- ``POST /events`` ``{"events": [{"user_id": 42, "event_timestamp": "...Z", ...}]}``
  appends product events durably to the offline event log (:mod:`framework.collect.ingest`);
- ``GET /health`` is readiness (200 while it can answer; each problem's status in the body),
  ``GET /health/live`` liveness; ``GET /models`` lists the models.

Models are loaded once and swapped under a lock when ``stages.json`` changes
(``lifecycle models promote``). Bad requests get a 4xx JSON body naming the
field; a failing store gets 503 with the reason. A 5xx other than 503 is a bug.

The package, one concern a module:

- ``schemas``: request and response models (the OpenAPI schema);
- ``errors``: the one table from our exceptions to HTTP statuses, and the handlers;
- ``middleware``: the body limit;
- ``models``: the production models, loaded once and swapped on promotion;
- ``predict``: the ``/predict`` path (checks, arms, features, scores, log rows);
- ``rank``: the ``/rank`` path (a user's candidates in model order);
- ``routes``: every route, thin over the above;
- ``app``: ``create_app`` and ``background_server``.
"""

from framework.deploy.service.app import (
    STORE_TIMEOUT_S,
    WORKER_ENV,
    background_server,
    create_app,
    worker_app,
)
from framework.deploy.service.middleware import MAX_BODY_BYTES, BodyLimit
from framework.deploy.service.models import ModelCache
from framework.deploy.service.predict import MAX_ENTITIES
from framework.deploy.service.schemas import MAX_EVENTS

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_ENTITIES",
    "MAX_EVENTS",
    "STORE_TIMEOUT_S",
    "WORKER_ENV",
    "BodyLimit",
    "ModelCache",
    "background_server",
    "create_app",
    "worker_app",
]
