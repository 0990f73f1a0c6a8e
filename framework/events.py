"""Collect data: the product-event contract and checks on every input table.

The event log holds one row per product event:

================== ============================ ==================================
column             type                         notes
================== ============================ ==================================
``user_id``        int64                        required
``event_timestamp`` timestamp with time zone    required; stored as UTC, microseconds
``event_type``     string                       required (page_view, purchase, ...)
``source``         string                       required (google, facebook, ...)
``amount``         float64                      null unless the event has an amount
================== ============================ ==================================

Timezone-naive timestamps are refused (a naive time is ambiguous): write them
with an offset, e.g. ``2025-06-01T12:00:00Z``. Duplicate rows are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from framework.errors import DataError

__all__ = [
    "EVENT_COLUMNS",
    "Column",
    "check_frame",
    "read_table",
]


@dataclass(frozen=True)
class Column:
    """An expected column: its kind (int, float, string, timestamp, bool) and nullability."""

    name: str
    kind: str
    nullable: bool = False


EVENT_COLUMNS = (
    Column("user_id", "int"),
    Column("event_timestamp", "timestamp"),
    Column("event_type", "string"),
    Column("source", "string"),
    Column("amount", "float", nullable=True),
)

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
) -> None:
    """Raise ``DataError`` naming the file, column and fix for the first problem found."""
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
        _check_column(table, col, source)
    if unique:
        _check_unique(table, unique, source)
    if no_duplicate_rows:
        _check_unique(table, tuple(c.name for c in columns), source, rows=True)


def _check_column(table: pa.Table, col: Column, source: str) -> None:
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
    if nulls and not col.nullable:
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
