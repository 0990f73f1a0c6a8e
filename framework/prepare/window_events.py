"""The events of a window table, read once: DuckDB evaluates the filters and sorts by
(key, time); keys other than one integer column become dense codes
(:mod:`framework.common.keys`); each aggregate's value column comes out as numpy."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from framework.common.keys import KeyMap, dense_codes
from framework.declare.expressions import filter_to_sql
from framework.declare.windows import PREFIX_FUNCTIONS, Aggregate, WindowSpec
from framework.errors import DataError

__all__ = ["Events", "parquet_sql", "read_sorted_events"]


@dataclass
class Events:
    """The sorted events of one view: codes, times and the per-aggregate columns."""

    k: np.ndarray  # int64 entity codes, sorted
    t: np.ndarray  # int64 microseconds, sorted within an entity
    cols: dict[str, np.ndarray]  # c{i} (int8 match), s{i} (float sums), m{i}, v{i}
    keymap: KeyMap  # distinct keys by code (identity for one integer key)
    values: dict[int, np.ndarray] = field(default_factory=dict)  # aggregate -> decode table


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_SQL_KIND = {"int": "BIGINT", "string": "VARCHAR"}


def parquet_sql(path: str) -> tuple[str, list[str]]:
    """DuckDB's reader of a parquet file or a directory of them (a partitioned log, hive
    partitions as columns), and the columns that order its rows as written."""
    quoted = "'" + path.replace("'", "''") + "'"
    if os.path.isdir(path):
        glob = "'" + os.path.join(path, "**", "*.parquet").replace("'", "''") + "'"
        return (
            f"read_parquet({glob}, filename = true, file_row_number = true, "
            "hive_partitioning = true, union_by_name = true)",
            ["filename", "file_row_number"],
        )
    return f"read_parquet({quoted}, file_row_number = true)", ["file_row_number"]


def _select_sql(spec: WindowSpec, path: str | None) -> str:
    """The events query; ``path=None`` reads the registered arrow table ``events`` (in
    log order by its ``file_row_number`` column)."""
    keys = [
        f"CAST({_q(k)} AS {_SQL_KIND[spec.key_kinds.get(k, 'int')]}) AS {_q('key_' + k)}"
        for k in spec.entity_keys
    ]
    cols = [*keys, f"epoch_us(CAST({_q(spec.timestamp_field)} AS TIMESTAMPTZ)) AS t"]
    for i, agg in enumerate(spec.aggregates):
        cond = filter_to_sql(agg.where) if agg.where else "TRUE"
        col = _q(agg.column or "")
        if agg.function == "count":
            if agg.where:
                cols.append(f"CAST({cond} AS TINYINT) AS c{i}")
            continue
        if agg.function == "ratio":  # summand: the numerator's filter; count: the per's
            per = filter_to_sql(agg.per or "")
            cols.append(f"CAST(COALESCE({cond}, FALSE) AS DOUBLE) AS s{i}")
            cols.append(f"CAST(COALESCE({per}, FALSE) AS TINYINT) AS c{i}")
            continue
        if agg.function in ("sum", "mean"):
            cols.append(
                f"CASE WHEN {cond} AND {col} IS NOT NULL THEN CAST({col} AS DOUBLE) ELSE 0 END AS s{i}"
            )
            if agg.function == "mean":
                cols.append(f"CAST({cond} AND {col} IS NOT NULL AS TINYINT) AS c{i}")
            continue
        kind = spec.column_kinds.get(agg.column or "")
        value = f"epoch_us(CAST({col} AS TIMESTAMPTZ))" if kind == "timestamp" else col
        cols.append(f"COALESCE({cond} AND {col} IS NOT NULL, FALSE) AS m{i}")
        cols.append(f"{value} AS v{i}")
    order = [_q("key_" + k) for k in spec.entity_keys] + ["t"]
    src, row_order = parquet_sql(path) if path is not None else ("events", ["file_row_number"])
    if any(a.function == "last" for a in spec.aggregates):
        order += row_order  # ties in time: the later row of the log is last
    return f"SELECT {', '.join(cols)} FROM {src} ORDER BY {', '.join(order)}"


def _numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.asarray(col.to_numpy(zero_copy_only=False))


def _value_column(
    spec: WindowSpec, i: int, agg: Aggregate, raw: pa.ChunkedArray, match: np.ndarray, ev: Events
) -> None:
    """v{i}: an int64 or float64 array the kernels can compare; decode tables beside it.

    Strings stay in Arrow (no Python object per event): distinct counts and string
    extremes compare dictionary codes (ranked in code-point order for min/max); ``last``
    keeps positions into the raw column.
    """
    kind = spec.column_kinds.get(agg.column or "")
    column = raw.combine_chunks()
    if agg.function == "last":
        ev.cols[f"v{i}"] = np.arange(len(column), dtype=np.int64)
        ev.values[i] = column
        return
    if agg.function == "count_distinct" or kind == "string":
        encoded = pc.dictionary_encode(column)
        codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(), dtype=np.int64)
        if agg.function != "count_distinct":  # rank the codes in code-point order
            dictionary = encoded.dictionary
            order = np.asarray(pc.array_sort_indices(dictionary).to_numpy(), dtype=np.int64)
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1)
            ev.values[i] = dictionary.take(pa.array(order))
        ev.cols[f"v{i}"] = np.where(match, codes, -1)
        return
    filled = column.fill_null(0)
    if kind == "float":
        ev.cols[f"v{i}"] = np.asarray(filled.cast(pa.float64()).to_numpy(), dtype=np.float64)
    else:
        ev.cols[f"v{i}"] = np.asarray(filled.cast(pa.int64()).to_numpy(), dtype=np.int64)


def read_sorted_events(spec: WindowSpec, path: str, events: pa.Table | None = None) -> Events:
    """The events of ``path`` (or of the arrow table ``events``, which has the raw
    columns and ``file_row_number``), filtered, typed and sorted by (key, time)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if events is not None:
            con.register("events", events)
        table = con.sql(_select_sql(spec, None if events is not None else path)).to_arrow_table()
    except duckdb.Error as exc:
        raise DataError(f"Could not read events for {spec.name!r} from {path}: {exc}") from exc
    finally:
        con.close()
    key_cols = [table.column("key_" + k).combine_chunks() for k in spec.entity_keys]
    for name, col in zip(spec.entity_keys, key_cols, strict=True):
        if col.null_count:
            raise DataError(
                f"Events of {spec.name!r} ({path}) have null values in join key {name!r}; "
                "every event needs its entity."
            )
    if spec.int_key:
        codes = _numpy(key_cols[0]).astype(np.int64)
        keymap = KeyMap((), ())
    else:
        codes, starts = dense_codes(key_cols)
        distinct = tuple(_numpy(c.take(pa.array(starts))) for c in key_cols)
        keymap = KeyMap(tuple(spec.entity_keys), distinct)
    times = table.column("t")
    if times.null_count:
        raise DataError(
            f"Events of {spec.name!r} ({path}) have null values in {spec.timestamp_field!r}."
        )
    ev = Events(k=codes, t=_numpy(times).astype(np.int64), cols={}, keymap=keymap)
    for i, agg in enumerate(spec.aggregates):
        for prefix in ("c", "s"):
            name = f"{prefix}{i}"
            if name in table.column_names:
                ev.cols[name] = _numpy(table.column(name))
        if agg.function not in PREFIX_FUNCTIONS:
            match = _numpy(table.column(f"m{i}")).astype(bool)
            ev.cols[f"m{i}"] = match
            _value_column(spec, i, agg, table.column(f"v{i}"), match, ev)
    return ev
