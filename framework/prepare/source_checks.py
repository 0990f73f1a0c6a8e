"""Check an event source's log against its contract: the single-machine check, which the
Spark path (``framework.prepare.checks_spark``) runs on each partition."""

from __future__ import annotations

from typing import TYPE_CHECKING

from framework.collect.checks import check_events, check_frame, read_table
from framework.declare.contracts import Column, SourceContract
from framework.declare.repo import EventSource, infer_contract
from framework.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

    from framework.declare.windows import WindowSpec

__all__ = ["check_source"]


def check_source(
    specs: list[WindowSpec],
    source: EventSource,
    table: pa.Table | None = None,
    unique: bool = True,
) -> SourceContract:
    """Check an event source's log (or ``table``, a part of it) against its contract
    (declared, or implied by the file) and the columns its views read; return the
    contract to record. ``specs``: the repo's window specs (those reading the source
    must find their columns)."""
    from framework.declare.columns import check_columns

    if table is None:
        table = read_table(source.path, f"Event source {source.name!r}:")
    declared = source.contract
    if declared is not None and declared.columns is not None:
        contract = declared
        check_frame(
            table,
            contract.column_list(source.timestamp_field),
            source=source.path,
            nulls=False,
        )
    else:
        inferred = infer_contract(source)
        if declared is not None:
            import dataclasses

            inferred = dataclasses.replace(
                declared, columns=inferred.columns, nullable=inferred.nullable
            )
        contract = inferred
        if source.timestamp_field not in table.column_names:
            raise DataError(
                f"Event source {source.name!r} ({source.path}) has no timestamp column "
                f"{source.timestamp_field!r}; it has {table.column_names}. Fix the source's "
                "timestamp_field."
            )
        check_frame(
            table,
            [Column(source.timestamp_field, "timestamp")],
            source=source.path,
            allow_extra=True,
        )
    kinds = dict(contract.columns or {})
    for spec in specs:
        if spec.source_name == source.name:
            check_columns(spec, kinds)
    check_events(
        table.select(list(kinds)),
        contract,
        source=source.path,
        timestamp_field=source.timestamp_field,
        keys=source.keys,
    )
    if contract.event_id and unique:
        check_frame(
            table,
            [Column(contract.event_id, kinds[contract.event_id])],
            source=source.path,
            allow_extra=True,
            unique=(contract.event_id,),
        )
    return contract
