"""Collect data: checks on every input table, against its source's contract.

An event source's rows follow its ``SourceContract``
(:mod:`framework.declare.contracts`): the declared columns and kinds, which may
be null, allowed values, numeric ranges, how far in the future a timestamp may
be. Timezone-naive timestamps are refused (a naive time is ambiguous): write
them with an offset, e.g. ``2025-06-01T12:00:00Z``.

``contract_violations`` checks a table against a contract and ``check_events``
refuses the whole table with a report naming every violation: the check, how
many rows fail it and examples (row number and value).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from framework.declare.contracts import Column, SourceContract, kind_of
from framework.errors import DataError, RefusedEvents, Violation

__all__ = [
    "ARROW_TYPES",
    "check_events",
    "check_frame",
    "contract_violations",
    "kind_of",
    "read_table",
]

ARROW_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


_KIND_CHECK = {
    "int": pa.types.is_integer,
    "float": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "timestamp": pa.types.is_timestamp,
    "bool": pa.types.is_boolean,
}
_KIND_FIX = {
    "int": "integers (int64)",
    "float": "numbers (float64)",
    "string": "strings",
    "timestamp": "timestamps with a time zone (UTC)",
    "bool": "booleans",
}


def read_table(path: str | Path, what: str = "table") -> pa.Table:
    """Read a parquet or CSV file as an Arrow table, with a clear error when it cannot."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} file {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{what} file {path} cannot be read as {suffix[1:]}: {exc}") from exc
    raise DataError(f"{what} file {path} must be .parquet or .csv, got {suffix or 'no suffix'!r}.")


def check_frame(
    table: pa.Table,
    columns: tuple[Column, ...] | list[Column],
    *,
    source: str,
    allow_extra: bool = False,
    unique: tuple[str, ...] | None = None,
    no_duplicate_rows: bool = False,
    nulls: bool = True,
) -> None:
    """Raise ``DataError`` naming the file, column and fix for the first fault found."""
    if table.num_rows == 0:
        raise DataError(f"{source} is empty; it needs at least one row.")
    names = set(table.column_names)
    missing = [c.name for c in columns if c.name not in names]
    if missing:
        raise DataError(
            f"{source} is missing column(s) {missing}; it has {table.column_names}. "
            f"Add them (expected: {[c.name for c in columns]})."
        )
    extra = sorted(names - {c.name for c in columns})
    if extra and not allow_extra:
        raise DataError(
            f"{source} has unexpected column(s) {extra}; "
            f"expected exactly {[c.name for c in columns]}. Drop or rename them."
        )
    for col in columns:
        _check_column(table, col, source, nulls)
    if unique:
        _check_unique(table, unique, source)
    if no_duplicate_rows:
        _check_unique(table, tuple(c.name for c in columns), source, rows=True)


def _check_column(table: pa.Table, col: Column, source: str, nulls_checked: bool = True) -> None:
    typ = table.schema.field(col.name).type
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_null(typ) and col.nullable:
        return  # every value missing (an empty CSV column), which a nullable column allows
    if not _KIND_CHECK[col.kind](typ):
        raise DataError(
            f"{source}: column {col.name!r} has type {typ}; it must hold {_KIND_FIX[col.kind]}."
        )
    if col.kind == "timestamp" and typ.tz is None:
        raise DataError(
            f"{source}: column {col.name!r} holds timezone-naive timestamps; naive times are "
            "refused as ambiguous. Store them with a time zone (e.g. tz_localize('UTC') in "
            "pandas, or an offset such as 2025-06-01T12:00:00Z in CSV)."
        )
    nulls = table.column(col.name).null_count
    if nulls and not col.nullable and nulls_checked:
        raise DataError(
            f"{source}: column {col.name!r} has {nulls} null value(s); every row needs one."
        )


def _check_unique(table: pa.Table, keys: tuple[str, ...], source: str, rows: bool = False) -> None:
    frame = table.select(list(keys)).to_pandas()
    dup = frame.duplicated(keep=False)
    if dup.any():
        sample = frame[dup].head(3).to_dict("records")
        what = "duplicate rows" if rows else f"duplicate values of {list(keys)}"
        raise DataError(
            f"{source} has {int(dup.sum())} {what}, e.g. {sample}. "
            "Remove the duplicates and try again."
        )


def _examples(table: pa.Table, mask: pa.ChunkedArray, column: str, n: int = 3) -> list[dict]:
    rows = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()[:n]
    values = table.column(column).take(rows).to_pylist()
    out = []
    for row, value in zip(rows, values, strict=True):
        if isinstance(value, datetime):
            value = value.isoformat()
        out.append({"row": row + 1, "column": column, "value": value})
    return out


def contract_violations(
    table: pa.Table,
    contract: SourceContract,
    *,
    timestamp_field: str,
    keys: tuple[str, ...] = (),
    now: datetime | None = None,
) -> list[Violation]:
    """Every way ``table`` (already of the contract's types) breaks ``contract``.

    ``keys`` are the join keys the source's views read: never null, whatever the
    contract says.
    """
    now = now or datetime.now(UTC)
    violations: list[Violation] = []

    def add(mask: pa.ChunkedArray | pa.Array, column: str, check: str, fix: str) -> None:
        count = pc.sum(pc.fill_null(mask, False).cast(pa.int64())).as_py() or 0
        if count:
            violations.append(Violation(check, count, _examples(table, mask, column), fix))

    columns = contract.column_list(timestamp_field)
    for col in columns:
        if (not col.nullable or col.name in keys) and table.column(col.name).null_count:
            add(
                pc.is_null(table.column(col.name)),
                col.name,
                f"{col.name} is missing",
                "Every event needs one"
                + ("." if col.name in keys else f"; or declare {col.name!r} nullable."),
            )
    latest = datetime.max.replace(tzinfo=UTC)
    # a max_future past the calendar's end (year 9999) means: no limit
    limit = now + contract.max_future if contract.max_future < latest - now else latest
    ts = table.column(timestamp_field)
    add(
        pc.greater(ts, pa.scalar(limit, type=ts.type)),
        timestamp_field,
        f"{timestamp_field} in the future (after {limit.isoformat(timespec='seconds')})",
        "Log events when they happen; check the sender's clock and time zone.",
    )
    for column, (low, high) in contract.ranges.items():
        values = table.column(column)
        if pa.types.is_null(values.type):
            continue
        if low is not None:
            add(
                pc.less(values, low),
                column,
                f"{column} below {low:g}",
                f"The contract of {contract.name!r} declares {column} >= {low:g}.",
            )
        if high is not None:
            add(
                pc.greater(values, high),
                column,
                f"{column} above {high:g}",
                f"The contract of {contract.name!r} declares {column} <= {high:g}.",
            )
    for column, allowed in contract.allowed.items():
        values = table.column(column)
        if pa.types.is_null(values.type):
            continue
        add(
            pc.and_(pc.invert(pc.is_in(values, pa.array(allowed))), pc.is_valid(values)),
            column,
            f"unknown {column}",
            f"Known: {list(allowed)}; declare new ones in the contract of {contract.name!r}.",
        )
    return violations


def check_events(
    table: pa.Table,
    contract: SourceContract,
    *,
    source: str,
    timestamp_field: str,
    keys: tuple[str, ...] = (),
    now: datetime | None = None,
) -> None:
    """Refuse ``table`` with a ``RefusedEvents`` report when it breaks ``contract``."""
    violations = contract_violations(
        table, contract, timestamp_field=timestamp_field, keys=keys, now=now
    )
    if violations:
        raise RefusedEvents(source, table.num_rows, violations)
