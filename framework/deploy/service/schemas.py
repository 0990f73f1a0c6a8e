"""The service's request and response models: what the OpenAPI schema documents.

The request models are built per app from the repo's declarations
(``build_request_models``): a ``/predict`` body is one of a model per declared
problem, told apart by ``problem`` (an enum), whose entities carry that
problem's join keys with their declared types (64-bit integers or texts; all of
a composite key) and an optional ``event_timestamp`` (epoch seconds); a batch
holds at most the app's ``max_entities``; an event has its source's columns with their kinds, enums
for the contract's allowed values and its numeric ranges as bounds. A
generated request that follows the schema therefore reaches feature lookup,
scoring and the logs, not only the refusals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from annotated_types import Ge, Le
from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    create_model,
)

if TYPE_CHECKING:
    from framework.declare.repo import FeatureRepo

__all__ = [
    "INT64",
    "MAX_EVENTS",
    "ErrorDetail",
    "ErrorResponse",
    "EventsResponse",
    "HealthResponse",
    "PredictResponse",
    "Prediction",
    "RankResponse",
    "RequestModels",
    "build_request_models",
    "error_responses",
]

MAX_EVENTS = 10_000
INT64 = (-(2**63), 2**63 - 1)
EPOCH_MAX = 2**33 - 1  # epoch seconds: up to the year 2242 (pandas' range ends in 2262)


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


class ProblemHealth(BaseModel):
    status: str = Field(description="serving, or unavailable (no production model, say).")
    version: str | None = Field(default=None, description="The model version it serves.")
    reason: str | None = Field(default=None, description="Why it is unavailable, and the fix.")


class HealthResponse(BaseModel):
    status: str = Field(
        description="ok, or degraded. Ready (200) when the service can answer: the online "
        "store answers and at least one declared problem has a production model (or none is "
        "declared). A problem without a model, or a prediction log that spools while its "
        "database fails, is degraded but ready; 503 when the online store is unavailable or "
        "no problem can be served."
    )
    checks: dict[str, str]
    problems: dict[str, ProblemHealth] = Field(
        default_factory=dict, description="Each declared problem: served or not, and why."
    )


class EventsResponse(BaseModel):
    accepted: int
    online: str = Field(
        default="none",
        description="updated: online windowed features count the events now; pending: the "
        "online store failed (the events are stored; the next materialization counts "
        "them online); none: no online windowed view reads the source yet.",
    )


class Prediction(BaseModel):
    score: float | None = Field(
        default=None, description="Absent only in an experiment arm with no model (policy none)."
    )
    label: int | str | None = Field(
        default=None,
        description="Binary: 0/1 at the decision threshold; multiclass: the most likely class.",
    )
    probabilities: dict[str, float] | None = Field(
        default=None, description="Multiclass: the probability of each class."
    )
    feature_status: str
    arm: str | None = Field(default=None, description="The experiment arm, when one is running.")
    model_version: str | None = None
    model_config = {"extra": "allow"}


class PredictResponse(BaseModel):
    problem: str
    model_version: str
    predictions: list[Prediction]


class RankedItem(BaseModel):
    rank: int = Field(description="1 = first shown.")
    score: float | None = Field(
        default=None, description="The model's score (or the popularity feature's value)."
    )
    propensity: float | None = Field(
        default=None,
        description="With exploration declared: the probability the policy had of putting "
        "this item at this rank, given the items shown (log it with the impression).",
    )
    model_config = {"extra": "allow"}  # the item's keys


class RankResponse(BaseModel):
    problem: str
    model_version: str = Field(description="The model version, or 'popularity' / 'none'.")
    ranked: list[RankedItem] = Field(description="The top k candidates, best first.")
    arm: str | None = Field(default=None, description="The experiment arm of the user.")
    explored: bool | None = Field(
        default=None,
        description="With exploration declared: whether this list was shuffled uniformly.",
    )


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema means it (5 and 5.0 alike); not a boolean or a text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# Bounds as annotated-types markers: they reach the JSON schema (minimum, maximum).
Int64 = Annotated[int, Ge(INT64[0]), Le(INT64[1]), BeforeValidator(_json_integer)]
EpochSeconds = Annotated[float, Ge(0), Le(EPOCH_MAX), BeforeValidator(_json_number)]


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str):  # a number would pass as epoch seconds: the schema says text
        raise ValueError("must be an ISO 8601 text with a time zone, e.g. 2025-06-01T12:00:00Z")
    return value


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


def _key_text(value: Any) -> Any:
    if not isinstance(value, str):  # 42 for a text key: the schema says text
        raise ValueError("must be a text")
    return value


KeyText = Annotated[str, Field(min_length=1, max_length=256), BeforeValidator(_key_text)]


@dataclass(frozen=True)
class RequestModels:
    """The request bodies of one app, built from its repo's declarations."""

    predict: Any  # a model, or a union of one model per problem told apart by "problem"
    events: type[BaseModel]
    event_models: dict[str, type[BaseModel]]
    rank: Any = None  # as predict, for the ranking problems (a generic model when none)


def _text(values: tuple[str, ...] | None, description: str) -> tuple[Any, Any]:
    """A string field: an enum of ``values`` when declared, else 1 to 64 characters."""
    if values:
        return Literal[values], Field(description=description)
    return str, Field(min_length=1, max_length=64, description=description)


def build_request_models(repo: FeatureRepo, max_entities: int) -> RequestModels:
    """The ``/predict`` and ``/events`` bodies as the repo declares them (see the module)."""
    bodies = []
    for name in sorted(repo.problems):
        if repo.problems[name].kind.route != "predict":  # a forecast: --horizon; /rank
            continue
        kinds = repo.key_kinds(name)
        title = "".join(part.capitalize() for part in name.split("_"))
        key_fields: dict[str, Any] = {
            k: (Int64 if kind == "int" else KeyText, Field(description=f"{kind} join key"))
            for k, kind in kinds.items()
        }
        entity = create_model(
            f"{title}Entity",
            __config__=ConfigDict(extra="forbid"),
            __doc__=f"One entity of problem {name!r}: its join key(s) {list(kinds)} and, "
            "optionally, the request time for date features.",
            event_timestamp=(
                EpochSeconds | None,
                Field(
                    default=None, description="The request time in epoch seconds (default: now)."
                ),
            ),
            **key_fields,
        )
        bodies.append(
            create_model(
                f"{title}PredictRequest",
                __config__=ConfigDict(extra="forbid"),
                __doc__=f"Predictions of problem {name!r}.",
                problem=(Literal[name], Field(description="The problem.")),  # type: ignore[arg-type]
                entities=(
                    list[entity],  # type: ignore[valid-type]
                    Field(min_length=1, description=f"At most {max_entities} (more: 413)."),
                ),
            )
        )
    predict: Any
    if not bodies:
        predict = create_model(
            "PredictRequest",
            __config__=ConfigDict(extra="forbid"),
            problem=(str, Field(description="A problem declared in the feature repo (none is).")),
            entities=(list[dict[str, Any]], Field(min_length=1)),
        )
    elif len(bodies) == 1:
        predict = bodies[0]
    else:
        predict = Annotated[Union[tuple(bodies)], Field(discriminator="problem")]  # noqa: UP007
    models = event_models(repo)
    events: type[BaseModel]
    if not models:
        events = create_model(
            "EventsRequest",
            __config__=ConfigDict(extra="forbid"),
            source=(str | None, None),
            events=(list[dict[str, Any]], Field(min_length=1, max_length=MAX_EVENTS)),
        )
    else:
        names = tuple(models)
        one = len(names) == 1
        union: Any = models[names[0]] if one else Union[tuple(models.values())]  # noqa: UP007
        source_type: Any = Literal[names] | None if one else Literal[names]
        events = create_model(
            "EventsRequest",
            __config__=ConfigDict(extra="forbid"),
            __doc__="Events of one declared source, checked against its contract.",
            source=(
                source_type,
                Field(
                    default=names[0] if one else ...,
                    description="The event source (optional when the repo has one).",
                ),
            ),
            events=(list[union], Field(min_length=1, max_length=MAX_EVENTS)),
        )
    return RequestModels(
        predict=predict, events=events, event_models=models, rank=_rank_models(repo, max_entities)
    )


def _rank_models(repo: FeatureRepo, max_candidates: int) -> Any:
    """The ``/rank`` body of each ranking problem: the query's keys (whom the list is
    for), the candidates' (item) keys, and k."""
    bodies = []
    for name in sorted(repo.problems):
        problem = repo.problems[name]
        if problem.kind.route != "rank":
            continue
        kinds = repo.key_kinds(name)
        title = "".join(part.capitalize() for part in name.split("_"))

        def keys(names: tuple[str, ...], kinds: dict[str, str] = kinds) -> dict[str, Any]:
            return {
                k: (Int64 if kinds[k] == "int" else KeyText, Field(description=f"{kinds[k]} key"))
                for k in names
            }

        query = create_model(
            f"{title}Query",
            __config__=ConfigDict(extra="forbid"),
            __doc__=f"The query of {name!r}: its keys {list(problem.query_keys)}.",
            event_timestamp=(
                EpochSeconds | None,
                Field(
                    default=None, description="The request time in epoch seconds (default: now)."
                ),
            ),
            **keys(problem.query_keys),
        )
        candidate = create_model(
            f"{title}Candidate",
            __config__=ConfigDict(extra="forbid"),
            __doc__=f"A candidate item of {name!r}: its keys {list(problem.item_keys)}.",
            **keys(problem.item_keys),
        )
        bodies.append(
            create_model(
                f"{title}RankRequest",
                __config__=ConfigDict(extra="forbid"),
                __doc__=f"Order candidates for a query by the model of ranking {name!r}.",
                problem=(Literal[name], Field(description="The ranking problem.")),  # type: ignore[arg-type]
                query=(
                    query,
                    Field(
                        # "user": the older name, accepted for one release
                        validation_alias=AliasChoices("query", "user"),
                        description=f"Whom the list is for: the keys {list(problem.query_keys)}.",
                    ),
                ),
                candidates=(
                    list[candidate],  # type: ignore[valid-type]
                    Field(min_length=1, description=f"At most {max_candidates} (more: 413)."),
                ),
                k=(
                    int | None,
                    Field(
                        default=None,
                        ge=1,
                        le=max_candidates,
                        description=f"How many to answer (default: top_k, {problem.top_k}).",
                    ),
                ),
            )
        )
    if not bodies:
        return create_model(
            "RankRequest",
            __config__=ConfigDict(extra="forbid"),
            problem=(str, Field(description="A ranking problem (the repo declares none).")),
            user=(dict[str, Any], ...),
            candidates=(list[dict[str, Any]], Field(min_length=1)),
            k=(int | None, None),
        )
    if len(bodies) == 1:
        return bodies[0]
    return Annotated[Union[tuple(bodies)], Field(discriminator="problem")]  # noqa: UP007


def _event_field(kind: str, column: str, contract: Any) -> Any:
    if column in contract.allowed:
        return Literal[tuple(contract.allowed[column])]
    if kind == "int":
        return Int64
    if kind == "float":
        low, high = contract.ranges.get(column, (None, None))
        bounds = [
            *([Ge(low)] if low is not None else []),
            *([Le(high)] if high is not None else []),
        ]
        return Annotated[float, *bounds, BeforeValidator(_json_number)]
    if kind == "bool":
        return StrictBool
    if kind == "timestamp":
        return IsoTime
    return Annotated[str, Field(min_length=1, max_length=1024)]


def event_models(repo: FeatureRepo) -> dict[str, type[BaseModel]]:
    """One model per event source, from its contract (declared or recorded at apply)."""
    out: dict[str, type[BaseModel]] = {}
    for name, src in repo.event_sources.items():
        try:
            contract = repo.source_contract(src)
        except Exception:  # no contract known yet (never applied): no typed model
            continue
        fields: dict[str, Any] = {}
        for col in contract.column_list(src.timestamp_field):
            typ = _event_field(col.kind, col.name, contract)
            desc = f"{col.kind}" + (
                " (with a time zone, not in the future)" if col.kind == "timestamp" else ""
            )
            if col.nullable and col.name not in src.keys:
                fields[col.name] = (typ | None, Field(default=None, description=desc))
            else:
                fields[col.name] = (typ, Field(description=desc))
        title = "".join(part.capitalize() for part in name.split("_")) or "Event"
        out[name] = create_model(
            f"{title}Event",
            __config__=ConfigDict(extra="forbid"),
            __doc__=f"One event of source {name!r} (its contract).",
            **fields,
        )
    return out
