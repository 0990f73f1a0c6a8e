"""Online window state: what an entity needs so a windowed view is exact at any t >= T0.

A windowed aggregate at t covers the events in (t - W, t] (every event up to t for
the lifetime window). A materialization at T0 keeps, per entity and view:

- the *recent* events, those after ``B = T0 - W_max`` (W_max: the longest finite
  window), each with what the view's aggregates read of it (filter match, summand,
  value), in log order: no finite window at any t >= T0 reaches back to B;
- a *base*, the lifetime aggregates' running values over the events up to B (count,
  sum, the sum and count of a mean, min, max, the last value and its time, the set
  of distinct values), kept only when the view has a lifetime window.

So the state is bounded by the events inside the longest finite window. Events
accepted later are appended to the state as *frames*, one per accepted batch and
entity (an append is atomic in SQLite and Redis: concurrent batches lose nothing).
A read at t merges the frames in arrival order, sorts by time (stably: ties keep
log order, as the offline table breaks them) and evaluates every feature over the
slice of each window, which is the offline value at t by definition.

Byte layout of a state: frames ``[u32 payload length][32-byte token][payload]``.
The first frame of a materialized state carries the token ``BASE_TOKEN``; an
appended frame carries the token of its inbox file, so a batch applied twice (a
re-sent batch, or one replayed by a materialization) counts once. A payload is a
tuple: (base, if any,) a format string, then per column the raw little-endian
bytes of a numeric column (times int64, filter matches int8, summands float64:
read back as memoryviews, no object per event) or a list of values (ints, floats,
strings, None). It is stored as ``[u32 header length][JSON header][raw columns]``:
the header lists the tuple's items with each bytes item as ``{"b": length}``. The
online store is a shared server: nothing read from it is unpickled or unmarshalled,
and bytes that do not decode are a ``DamagedState`` for that entity (its features
are then absent, and ``framework.features.online_read`` counts it), never a crash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.common.keys import entity_text
from framework.declare.expressions import filter_to_sql
from framework.declare.windows import WindowSpec
from framework.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BASE_TOKEN",
    "DamagedState",
    "ViewState",
    "base_time",
    "decode_frames",
    "event_frames",
    "file_token",
    "materialized_states",
    "spec_digest",
]

US = 1_000_000
BASE_TOKEN = b"0" * 32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def file_token(path: str | Path) -> bytes:
    """The 32-byte token of an inbox file (its name), shared by push and replay."""
    return hashlib.sha256(Path(path).name.encode()).hexdigest()[:32].encode()


# the byte format of a state: a state of another format is not read (as if the view
# were never materialized) until the next materialization writes this one
STATE_FORMAT = "json-1"


def spec_digest(spec: WindowSpec) -> str:
    """Ties a stored state to the declaration it was built for, and to its format."""
    return hashlib.sha256((STATE_FORMAT + spec.to_json()).encode()).hexdigest()[:16]


def base_time(spec: WindowSpec, t0_us: int) -> int:
    """B: events up to it are folded into the base (lifetime) or dropped."""
    finite = [w for w in spec.windows if w]
    return t0_us - max(finite) * US if finite else t0_us


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_SQL_KIND = {"int": "BIGINT", "string": "VARCHAR"}


def _inputs_sql(spec: WindowSpec, source: str) -> str:
    """Per event: key columns, t (us), and per aggregate i what it reads:
    m{i} (0/1 match) for a filtered count or a mean, s{i} (summand) for a sum or
    mean, v{i} (the value, null unless it counts) for min/max/last/count_distinct."""
    cols = [
        f"CAST({_q(k)} AS {_SQL_KIND[spec.key_kinds.get(k, 'int')]}) AS {_q('key_' + k)}"
        for k in spec.entity_keys
    ]
    cols.append(f"epoch_us(CAST({_q(spec.timestamp_field)} AS TIMESTAMPTZ)) AS t")
    cols.append("file_row_number AS r")
    for i, agg in enumerate(spec.aggregates):
        cond = filter_to_sql(agg.where) if agg.where else "TRUE"
        col = _q(agg.column or "")
        has = f"({cond} AND {col} IS NOT NULL)"
        if agg.function == "count":
            if agg.where:
                cols.append(f"CAST({cond} AS TINYINT) AS m{i}")
        elif agg.function == "ratio":  # summand: the numerator's filter; count: the per's
            per = filter_to_sql(agg.per or "")
            cols.append(f"CAST(COALESCE({cond}, FALSE) AS DOUBLE) AS s{i}")
            cols.append(f"CAST(COALESCE({per}, FALSE) AS TINYINT) AS m{i}")
        elif agg.function in ("sum", "mean"):
            cols.append(f"CASE WHEN {has} THEN CAST({col} AS DOUBLE) ELSE 0 END AS s{i}")
            if agg.function == "mean":
                cols.append(f"CAST(COALESCE({has}, FALSE) AS TINYINT) AS m{i}")
        else:
            kind = spec.column_kinds.get(agg.column or "")
            value = f"epoch_us(CAST({col} AS TIMESTAMPTZ))" if kind == "timestamp" else col
            cols.append(f"CASE WHEN COALESCE({has}, FALSE) THEN {value} END AS v{i}")
    return f"SELECT {', '.join(cols)} FROM {source}"


def _input_names(spec: WindowSpec) -> list[str]:
    """The per-event columns of a state, in payload order (after t)."""
    names = []
    for i, agg in enumerate(spec.aggregates):
        if agg.function == "count":
            if agg.where:
                names.append(f"m{i}")
        elif agg.function in ("sum", "mean", "ratio"):
            names.append(f"s{i}")
            if agg.function != "sum":
                names.append(f"m{i}")
        else:
            names.append(f"v{i}")
    return names


def _base_sql(spec: WindowSpec) -> list[str]:
    """The lifetime aggregates over the base events, one expression per base field."""
    out = []
    for i, agg in enumerate(spec.aggregates):
        fn = agg.function
        if fn == "count":
            out.append(f"CAST(sum(m{i}) AS BIGINT)" if agg.where else "count(*)")
        elif fn == "sum":
            out.append(f"sum(s{i})")
        elif fn in ("mean", "ratio"):
            out += [f"sum(s{i})", f"CAST(sum(m{i}) AS BIGINT)"]
        elif fn in ("min", "max"):
            out.append(f"{fn}(v{i})")
        elif fn == "last":
            out += [
                f"last(v{i} ORDER BY t, r) FILTER (WHERE v{i} IS NOT NULL)",
                f"max(t) FILTER (WHERE v{i} IS NOT NULL)",
            ]
        else:
            out.append(f"list(DISTINCT v{i}) FILTER (WHERE v{i} IS NOT NULL)")
    return out


def _parquet(paths: list[str]) -> str:
    files = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return f"read_parquet([{files}], file_row_number = true, union_by_name = true)"


def _query(sql: str, what: str, **tables: Any) -> Any:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise DataError(f"Could not read the events of {what}: {exc}") from exc
    finally:
        con.close()


def _key_texts(table: Any, spec: WindowSpec, rows: Any = None) -> list[str]:
    """The entity text of each row of ``table`` (of ``rows`` only, when given)."""
    import pyarrow as pa

    cols = []
    for k in spec.entity_keys:
        col = table.column("key_" + k)
        cols.append((col.take(pa.array(rows)) if rows is not None else col).to_pylist())
    if len(cols) == 1:
        return [str(v) for v in cols[0]]
    return [entity_text(list(row)) for row in zip(*cols, strict=True)]


def _runs(table: Any, spec: WindowSpec) -> Iterator[tuple[str, int, int]]:
    """(entity text, lo, hi) of each run of rows of one entity (rows sorted by key)."""
    from framework.common.keys import dense_codes

    n = table.num_rows
    if not n:
        return
    _, starts = dense_codes([table.column("key_" + k).combine_chunks() for k in spec.entity_keys])
    ends = [*starts[1:].tolist(), n]
    yield from zip(_key_texts(table, spec, starts), starts.tolist(), ends, strict=True)


# Per-event columns of a payload: raw little-endian arrays (times int64 'q', matches
# int8 'b', summands float64 'd') or, for values, a plain list.
_FORMATS = {"m": "b", "s": "d", "v": "L"}
_NUMPY = {"q": "<i8", "b": "i1", "d": "<f8"}


def _encoders(table: Any, names: list[str]) -> tuple[str, list[Any]]:
    """The payload format (``q`` for times, then one code per column) and the columns
    as numpy arrays (numeric) or lists (values)."""
    import numpy as np

    fmt = "q" + "".join(_FORMATS[n[0]] for n in names)
    cols: list[Any] = []
    for code, name in zip(fmt, ["t", *names], strict=True):
        col = table.column(name)
        if code == "L":
            cols.append(col.to_pylist())
        else:
            cols.append(np.ascontiguousarray(col.to_numpy(), dtype=_NUMPY[code]))
    return fmt, cols


def _payload(fmt: str, cols: list[Any], lo: int, hi: int) -> tuple:
    return (
        fmt,
        *[
            c[lo:hi] if code == "L" else c[lo:hi].tobytes()
            for code, c in zip(fmt, cols, strict=True)
        ],
    )


class DamagedState(ValueError):
    """An online-store value that is not a state this module wrote."""


def _encode(payload: tuple) -> bytes:
    blobs: list[bytes] = []
    items: list[Any] = []
    for item in payload:
        if isinstance(item, bytes):
            blobs.append(item)
            items.append({"b": len(item)})
        else:
            items.append(item)
    header = json.dumps(items, separators=(",", ":")).encode()
    return len(header).to_bytes(4, "little") + header + b"".join(blobs)


def _decode(data: memoryview) -> tuple:
    """The payload tuple of ``_encode``, checked: bad bytes raise ``DamagedState``."""
    try:
        n = int.from_bytes(data[:4], "little")
        items = json.loads(bytes(data[4 : 4 + n]))
        pos = 4 + n
        out: list[Any] = []
        for item in items:
            if isinstance(item, dict):
                size = item["b"]
                if not isinstance(size, int) or size < 0 or pos + size > len(data):
                    raise DamagedState(f"a column of {size!r} bytes overruns the value")
                out.append(data[pos : pos + size])
                pos += size
            else:
                out.append(item)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DamagedState(f"not a window state ({type(exc).__name__}: {exc})") from None
    if pos != len(data):
        raise DamagedState(f"{len(data) - pos} bytes after the last column")
    return tuple(out)


def _checked(payload: tuple, base: bool) -> tuple:
    """The payload's format and columns agree (codes known, byte lengths whole)."""
    head = payload[1:] if base else payload
    fmt = head[0] if head else None
    if not isinstance(fmt, str) or len(head) != len(fmt) + 1 or not fmt.startswith("q"):
        raise DamagedState(f"format {fmt!r} does not match its {len(head) - 1} column(s)")
    sizes = {"q": 8, "b": 1, "d": 8}
    for code, column in zip(fmt, head[1:], strict=True):
        if code == "L":
            if not isinstance(column, list):
                raise DamagedState("a value column is not a list")
        elif code not in sizes or not isinstance(column, memoryview) or len(column) % sizes[code]:
            raise DamagedState(f"column {code!r} is not whole {code!r} values")
    return payload


def _frame(token: bytes, payload: Any) -> bytes:
    data = _encode(payload)
    return len(data).to_bytes(4, "little") + token + data


def _check_keys(table: Any, spec: WindowSpec, what: str) -> None:
    for k in spec.entity_keys:
        if table.column("key_" + k).null_count:
            raise DataError(f"Events of {what} have null values in join key {k!r}.")
    if "t" in table.column_names and table.column("t").null_count:
        raise DataError(f"Events of {what} have null values in {spec.timestamp_field!r}.")


def materialized_states(
    spec: WindowSpec, path: str | Path, t0_us: int, table: pa.Table | None = None
) -> dict[str, bytes]:
    """The state of every entity of ``spec`` for a materialization at ``t0_us``: of the
    events in ``path``, or in ``table`` (the raw columns and ``file_row_number``)."""
    events = _inputs_sql(spec, "events" if table is not None else _parquet([str(path)]))
    given = {"events": table} if table is not None else {}
    b = base_time(spec, t0_us)
    keys = ", ".join(_q("key_" + k) for k in spec.entity_keys)
    names = _input_names(spec)
    recent = _query(
        f"WITH ev AS ({events}) SELECT {', '.join([keys, 't', *names])} "
        f"FROM ev WHERE t > {b} ORDER BY {keys}, t, r",
        repr(spec.name),
        **given,
    )
    _check_keys(recent, spec, repr(spec.name))
    bases: dict[str, tuple] = {}
    if 0 in spec.windows:
        fields = _base_sql(spec)
        base = _query(
            f"WITH ev AS ({events}) SELECT {keys}, {', '.join(fields)} "
            f"FROM ev WHERE t <= {b} GROUP BY ALL",
            repr(spec.name),
            **given,
        )
        _check_keys(base, spec, repr(spec.name))
        values = [
            base.column(j).to_pylist() for j in range(len(spec.entity_keys), base.num_columns)
        ]
        for key, row in zip(_key_texts(base, spec), zip(*values, strict=True), strict=True):
            bases[key] = tuple(_plain_base(row))
    fmt, cols = _encoders(recent, names)
    out: dict[str, bytes] = {}
    for key, lo, hi in _runs(recent, spec):
        out[key] = _frame(BASE_TOKEN, (bases.pop(key, None), *_payload(fmt, cols, lo, hi)))
    for key, base_row in bases.items():
        out[key] = _frame(BASE_TOKEN, (base_row, *_payload(fmt, cols, 0, 0)))
    return out


def _plain_base(row: tuple) -> Iterator[Any]:
    for v in row:
        yield sorted(v, key=repr) if isinstance(v, list) else v


def event_frames(spec: WindowSpec, events: pa.Table, token: bytes) -> dict[str, bytes]:
    """The appended frame of each entity of one accepted batch of ``spec``'s source."""
    import pyarrow as pa

    names = _input_names(spec)
    keys = ", ".join(_q("key_" + k) for k in spec.entity_keys)
    numbered = events.append_column("file_row_number", pa.array(range(events.num_rows)))
    what = f"{spec.name!r} (a batch of events)"
    table = _query(
        f"WITH ev AS ({_inputs_sql(spec, 'incoming')}) "
        f"SELECT {keys}, t{''.join(', ' + n for n in names)} FROM ev ORDER BY {keys}, t, r",
        what,
        incoming=numbered,
    )
    _check_keys(table, spec, what)
    fmt, cols = _encoders(table, names)
    return {key: _frame(token, _payload(fmt, cols, lo, hi)) for key, lo, hi in _runs(table, spec)}


@dataclass
class ViewState:
    """One entity's decoded state: base (or None), and the events sorted by time."""

    base: tuple | None
    times: Sequence[int]  # a memoryview of int64, or a list once re-sorted
    cols: list[Sequence[Any]]


def decode_frames(blob: bytes, merged: frozenset[bytes] = frozenset()) -> ViewState | None:
    """Merge a state's frames (see the module docstring); None when it has no base frame
    and no events. Frames whose token is in ``merged`` (batches the base already holds)
    and repeated tokens are skipped."""
    view = memoryview(blob)
    pos, end = 0, len(blob)
    base: tuple | None = None
    parts: list[tuple] = []
    seen: set[bytes] = set()
    ordered = True  # each frame is sorted by time: so is the whole unless one starts early
    last = None
    while pos + 36 <= end:
        n = int.from_bytes(view[pos : pos + 4], "little")
        token = bytes(view[pos + 4 : pos + 36])
        if pos + 36 + n > end:
            raise DamagedState(f"a frame of {n} bytes overruns the state's {end} bytes")
        payload = _checked(_decode(view[pos + 36 : pos + 36 + n]), token == BASE_TOKEN)
        pos += 36 + n
        if token == BASE_TOKEN:
            base = payload[0]
            payload = payload[1:]
        elif token in seen or token in merged:
            continue
        else:
            seen.add(token)
        if len(payload[1]) >= 8:  # times: int64 bytes
            first = int.from_bytes(payload[1][:8], "little", signed=True)
            if last is not None and first < last:
                ordered = False
            last = int.from_bytes(payload[1][-8:], "little", signed=True)
        parts.append(payload)
    if pos != end:
        raise DamagedState(f"{end - pos} bytes after the last frame")
    if not parts:
        return None
    fmt = parts[0][0]
    if any(part[0] != fmt for part in parts):
        raise DamagedState("frames of one state have different formats")
    columns: list[Any] = []
    for j, code in enumerate(fmt, start=1):
        if len(parts) == 1:
            column = parts[0][j]
        elif code == "L":
            column = [v for part in parts for v in part[j]]
        else:
            column = b"".join(part[j] for part in parts)
        columns.append(column if code == "L" else memoryview(column).cast(code))
    times, cols = columns[0], columns[1:]
    if not ordered:
        order = sorted(range(len(times)), key=times.__getitem__)  # stable: ties keep arrival
        times = [times[i] for i in order]
        cols = [[c[i] for i in order] for c in cols]
    return ViewState(base, times, cols)
