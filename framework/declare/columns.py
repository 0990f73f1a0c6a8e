"""The columns a source has (read from its parquet schema, never its rows) and the
columns a windowed view reads from it, checked against each other at apply."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.declare.contracts import kind_of
from framework.errors import FeatureRepoError

if TYPE_CHECKING:
    from framework.declare.windows import WindowSpec

__all__ = ["check_columns", "parquet_schema", "source_kinds"]


def _kind_of_arrow(typ: Any) -> str:
    """A contract's kind of an Arrow type, where dates count as timestamps and a column of
    nulls as strings."""
    import pyarrow as pa

    if pa.types.is_date(typ):
        return "timestamp"
    return kind_of(typ) or "string"


def parquet_schema(path: str | Path) -> Any:
    """The arrow schema of a parquet file, or of a directory of them (a partitioned log:
    hive partitions are columns); raises OSError or ValueError when there is none."""
    import pyarrow.parquet as pq

    if Path(path).is_dir():
        import pyarrow.dataset as ds

        return ds.dataset(str(path), format="parquet", partitioning="hive").schema
    return pq.read_schema(path)


def source_kinds(path: str | Path) -> dict[str, str]:
    """The kind of every column of a parquet file or directory ({} when not there yet)."""
    try:
        schema = parquet_schema(path)
    except (OSError, ValueError):
        return {}
    return {f.name: _kind_of_arrow(f.type) for f in schema}


def check_columns(spec: WindowSpec, kinds: dict[str, str]) -> None:
    """Refuse columns the source does not have, by name, with close matches (at apply)."""
    import difflib

    name = spec.name
    for col in sorted(spec.source_columns):
        if col not in kinds:
            close = difflib.get_close_matches(col, list(kinds), n=3)
            raise FeatureRepoError(
                f"WindowedFeatureView {name!r} reads column {col!r}, which source "
                f"{spec.source_name!r} ({spec.source_path}) does not have; close matches: "
                f"{close}. Its columns: {sorted(kinds)}."
            )
    for agg in spec.aggregates:
        kind = kinds.get(agg.column or "")
        if agg.function in ("sum", "mean") and kind not in ("int", "float", "bool"):
            raise FeatureRepoError(
                f"Aggregate {agg.name!r} of {name!r} takes the {agg.function} of "
                f"{agg.column!r}, a {kind} column; sum and mean need numbers."
            )
