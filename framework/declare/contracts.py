"""Declare data contracts: what an event source may hold.

A ``SourceContract`` is declared in the feature repo beside its source (e.g. in
``sources.py``)::

    payments_contract = SourceContract(
        source=payments,                       # the FileSource, or its name
        columns={"card_id": "string", "ts": "timestamp", "merchant_id": "string",
                 "channel": "string", "amount": "float"},
        nullable=["merchant_id"],
        allowed={"channel": ["web", "pos", "phone"]},
        ranges={"amount": (0, None)},          # (low, high); None: unbounded
        max_future=timedelta(minutes=5),
        event_id="payment_id",                 # optional: makes re-sending safe
    )

Kinds are ``int``, ``float``, ``string``, ``bool`` and ``timestamp``. A source
without a declared contract gets one recorded from its file at ``lifecycle
apply`` (the column kinds, every column but the timestamp nullable), so new
rows are still checked. The checks that apply a contract live in
:mod:`framework.collect.checks`; a failed check is a ``framework.errors.Violation``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from framework.errors import ConfigError

__all__ = ["KINDS", "Column", "SourceContract", "kind_of"]

KINDS = ("int", "float", "string", "bool", "timestamp")
SCHEMA_TAG = "lifecycle.schema"


@dataclass(frozen=True)
class Column:
    """An expected column: its kind (int, float, string, timestamp, bool) and nullability."""

    name: str
    kind: str
    nullable: bool = False


def _source_name(source: Any) -> str:
    if isinstance(source, str) and source:
        return source
    name = getattr(source, "name", None)
    if isinstance(name, str) and name:
        return name
    raise ConfigError(
        f"SourceContract(source=...) takes a FileSource with a name, or the name; got {source!r}."
    )


@dataclass(frozen=True)
class SourceContract:
    """What one event source may hold (see the module docstring)."""

    source: Any
    columns: Mapping[str, str] | None = None
    nullable: Sequence[str] = ()
    allowed: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    max_future: timedelta = timedelta(minutes=5)
    event_id: str | None = None
    timestamp_field: str | None = None

    def __post_init__(self) -> None:
        name = _source_name(self.source)
        ts = self.timestamp_field or getattr(self.source, "timestamp_field", None) or None
        object.__setattr__(self, "source", name)
        if self.columns is not None:
            bad = {c: k for c, k in self.columns.items() if k not in KINDS}
            if bad:
                raise ConfigError(
                    f"SourceContract {name!r}: column kinds must be one of {list(KINDS)}; got {bad}."
                )
            object.__setattr__(self, "columns", dict(self.columns))
            known = set(self.columns)
            for what, cols in (
                ("nullable", list(self.nullable)),
                ("allowed", list(self.allowed)),
                ("ranges", list(self.ranges)),
                ("event_id", [self.event_id] if self.event_id else []),
            ):
                unknown = [c for c in cols if c not in known]
                if unknown:
                    raise ConfigError(
                        f"SourceContract {name!r}: {what} names column(s) {unknown} that are not "
                        f"in its columns {sorted(known)}."
                    )
        if isinstance(self.nullable, str):
            raise ConfigError(f"SourceContract {name!r}: nullable is a list of column names.")
        object.__setattr__(self, "nullable", tuple(self.nullable))
        allowed: dict[str, tuple[Any, ...]] = {}
        for col, values in self.allowed.items():
            if isinstance(values, str) or not values:
                raise ConfigError(
                    f"SourceContract {name!r}: allowed[{col!r}] must be a non-empty list of "
                    f"values, got {values!r}."
                )
            allowed[col] = tuple(values)
        object.__setattr__(self, "allowed", allowed)
        for col, bounds in self.ranges.items():
            if not (isinstance(bounds, tuple | list) and len(bounds) == 2):
                raise ConfigError(
                    f"SourceContract {name!r}: ranges[{col!r}] is (low, high), None for no "
                    f"bound; got {bounds!r}."
                )
        object.__setattr__(self, "ranges", {c: tuple(b) for c, b in self.ranges.items()})
        if not isinstance(self.max_future, timedelta) or self.max_future < timedelta(0):
            raise ConfigError(
                f"SourceContract(max_future=...) must be a timedelta >= 0, got {self.max_future!r}."
            )
        object.__setattr__(self, "timestamp_field", ts)

    @property
    def name(self) -> str:
        return str(self.source)

    def column_list(self, timestamp_field: str) -> list[Column]:
        """The contract's columns; the timestamp never null, the others as declared."""
        cols = self.columns or {}
        return [
            Column(c, k, nullable=c in self.nullable and c != timestamp_field)
            for c, k in cols.items()
        ]

    def to_json(self) -> str:
        return json.dumps(
            {"columns": self.columns, "nullable": list(self.nullable)}, sort_keys=True
        )

    @classmethod
    def recorded(cls, source: str, text: str) -> SourceContract:
        """The contract recorded in the registry for a source without a declared one."""
        data = json.loads(text)
        return cls(source=source, columns=data["columns"], nullable=data["nullable"])


def kind_of(typ: Any) -> str | None:
    """The contract kind of an Arrow type (None for a column of nulls only)."""
    import pyarrow as pa

    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_null(typ):
        return None
    if pa.types.is_integer(typ):
        return "int"
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return "float"
    if pa.types.is_boolean(typ):
        return "bool"
    if pa.types.is_timestamp(typ):
        return "timestamp"
    return "string"
