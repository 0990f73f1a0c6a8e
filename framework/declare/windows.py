"""Windowed aggregates: one declaration, compiled into an ordinary Feast FeatureView.

A ``WindowedFeatureView`` names an event source, an entity, the windows (in days)
and the aggregates. It *is* a Feast ``FeatureView`` (so ``feast apply`` registers it
unchanged) whose batch source is a derived change-point table that
:func:`framework.prepare.window_tables.build_window_table` writes from the raw events.

Semantics: the value of a W-day aggregate for entity e at time t covers exactly
the events of e with timestamp in (t - W days, t]. Counts and sums of an entity
without events in the window are 0; a mean without events is null.

The declaration travels with the view as JSON in its tags, so the framework can
rebuild the table from a registry entry as well as from the repo's source.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureView, Field, FileSource
from feast.base_feature_view import BaseFeatureView
from feast.types import Float64, Int32, Int64

from framework.declare.expressions import filter_columns, filter_to_sql
from framework.errors import FeatureRepoError

__all__ = ["Aggregate", "WindowSpec", "WindowedFeatureView"]

SPEC_TAG = "lifecycle.windowed"
FUNCTIONS = ("count", "sum", "mean")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Aggregate:
    """One aggregate over a window: ``count`` (rows), ``sum`` or ``mean`` of ``column``.

    ``where`` is an optional filter in Python syntax over the event columns,
    e.g. ``'event_type == "page_view" and source == "google"'``.
    """

    name: str
    function: str = "count"
    column: str | None = None
    where: str | None = None

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
        if self.function != "count" and not self.column:
            raise FeatureRepoError(
                f"Aggregate {self.name!r} uses {self.function!r} and needs a 'column' to read."
            )
        if self.where is not None:
            filter_to_sql(self.where)  # fail at declaration time on a bad filter


@dataclass(frozen=True)
class WindowSpec:
    """Everything needed to build a window table: plain data, JSON round-trippable."""

    name: str
    entity_key: str
    source_path: str
    timestamp_field: str
    windows: tuple[int, ...]
    aggregates: tuple[Aggregate, ...]
    prefix: str
    table_path: str

    def feature_name(self, aggregate: Aggregate, window: int) -> str:
        return f"{self.prefix}_{aggregate.name}_{aggregate.function}_{window}d"

    @property
    def feature_names(self) -> list[str]:
        return [self.feature_name(a, w) for a in self.aggregates for w in self.windows]

    @property
    def source_columns(self) -> set[str]:
        cols = {self.entity_key, self.timestamp_field}
        for agg in self.aggregates:
            if agg.column:
                cols.add(agg.column)
            if agg.where:
                cols |= filter_columns(agg.where)
        return cols

    @property
    def ttl(self) -> timedelta:
        """The shortest exact ttl: the largest gap between consecutive windows.

        A non-zero value always has a change point within that gap, so rows older
        than it can only hold zeros; Feast then returns null and we fill 0.
        """
        edges = (0, *self.windows)
        return timedelta(days=max(b - a for a, b in itertools.pairwise(edges)))

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WindowSpec:
        data: dict[str, Any] = json.loads(text)
        data["windows"] = tuple(data["windows"])
        data["aggregates"] = tuple(Aggregate(**a) for a in data["aggregates"])
        return cls(**data)

    @classmethod
    def from_feature_view(cls, view: BaseFeatureView) -> WindowSpec | None:
        """The spec of a windowed view, or None for any other feature view."""
        text = (view.tags or {}).get(SPEC_TAG)
        return cls.from_json(text) if text else None


def _check_windows(windows: list[int] | tuple[int, ...]) -> tuple[int, ...]:
    if not windows:
        raise FeatureRepoError("A windowed feature view needs at least one window, e.g. [7, 30].")
    for w in windows:
        if not isinstance(w, int) or isinstance(w, bool) or w <= 0:
            raise FeatureRepoError(
                f"Windows are whole days > 0, e.g. [7, 30, 90]. Got {w!r} in {list(windows)}."
            )
    if len(set(windows)) != len(windows):
        raise FeatureRepoError(f"Windows must be distinct. Got {list(windows)}.")
    return tuple(sorted(windows))


def WindowedFeatureView(
    *,
    name: str,
    entity: Entity,
    source: FileSource,
    windows: list[int] | tuple[int, ...],
    aggregates: list[Aggregate],
    prefix: str | None = None,
    table_path: str | Path | None = None,
    description: str = "",
    owner: str = "",
    tags: dict[str, str] | None = None,
) -> FeatureView:
    """A Feast FeatureView whose features are windowed aggregates over raw events.

    Example::

        user_activity = WindowedFeatureView(
            name="user_activity",
            entity=user,
            source=events_source,
            windows=[7, 30, 90],
            aggregates=[
                Aggregate("events", "count"),
                Aggregate("amount", "sum", column="amount"),
                Aggregate("page_views_google", "count",
                          where='event_type == "page_view" and source == "google"'),
            ],
        )

    creates ``user_events_count_7d``, ..., ``user_amount_sum_90d``, ... (names are
    ``<prefix>_<aggregate>_<function>_<N>d``; the prefix defaults to the entity name).

    It returns an ordinary ``FeatureView`` (Feast rebuilds views from their
    protos, so a subclass would not survive the registry); the declaration is in
    its tags, read back with ``WindowSpec.from_feature_view``.
    """
    if not isinstance(source, FileSource):
        raise FeatureRepoError(
            f"WindowedFeatureView {name!r} reads a FileSource over a parquet file of events; "
            f"got {type(source).__name__}."
        )
    if not aggregates:
        raise FeatureRepoError(f"WindowedFeatureView {name!r} needs at least one aggregate.")
    names = [a.name for a in aggregates]
    if len(set(names)) != len(names):
        raise FeatureRepoError(f"Aggregate names in {name!r} must be distinct: {names}.")
    source_path = Path(source.path)
    table = Path(table_path) if table_path else source_path.parent / "derived" / f"{name}.parquet"
    spec = WindowSpec(
        name=name,
        entity_key=entity.join_key,
        source_path=str(source_path),
        timestamp_field=source.timestamp_field or "event_timestamp",
        windows=_check_windows(windows),
        aggregates=tuple(aggregates),
        prefix=prefix or entity.name,
        table_path=str(table),
    )
    schema = [Field(name=spec.entity_key, dtype=Int64)]
    for agg in spec.aggregates:
        dtype = Int32 if agg.function == "count" else Float64
        schema += [Field(name=spec.feature_name(agg, w), dtype=dtype) for w in spec.windows]
    table_source = FileSource(
        name=f"{name}_table",
        path=str(table),
        timestamp_field=spec.timestamp_field,
        description=f"Change-point table of {name}, built by `lifecycle apply`.",
    )
    return FeatureView(
        name=name,
        entities=[entity],
        source=table_source,
        schema=schema,
        ttl=spec.ttl,
        online=True,
        description=description or f"Windowed aggregates over {source.name or source.path}.",
        owner=owner,
        tags={**(tags or {}), SPEC_TAG: spec.to_json()},
    )
