"""ASGI middleware of the prediction service: the body limit."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from framework.deploy.service.errors import status_of
from framework.errors import TooLarge

__all__ = ["MAX_BODY_BYTES", "BodyLimit"]

MAX_BODY_BYTES = 4 * 1024 * 1024  # 10,000 events of ~150 bytes fit; larger bodies get 413


def _refusal(limit: int) -> TooLarge:
    return TooLarge(None, f"the body is over {limit:,} bytes")


class _BodyOverLimit(StarletteHTTPException):
    """Raised while the body streams in: an HTTP error, so that FastAPI's body parsing
    passes it on (instead of answering 400) and the app's handler answers it."""

    def __init__(self, limit: int) -> None:
        refused = _refusal(limit)
        detail: Any = {"error": str(refused)}  # our error shape (Starlette's stub says str)
        super().__init__(status_of(refused), detail=detail)


class BodyLimit:
    """A body over ``limit`` bytes gets 413 before it is read whole (by its
    Content-Length, or as it streams in when it has none)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            refused = _refusal(self.limit)
            response = JSONResponse(
                status_code=status_of(refused), content={"detail": {"error": str(refused)}}
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyOverLimit(self.limit)
            return message

        await self.app(scope, counted, send)
