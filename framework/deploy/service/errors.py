"""Errors at the service boundary: one table from exception to HTTP status.

Every error answer has one shape, ``{"detail": {"field", "error"[, "violations"]}}``
(FastAPI's own request validation answers a list of such objects, 422; a body that is
not JSON at all answers 400). Our exceptions
(``framework.errors``) get their status from ``STATUS``, looked up along the
exception's classes; FastAPI's and Starlette's own HTTP errors (a body that is not
JSON, an unknown route) keep theirs. Anything else is a bug and answers 500 with
what failed.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from framework.errors import (
    DataError,
    InvalidRequest,
    LifecycleError,
    NotFound,
    RefusedEvents,
    ServingError,
    StoreError,
    TooLarge,
    Unauthorized,
)

__all__ = ["STATUS", "install_error_handlers", "status_of"]

# The one table. Ordered from specific to general; the first class an error is an
# instance of decides.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (Unauthorized, 401),
    (NotFound, 404),
    (TooLarge, 413),
    (InvalidRequest, 422),
    (RefusedEvents, 422),
    (DataError, 422),
    (StoreError, 503),
)


def status_of(exc: Exception) -> int:
    """The HTTP status of one of our errors (500 when the table has none: a bug)."""
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 500)


def _detail(exc: LifecycleError) -> dict[str, Any]:
    detail: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, ServingError) and exc.field is not None:
        detail["field"] = exc.field
    if isinstance(exc, RefusedEvents):
        detail["violations"] = [v.as_json() for v in exc.violations]
    return detail


_TAGGED = ("entities", "problem")  # fields of a /predict body: one model per problem


def _field(error: dict[str, Any]) -> str:
    """The request field an error names. A ``/predict`` body is a union told apart by
    ``problem``: pydantic names the problem in the path (``churn.entities.0.user_id``)
    and reports a missing or unknown problem as a bad tag; both name ``problem``'s field."""
    if error.get("type") in ("union_tag_not_found", "union_tag_invalid"):
        return "problem"
    loc = [p for p in error.get("loc", ()) if p != "body"]
    if len(loc) > 1 and isinstance(loc[0], str) and loc[1] in _TAGGED:
        loc = loc[1:]
    return ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LifecycleError)
    async def _ours(_request: Request, exc: LifecycleError) -> JSONResponse:
        return JSONResponse(status_code=status_of(exc), content={"detail": _detail(exc)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        broken = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if broken is not None:  # not a bad field: no JSON at all
            reason = broken.get("ctx", {}).get("error", broken.get("msg", ""))
            return JSONResponse(
                status_code=400, content={"detail": {"error": f"the body is not JSON: {reason}"}}
            )
        errors = [{"field": _field(e), "error": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's and Starlette's own (e.g. a body that is not JSON: 400), in our shape.
        detail = exc.detail if isinstance(exc.detail, dict | list) else {"error": str(exc.detail)}
        return JSONResponse(
            status_code=exc.status_code, content={"detail": detail}, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # A bug: still answer JSON, with what failed.
        return JSONResponse(
            status_code=500, content={"detail": {"error": f"{type(exc).__name__}: {exc}"}}
        )
