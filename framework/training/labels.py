"""Labels look forward: the observation spine and the labels of a problem.

``build_observations(problem)`` returns one row per (entity, observation time t)
with its label:

- event labels (``NoEvents``, ``AnyEvent``, ``Count``, ``Sum``, ``Mean``) count the
  label source's events matching ``where`` in (t, t + horizon], and only
  observations whose whole horizon lies inside the data (t + horizon <= the
  source's last event) are kept;
- a ``LabelTable``'s rows are the observations, labels taken as given.

Spines: ``Cutoffs`` (every period, the entities active in (t - active_within, t],
after a warm-up), ``EventSpine`` (each matching event; features as of 1 µs
before it, the label from the event's time on) and ``TableSpine`` (the rows of a
table). Everything runs in DuckDB on epoch microseconds (UTC), no Python loop
over rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from framework.common.times import US_PER_DAY
from framework.declare.expressions import filter_to_sql
from framework.declare.problems import (
    AnyEvent,
    Count,
    Cutoffs,
    EventSpine,
    LabelTable,
    Mean,
    NoEvents,
    Problem,
    Sum,
    TableSpine,
    WeeklyCutoffs,
)
from framework.errors import DataError

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")

__all__ = ["build_observations", "cutoff_times", "labels_at"]


def _key(problem: Problem) -> str:
    if not problem.entity:
        raise DataError(
            f"Problem {problem.name!r} has no entity key; load it through FeatureRepo (which "
            "takes the feature service's join key) or declare entity=..."
        )
    return problem.entity


def cutoff_times(problem: Problem, first_us: int, last_us: int) -> np.ndarray:
    """Observation times (epoch us) whose label horizon is inside the data: from the first
    event + warm-up (aligned to the period, midnight UTC for a day or more) every period."""
    spine = problem.spine
    assert isinstance(spine, Cutoffs | WeeklyCutoffs)
    unit = min(spine.every_us, US_PER_DAY)
    start = (first_us // unit) * unit + spine.warmup_us
    stop = last_us - problem.horizon_us
    if stop < start:
        return np.empty(0, dtype=np.int64)
    return np.arange(start, stop + 1, spine.every_us, dtype=np.int64)


def _q(path: str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _source(source: Any) -> tuple[str, str]:
    return str(source.path), source.timestamp_field or "event_timestamp"


def _load(con: duckdb.DuckDBPyConnection, table: str, source: Any, key: str) -> None:
    """A source as table ``table`` (k: entity, t: epoch microseconds, every column)."""
    path, ts = _source(source)
    con.execute(
        f"CREATE TEMP TABLE {table} AS SELECT {_ident(key)} AS k, "
        f"epoch_us(CAST({_ident(ts)} AS TIMESTAMPTZ)) AS t, * FROM read_parquet({_q(path)})"
    )


def build_observations(problem: Problem, events_path: str | None = None) -> pd.DataFrame:
    """Entity rows (``entity``, ``event_timestamp``) with their ``label``.

    ``events_path`` replaces the path of the problem's ``events`` source (tests)."""
    key = _key(problem)
    label = problem.label
    spine = problem.spine
    shift = 0  # features are read at c - shift

    def make_spine(con: duckdb.DuckDBPyConnection) -> None:
        nonlocal shift
        last = con.execute("SELECT max(t) FROM ev").fetchall()[0][0]
        if last is None:
            raise DataError(f"Problem {problem.name!r}: the label source is empty.")
        stop = last - problem.horizon_us
        if isinstance(spine, Cutoffs | WeeklyCutoffs):
            first = con.execute("SELECT min(t) FROM act").fetchall()[0][0]
            cuts = cutoff_times(problem, first, last)
            if len(cuts) == 0:
                span = (last - first) / US_PER_DAY
                raise DataError(
                    f"Problem {problem.name!r} has an empty spine: the events span {span:g} "
                    f"days, but a cutoff needs {spine.warmup_us / US_PER_DAY:g} days of warm-up "
                    f"before it and {problem.horizon_days:g} days of horizon after it. Use more "
                    "data, or shorten them."
                )
            con.register("cuts", pd.DataFrame({"c": cuts}))
            con.execute(
                f"""CREATE TEMP TABLE spine AS
                SELECT u.k, cuts.c, row_number() OVER () AS i
                FROM (SELECT DISTINCT k FROM act) u CROSS JOIN cuts
                ASOF JOIN act ON act.k = u.k AND act.t <= cuts.c
                WHERE act.t > cuts.c - {spine.active_us}"""
            )
        elif isinstance(spine, EventSpine):
            cond = filter_to_sql(spine.where) if spine.where else "TRUE"
            con.execute(
                "CREATE TEMP TABLE spine AS SELECT k, t AS c, row_number() OVER () AS i "
                f"FROM act WHERE ({cond}) AND t <= {stop}"
            )
            shift = 1
        elif isinstance(spine, TableSpine):
            con.execute(
                "CREATE TEMP TABLE spine AS SELECT k, t AS c, row_number() OVER () AS i "
                f"FROM act WHERE t <= {stop}"
            )

    if isinstance(label, LabelTable):
        frame = _label_table(problem, key)
    else:
        frame, _ = _labelled(problem, events_path, make_spine)
    if frame.empty:
        raise DataError(
            f"Problem {problem.name!r} has an empty spine: no observation with a complete label."
        )
    if frame["k"].isna().any():
        raise DataError(f"Problem {problem.name!r}: observations with a null {key!r}.")
    keys = frame["k"]
    keys = keys.astype("int64") if pd.api.types.is_numeric_dtype(keys) else keys.astype(object)
    out = pd.DataFrame(
        {
            key: keys.to_numpy(),
            "event_timestamp": pd.to_datetime(frame["c"] - shift, unit="us", utc=True).astype(
                "datetime64[us, UTC]"
            ),
            "label": _typed_label(problem, frame["label"]),
        }
    )
    out = out[out["label"].notna()]  # a Mean without an event has no label
    if problem.task == "binary":
        out["label"] = out["label"].astype("int64")
    return out.sort_values(["event_timestamp", key], ignore_index=True, kind="stable")


def _typed_label(problem: Problem, label: pd.Series) -> np.ndarray:
    if problem.task == "binary":
        values = pd.to_numeric(label, errors="coerce")
        bad = values.notna() & ~values.isin([0, 1])
        if bad.any():
            raise DataError(
                f"Problem {problem.name!r} is binary, but its labels hold "
                f"{sorted(values[bad].unique().tolist())[:5]}; binary labels are 0 and 1."
            )
        return values.astype("Int64").to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(label, errors="coerce").astype("float64").to_numpy()


def _label_table(problem: Problem, key: str) -> pd.DataFrame:
    import duckdb

    label = problem.label
    assert isinstance(label, LabelTable)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        _load(con, "lt", label.source, key)
        return con.execute(f"SELECT k, t AS c, {_ident(label.column)} AS label FROM lt").df()
    except duckdb.Error as exc:
        raise DataError(
            f"Reading the label table of {problem.name!r} ({label.source.path}) failed: {exc}"
        ) from exc
    finally:
        con.close()


def labels_at(
    problem: Problem, points: pd.DataFrame, events_path: str | None = None
) -> pd.DataFrame:
    """The label of each (``entity``, ``event_timestamp``) row of ``points``, by the problem's
    own rule, and whether it is known yet (``complete``: t + horizon is not after the last
    logged event; for a label table: the table has the row)."""
    key = _key(problem)
    times = pd.to_datetime(points["event_timestamp"], utc=True)
    keys = points[key]
    spine = pd.DataFrame(
        {
            "k": keys.astype("int64").to_numpy()
            if pd.api.types.is_numeric_dtype(keys)
            else keys.astype(object).to_numpy(),
            "c": times.astype("datetime64[us, UTC]").astype("int64").to_numpy(),
        }
    )
    if isinstance(problem.label, LabelTable):
        table = _label_table(problem, key)
        out = spine.merge(table.drop_duplicates(["k", "c"]), on=["k", "c"], how="left")
        labels = pd.to_numeric(out["label"], errors="coerce").to_numpy(dtype="float64")
        complete = ~np.isnan(labels)
    else:

        def given_points(con: duckdb.DuckDBPyConnection) -> int:
            con.register("points", spine)
            con.execute(
                "CREATE TEMP TABLE spine AS SELECT k, c, row_number() OVER () AS i "
                "FROM (SELECT DISTINCT k, c FROM points)"
            )
            return con.execute("SELECT max(t) FROM ev").fetchall()[0][0]

        frame, last = _labelled(problem, events_path, given_points)
        out = spine.merge(frame.drop(columns="i"), on=["k", "c"], how="left")
        labels = pd.to_numeric(out["label"], errors="coerce").to_numpy(dtype="float64")
        complete = (out["c"] + problem.horizon_us <= (last or 0)).to_numpy()
    return pd.DataFrame(
        {
            key: points[key].to_numpy(),
            "event_timestamp": times.astype("datetime64[us, UTC]").array,
            "label": labels,
            "complete": complete,
        },
        index=points.index,
    )


def _labelled(
    problem: Problem, events_path: str | None, make_spine: Callable[[duckdb.DuckDBPyConnection], T]
) -> tuple[pd.DataFrame, T]:
    """Run the problem's label rule in DuckDB: load the label source as ``ev`` and the
    spine's source as ``act``, let ``make_spine(con)`` create the table ``spine`` (k, c),
    and return the labelled rows with whatever ``make_spine`` returned."""
    import duckdb

    key = _key(problem)
    label = problem.label
    events = problem.events
    if events_path is not None:
        events = _Path(events, events_path)
    label_source = getattr(label, "source", None) or events
    spine_source = getattr(problem.spine, "source", None) or events
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        _load(con, "ev", label_source, key)
        if spine_source is label_source:
            con.execute("CREATE TEMP VIEW act AS SELECT * FROM ev")
        else:
            _load(con, "act", spine_source, key)
        made = make_spine(con)
        return con.execute(_label_sql(problem)).df(), made
    except duckdb.Error as exc:
        raise DataError(f"Building the labels of {problem.name!r} failed: {exc}") from exc
    finally:
        con.close()


class _Path:
    """A source with another path (and the same timestamp field)."""

    def __init__(self, source: Any, path: str) -> None:
        self.path = path
        self.timestamp_field = source.timestamp_field
        self.name = getattr(source, "name", "events")


def _label_sql(problem: Problem) -> str:
    horizon = problem.horizon_us
    label = problem.label
    where: str | None = getattr(label, "where", None)
    cond = filter_to_sql(where) if where else "TRUE"
    if isinstance(label, NoEvents | AnyEvent):
        hit, miss = (0, 1) if isinstance(label, NoEvents) else (1, 0)
        return f"""
            SELECT s.k, s.c, s.i, CASE WHEN nxt.t IS NULL OR nxt.t > s.c + {horizon}
                                  THEN {miss} ELSE {hit} END AS label
            FROM spine s ASOF LEFT JOIN (SELECT k, t FROM ev WHERE {cond}) nxt
              ON nxt.k = s.k AND nxt.t > s.c"""
    if isinstance(label, Count):
        value, agg, empty = "1", "SUM", "0"
    else:
        assert isinstance(label, Sum | Mean)
        value = f"CAST(ev.{_ident(label.column)} AS DOUBLE)"
        agg, empty = ("SUM", "0") if isinstance(label, Sum) else ("AVG", "NULL")
    return f"""
        SELECT s.k, s.c, s.i,
               COALESCE({agg}(CASE WHEN ev.t IS NOT NULL AND ({cond}) THEN {value} END),
                        {empty}) AS label
        FROM spine s LEFT JOIN ev ON ev.k = s.k AND ev.t > s.c AND ev.t <= s.c + {horizon}
        GROUP BY s.k, s.c, s.i"""
