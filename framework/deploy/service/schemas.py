"""The service's request and response models: what the OpenAPI schema documents."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, StrictInt

__all__ = [
    "INT64",
    "MAX_EVENTS",
    "ErrorDetail",
    "ErrorResponse",
    "Event",
    "EventsRequest",
    "EventsResponse",
    "HealthResponse",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "error_responses",
]

MAX_EVENTS = 10_000
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


_MEANING = {
    400: "The body is not JSON.",
    401: "Missing or wrong X-API-Key (when the service has one).",
    404: "Unknown problem, or no production model for it.",
    413: "Body or batch too large.",
    422: "A field is invalid; the body names it.",
    503: "The online store or the event log is unavailable; retry later.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entry for these error statuses."""
    return {c: {"model": ErrorResponse, "description": _MEANING[c]} for c in codes}


class HealthResponse(BaseModel):
    status: str = Field(
        description="ok, or degraded. A 503 when a check is unavailable (the online store, "
        "a model); a prediction log that spools while its database fails is degraded but "
        "the service answers (200)."
    )
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
