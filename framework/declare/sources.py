"""An event source of a repo, and the contract its log file implies."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.errors import FeatureRepoError

if TYPE_CHECKING:
    from framework.declare.contracts import SourceContract
    from framework.declare.windows import WindowSpec

__all__ = ["EventSource", "event_sources", "infer_contract", "with_columns"]


@dataclass(frozen=True)
class EventSource:
    """An event source of the repo: a parquet log that windowed views read (or that a
    contract declares), with the join keys those views need on every row."""

    name: str
    path: str
    timestamp_field: str
    keys: tuple[str, ...]
    contract: SourceContract | None  # the declared one, if any


def with_columns(contract: SourceContract, other: SourceContract) -> SourceContract:
    import dataclasses

    return dataclasses.replace(contract, columns=other.columns, nullable=other.nullable)


def infer_contract(source: EventSource) -> SourceContract:
    """The contract a log file implies: its columns' kinds, all nullable but the timestamp."""
    from framework.declare.columns import parquet_schema
    from framework.declare.contracts import SourceContract, kind_of

    schema = parquet_schema(source.path)
    columns = {f.name: kind_of(f.type) or "string" for f in schema}
    nullable = [c for c in columns if c != source.timestamp_field and c not in source.keys]
    return SourceContract(source=source.name, columns=columns, nullable=nullable)


def event_sources(
    specs: list[WindowSpec], contracts: dict[str, SourceContract], data_sources: list[Any]
) -> dict[str, EventSource]:
    """The event sources, by name: those windowed views read (``specs``), and those a
    contract is declared for (one of the repo's file ``data_sources``); refused when a
    contract names an undeclared source or two sources read one file."""
    keys: dict[str, list[str]] = {}
    found: dict[str, tuple[str, str]] = {}
    for spec in specs:
        found[spec.source_name] = (spec.source_path, spec.timestamp_field)
        have = keys.setdefault(spec.source_name, [])
        have += [k for k in spec.entity_keys if k not in have]
    declared = {s.name: s for s in data_sources if s.name}
    for name in contracts:
        if name in found:
            continue
        src = declared.get(name)
        if src is None:
            close = difflib.get_close_matches(name, list(declared), n=3)
            raise FeatureRepoError(
                f"A contract is declared for source {name!r}, which the repo does not "
                f"declare; close matches: {close}."
            )
        found[name] = (str(src.path), src.timestamp_field or "event_timestamp")
    by_path: dict[str, str] = {}
    for name, (path, _) in found.items():
        if path in by_path:
            raise FeatureRepoError(
                f"Sources {by_path[path]!r} and {name!r} read the same file {path}; "
                "declare one source per event log."
            )
        by_path[path] = name
    return {
        name: EventSource(name, path, ts, tuple(keys.get(name, ())), contracts.get(name))
        for name, (path, ts) in sorted(found.items())
    }
