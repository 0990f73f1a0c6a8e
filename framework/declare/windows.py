"""Windowed aggregates: one declaration, compiled into an ordinary Feast FeatureView.

A ``WindowedFeatureView`` names an event source (any ``FileSource``: any columns,
any timestamp field), its entities (any join keys, integer or string, one or
several), the windows and the aggregates. It *is* a Feast ``FeatureView`` (so
``feast apply`` registers it unchanged) whose batch source is a derived
change-point table that :func:`framework.prepare.window_tables.build_window_table`
writes from the raw events.

Semantics: the value of an aggregate over a window W for entity e at time t
covers exactly the events of e with timestamp in (t - W, t] (every event up to t
for the lifetime window) that pass the aggregate's ``where`` filter:

- ``count``: the number of such events (0 when none);
- ``sum`` / ``mean`` / ``min`` / ``max`` of a column: over the events whose column
  is not null (sum 0, the others null when there is none);
- ``count_distinct``: the exact number of distinct non-null values (0 when none);
- ``last``: the value of the latest such event with a non-null value (ties in time:
  the one later in the log), null when none;
- ``ratio``: events passing ``where`` over events passing ``per`` (clicks per
  impression), smoothed by a declared ``prior=(a, b)``: ``(numerator + a) /
  (denominator + b)``, so a window with few impressions leans to ``a / b`` and an
  empty one is ``a / b`` (null when there is no prior and no denominator).

Each of them is piecewise constant in t and changes only at an event time or an
event time + W, which is what the change-point table records.

Windows: ``timedelta`` values of whole seconds (at least one), plain integers
meaning days, or ``LIFETIME``. Feature names are
``<prefix>_<aggregate>_<function>_<window>`` where the window is written in the
largest unit that divides it: ``15m``, ``1h``, ``36h``, ``7d``, ``lifetime``.

The declaration travels with the view as JSON in its tags, so the framework can
rebuild the table from a registry entry as well as from the repo's source.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureView, Field, FileSource
from feast.base_feature_view import BaseFeatureView
from feast.types import Bool, Float64, Int32, Int64, String, UnixTimestamp
from feast.value_type import ValueType

from framework.declare.columns import source_kinds
from framework.declare.expressions import filter_columns, filter_to_sql
from framework.errors import FeatureRepoError

__all__ = ["LIFETIME", "Aggregate", "WindowSpec", "WindowedFeatureView", "window_suffix"]

SPEC_TAG = "lifecycle.windowed"
FUNCTIONS = ("count", "sum", "mean", "min", "max", "count_distinct", "last", "ratio")
# computable from prefix sums (a ratio is a mean whose summand and count are two filters)
PREFIX_FUNCTIONS = frozenset(("count", "sum", "mean", "ratio"))
ZERO_WHEN_EMPTY = frozenset(("count", "sum", "count_distinct"))
LIFETIME = "lifetime"
KINDS = ("int", "float", "string", "bool", "timestamp")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_FEAST_TYPES = {
    "int": Int64,
    "float": Float64,
    "string": String,
    "bool": Bool,
    "timestamp": UnixTimestamp,
}


@dataclass(frozen=True)
class Aggregate:
    """One aggregate over each window of a view.

    ``function`` is one of ``count`` (rows), ``sum``, ``mean``, ``min``, ``max``,
    ``count_distinct`` or ``last`` of ``column``, or ``ratio``. ``where`` is an
    optional filter in Python syntax over the event columns, e.g.
    ``'event_type == "page_view" and source == "google"'``. A view may hold
    several aggregates of one name with different functions (``amount`` sum and
    max): a feature is named by both.

    A ``ratio`` counts the events passing ``where`` over those passing ``per``, with
    ``prior=(a, b)`` pseudo-counts: ``Aggregate("ctr", "ratio", where='event_type ==
    "click"', per='event_type == "impression"', prior=(1, 20))`` is clicks plus one
    over impressions plus twenty (5% with no impressions).
    """

    name: str
    function: str = "count"
    column: str | None = None
    where: str | None = None
    per: str | None = None  # a ratio's denominator filter
    prior: tuple[float, float] = (0.0, 0.0)  # a ratio's pseudo-counts (numerator, denominator)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise FeatureRepoError(
                f"Aggregate name {self.name!r} must be lower_snake_case (letters, digits, _)."
            )
        if self.function not in FUNCTIONS:
            raise FeatureRepoError(
                f"The 'function' of aggregate {self.name!r} must be one of {list(FUNCTIONS)}. "
                f"Got {self.function!r} instead."
            )
        self._check_ratio()
        if self.function not in ("count", "ratio") and not self.column:
            raise FeatureRepoError(
                f"Aggregate {self.name!r} uses {self.function!r} and needs a 'column' to read."
            )
        if self.where is not None:
            filter_to_sql(self.where)  # fail at declaration time on a bad filter

    def _check_ratio(self) -> None:
        prior = self.prior
        if isinstance(prior, list):  # from JSON
            object.__setattr__(self, "prior", prior := tuple(prior))
        if self.function != "ratio":
            if self.per is not None or tuple(prior) != (0.0, 0.0):
                raise FeatureRepoError(
                    f"Aggregate {self.name!r}: per= and prior= belong to a ratio "
                    "(function='ratio')."
                )
            return
        if not self.where or not self.per or self.column:
            raise FeatureRepoError(
                f"Aggregate {self.name!r} is a ratio: it counts the events passing where= "
                "over those passing per= and reads no column, e.g. where='event_type == "
                '"click"\', per=\'event_type == "impression"\'.'
            )
        filter_to_sql(self.per)
        ok = (
            isinstance(prior, tuple)
            and len(prior) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in prior)
            and all(0 <= v < float("inf") for v in prior)
            and (prior[1] > 0 or prior[0] == 0)
        )
        if not ok:
            raise FeatureRepoError(
                f"Aggregate {self.name!r}: prior={prior!r} must be two pseudo-counts (a, b) "
                ">= 0, a numerator's and a denominator's, with b > 0 when a > 0; e.g. "
                "prior=(1, 20) leans an empty window to 5%."
            )
        object.__setattr__(self, "prior", (float(prior[0]), float(prior[1])))

    @property
    def empty_value(self) -> float | None:
        """A ratio's value over an empty window: a / b (None without a prior)."""
        if self.function != "ratio" or self.prior[1] == 0:
            return None
        return self.prior[0] / self.prior[1]

    @property
    def columns(self) -> set[str]:
        """The event columns this aggregate reads."""
        cols = {self.column} if self.column else set()
        for where in (self.where, self.per):
            cols |= filter_columns(where) if where else set()
        return cols


def window_suffix(seconds: int) -> str:
    """``15m``, ``1h``, ``36h``, ``7d`` or ``lifetime`` (0 seconds) for a window."""
    if seconds == 0:
        return LIFETIME
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class WindowSpec:
    """Everything needed to build a window table: plain data, JSON round-trippable.

    ``windows`` are in seconds, ascending, ``0`` (the lifetime window) last.
    ``key_kinds`` and ``column_kinds`` are the kinds (int, float, string, bool,
    timestamp) of the join keys and of the columns the aggregates read.
    """

    name: str
    entity_keys: tuple[str, ...]
    source_name: str
    source_path: str
    timestamp_field: str
    windows: tuple[int, ...]
    aggregates: tuple[Aggregate, ...]
    prefix: str
    table_path: str
    key_kinds: dict[str, str] = field(default_factory=dict)
    column_kinds: dict[str, str] = field(default_factory=dict)

    def feature_name(self, aggregate: Aggregate, window: int) -> str:
        return f"{self.prefix}_{aggregate.name}_{aggregate.function}_{window_suffix(window)}"

    @property
    def feature_names(self) -> list[str]:
        return [self.feature_name(a, w) for a in self.aggregates for w in self.windows]

    @property
    def entity_key(self) -> str:
        """The join key of a single-key view."""
        if len(self.entity_keys) != 1:
            raise FeatureRepoError(f"View {self.name!r} has the keys {list(self.entity_keys)}.")
        return self.entity_keys[0]

    @property
    def int_key(self) -> bool:
        """One integer join key: the key is its own code in the tables' indexes."""
        return len(self.entity_keys) == 1 and self.key_kinds.get(self.entity_keys[0]) == "int"

    @property
    def prefix_only(self) -> bool:
        """Every aggregate is a count, sum or mean (the compact index answers them)."""
        return all(a.function in PREFIX_FUNCTIONS for a in self.aggregates)

    @property
    def source_columns(self) -> set[str]:
        cols = {*self.entity_keys, self.timestamp_field}
        for agg in self.aggregates:
            cols |= agg.columns
        return cols

    def output_kind(self, aggregate: Aggregate) -> str:
        """The kind of the aggregate's features (int, float, string, bool, timestamp)."""
        fn = aggregate.function
        if fn in ("count", "count_distinct"):
            return "int32"
        column = self.column_kinds.get(aggregate.column or "", "float")
        if fn in ("mean", "ratio"):
            return "float"
        if fn == "sum":
            return "int" if column in ("int", "bool") else "float"
        return column

    @property
    def ttl(self) -> timedelta:
        """The shortest exact ttl: the largest gap between consecutive windows.

        A value other than the empty one always has a change point within that
        gap, so rows older than it can only hold empty values; Feast then returns
        null and we fill 0 for counts and sums (a longer ttl is as exact: a gap
        over a day is rounded up to whole days). A lifetime window never
        empties: no ttl (0).
        """
        if 0 in self.windows:
            return timedelta(0)
        edges = (0, *self.windows)
        gap = max(b - a for a, b in itertools.pairwise(edges))
        if gap > 86_400:  # whole days: Feast's DuckDB store refuses days and seconds mixed
            return timedelta(days=-(-gap // 86_400))
        return timedelta(seconds=gap)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WindowSpec:
        data: dict[str, Any] = json.loads(text)
        data["windows"] = tuple(data["windows"])
        data["entity_keys"] = tuple(data["entity_keys"])
        data["aggregates"] = tuple(Aggregate(**a) for a in data["aggregates"])
        return cls(**data)

    @classmethod
    def from_feature_view(cls, view: BaseFeatureView) -> WindowSpec | None:
        """The spec of a windowed view, or None for any other feature view."""
        text = (view.tags or {}).get(SPEC_TAG)
        return cls.from_json(text) if text else None


def _window_seconds(w: object) -> int:
    if isinstance(w, str) and w == LIFETIME:
        return 0
    if isinstance(w, int) and not isinstance(w, bool) and w > 0:
        return w * 86_400
    if isinstance(w, timedelta):
        seconds = w.total_seconds()
        if seconds >= 1 and seconds == int(seconds):
            return int(seconds)
    raise FeatureRepoError(
        "A window is a timedelta of whole seconds (at least 1 s), a whole number of days, "
        f"or LIFETIME; e.g. [timedelta(minutes=15), 7, LIFETIME]. Got {w!r}."
    )


def _check_windows(windows: list[Any] | tuple[Any, ...]) -> tuple[int, ...]:
    if not windows:
        raise FeatureRepoError("A windowed feature view needs at least one window, e.g. [7, 30].")
    seconds = [_window_seconds(w) for w in windows]
    if len(set(seconds)) != len(seconds):
        names = [window_suffix(s) for s in seconds]
        raise FeatureRepoError(f"Windows must be distinct. Got {names}.")
    finite = sorted(s for s in seconds if s)
    return (*finite, 0) if 0 in seconds else tuple(finite)


_VALUE_KINDS = {
    ValueType.INT64: "int",
    ValueType.INT32: "int",
    ValueType.STRING: "string",
}


def _key_kind(entity: Entity, key: str, kinds: dict[str, str], view: str) -> str:
    declared = _VALUE_KINDS.get(entity.value_type)
    if declared is not None:
        return declared
    found = kinds.get(key)
    if found in ("int", "string"):
        return found
    raise FeatureRepoError(
        f"WindowedFeatureView {view!r}: the type of join key {key!r} of entity {entity.name!r} "
        "is unknown; declare it, e.g. Entity(..., value_type=ValueType.STRING) or "
        "ValueType.INT64."
    )


def WindowedFeatureView(
    *,
    name: str,
    source: FileSource,
    windows: list[Any] | tuple[Any, ...],
    aggregates: list[Aggregate],
    entity: Entity | None = None,
    entities: list[Entity] | None = None,
    prefix: str | None = None,
    table_path: str | Path | None = None,
    description: str = "",
    owner: str = "",
    tags: dict[str, str] | None = None,
) -> FeatureView:
    """A Feast FeatureView whose features are windowed aggregates over raw events.

    Example::

        card_spend = WindowedFeatureView(
            name="card_spend",
            entity=card,                     # or entities=[card, merchant]
            source=payments,
            windows=[timedelta(minutes=15), timedelta(hours=1), 7, LIFETIME],
            aggregates=[
                Aggregate("payments", "count"),
                Aggregate("amount", "sum", column="amount"),
                Aggregate("amount", "max", column="amount"),
                Aggregate("merchants", "count_distinct", column="merchant_id"),
                Aggregate("web", "count", where='channel == "web"'),
            ],
        )

    creates ``card_payments_count_15m``, ..., ``card_amount_max_lifetime`` (names
    are ``<prefix>_<aggregate>_<function>_<window>``; the prefix defaults to the
    entity names joined by ``_``).

    It returns an ordinary ``FeatureView`` (Feast rebuilds views from their
    protos, so a subclass would not survive the registry); the declaration is in
    its tags, read back with ``WindowSpec.from_feature_view``.
    """
    if not isinstance(source, FileSource):
        raise FeatureRepoError(
            f"WindowedFeatureView {name!r} reads a FileSource over a parquet file of events; "
            f"got {type(source).__name__}."
        )
    if (entity is None) == (entities is None):
        raise FeatureRepoError(
            f"WindowedFeatureView {name!r} needs entity=... (one) or entities=[...] (several)."
        )
    ents = [entity] if entity is not None else list(entities or [])
    if not ents or not all(isinstance(e, Entity) for e in ents):
        raise FeatureRepoError(
            f"WindowedFeatureView {name!r}: entities must be Feast Entity objects."
        )
    if not aggregates:
        raise FeatureRepoError(f"WindowedFeatureView {name!r} needs at least one aggregate.")
    ids = [(a.name, a.function) for a in aggregates]
    if len(set(ids)) != len(ids):
        raise FeatureRepoError(
            f"Aggregates in {name!r} must differ by name or function: {[f'{n}/{f}' for n, f in ids]}."
        )
    keys = [e.join_key for e in ents]
    if len(set(keys)) != len(keys):
        raise FeatureRepoError(f"WindowedFeatureView {name!r}: join keys repeat: {keys}.")
    source_path = Path(source.path)
    kinds = source_kinds(source_path)
    table = Path(table_path) if table_path else source_path.parent / "derived" / f"{name}.parquet"
    key_kinds = {e.join_key: _key_kind(e, e.join_key, kinds, name) for e in ents}
    read = {c for a in aggregates if a.column for c in [a.column]}
    spec = WindowSpec(
        name=name,
        entity_keys=tuple(keys),
        source_name=source.name or source_path.stem,
        source_path=str(source_path),
        timestamp_field=source.timestamp_field or "event_timestamp",
        windows=_check_windows(windows),
        aggregates=tuple(aggregates),
        prefix=prefix or "_".join(e.name for e in ents),
        table_path=str(table),
        key_kinds=key_kinds,
        column_kinds={c: kinds.get(c, "float") for c in sorted(read)},
    )
    for agg in spec.aggregates:
        if agg.function in ("min", "max", "last") and agg.column not in kinds:
            raise FeatureRepoError(
                f"Aggregate {agg.name!r} ({agg.function}) of {name!r}: the type of column "
                f"{agg.column!r} comes from the events file, which is not there yet "
                f"({spec.source_path}). Write the file first."
            )
    schema = [Field(name=k, dtype=String if key_kinds[k] == "string" else Int64) for k in keys]
    for agg in spec.aggregates:
        kind = spec.output_kind(agg)
        dtype = Int32 if kind == "int32" else _FEAST_TYPES[kind]
        schema += [Field(name=spec.feature_name(agg, w), dtype=dtype) for w in spec.windows]
    table_source = FileSource(
        name=f"{name}_table",
        path=str(table),
        timestamp_field=spec.timestamp_field,
        description=f"Change-point table of {name}, built by `lifecycle apply`.",
    )
    return FeatureView(
        name=name,
        entities=ents,
        source=table_source,
        schema=schema,
        ttl=spec.ttl,
        online=True,
        description=description or f"Windowed aggregates over {source.name or source.path}.",
        owner=owner,
        tags={**(tags or {}), SPEC_TAG: spec.to_json()},
    )
