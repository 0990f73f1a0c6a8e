"""Labels look forward: the observation spine and the labels of a problem.

``build_observations(problem)`` returns one row per (entity, observation time t)
with the label computed from the events in (t, t + horizon]. The spine keeps
only cutoffs whose whole horizon lies inside the data (t + horizon <= the last
event), and only entities active in (t - active_within, t].

Everything runs in DuckDB on epoch microseconds (UTC), no Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pandas as pd

from framework.common.times import US_PER_DAY
from framework.declare.expressions import filter_to_sql
from framework.declare.problems import NoEvents, Problem
from framework.errors import DataError

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")

__all__ = ["build_observations", "cutoff_times", "labels_at"]


def cutoff_times(problem: Problem, first_us: int, last_us: int) -> np.ndarray:
    """Observation times (epoch us, at midnight UTC) whose label horizon is inside the data."""
    spine = problem.spine
    start = (first_us // US_PER_DAY + spine.warmup_days) * US_PER_DAY
    stop = last_us - problem.horizon_days * US_PER_DAY
    if stop < start:
        return np.empty(0, dtype=np.int64)
    return np.arange(start, stop + 1, spine.every_days * US_PER_DAY, dtype=np.int64)


def _q(path: str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def build_observations(problem: Problem, events_path: str | None = None) -> pd.DataFrame:
    """Entity rows (``entity``, ``event_timestamp``) with their forward-looking ``label``."""
    path = events_path or str(problem.events.path)
    key = problem.entity

    def weekly_spine(con: duckdb.DuckDBPyConnection) -> None:
        first, last = con.execute("SELECT min(t), max(t) FROM ev").fetchall()[0]
        if first is None:
            raise DataError(f"Problem {problem.name!r}: the event log {path} is empty.")
        cuts = cutoff_times(problem, first, last)
        if len(cuts) == 0:
            span = (last - first) / US_PER_DAY
            raise DataError(
                f"Problem {problem.name!r} has an empty spine: the events span {span:.0f} days, "
                f"but a cutoff needs {problem.spine.warmup_days} days of warm-up before it and "
                f"{problem.horizon_days} days of horizon after it. Use more data, or shorten them."
            )
        con.register("cuts", pd.DataFrame({"c": cuts}))
        active = problem.spine.active_within_days * US_PER_DAY
        con.execute(
            f"""CREATE TEMP TABLE spine AS
            SELECT u.k, cuts.c FROM (SELECT DISTINCT k FROM ev) u CROSS JOIN cuts
            ASOF JOIN ev ON ev.k = u.k AND ev.t <= cuts.c
            WHERE ev.t > cuts.c - {active}"""
        )

    frame, _ = _labelled(problem, path, weekly_spine)
    if frame.empty:
        raise DataError(
            f"Problem {problem.name!r} has an empty spine: no entity is active at any cutoff."
        )
    out = pd.DataFrame(
        {
            key: frame["k"].astype("int64"),
            "event_timestamp": pd.to_datetime(frame["c"], unit="us", utc=True).astype(
                "datetime64[us, UTC]"
            ),
            "label": frame["label"].astype("int64" if problem.task == "binary" else "float64"),
        }
    )
    return out.sort_values(["event_timestamp", key], ignore_index=True)


def labels_at(
    problem: Problem, points: pd.DataFrame, events_path: str | None = None
) -> pd.DataFrame:
    """The label of each (``entity``, ``event_timestamp``) row of ``points``, computed by the
    problem's own label rule from the events in (t, t + horizon], and whether it is
    known yet (``complete``: t + horizon is not after the last logged event)."""
    path = events_path or str(problem.events.path)
    key = problem.entity
    times = pd.to_datetime(points["event_timestamp"], utc=True)
    spine = pd.DataFrame(
        {
            "k": points[key].astype("int64").to_numpy(),
            "c": times.astype("datetime64[us, UTC]").astype("int64").to_numpy(),
        }
    )

    def given_points(con: duckdb.DuckDBPyConnection) -> int:
        con.register("points", spine)
        con.execute("CREATE TEMP TABLE spine AS SELECT DISTINCT k, c FROM points")
        return con.execute("SELECT max(t) FROM ev").fetchall()[0][0]

    frame, last = _labelled(problem, path, given_points)
    out = spine.merge(frame, on=["k", "c"], how="left")
    return pd.DataFrame(
        {
            key: out["k"].to_numpy(),
            "event_timestamp": times.astype("datetime64[us, UTC]").array,
            "label": out["label"].to_numpy(dtype="float64"),
            "complete": (out["c"] + problem.horizon_days * US_PER_DAY <= (last or 0)).to_numpy(),
        },
        index=points.index,
    )


def _labelled(
    problem: Problem, path: str, make_spine: Callable[[duckdb.DuckDBPyConnection], T]
) -> tuple[pd.DataFrame, T]:
    """Run the problem's label rule in DuckDB: load the events as ``ev``, let
    ``make_spine(con)`` create the table ``spine`` (k, c), and return the labelled
    rows with whatever ``make_spine`` returned."""
    import duckdb

    con = duckdb.connect()
    try:
        _load_events(con, path, problem.entity)
        made = make_spine(con)
        return con.execute(_label_sql(problem)).df(), made
    except duckdb.Error as exc:
        raise DataError(
            f"Building the labels of {problem.name!r} from {path} failed: {exc}"
        ) from exc
    finally:
        con.close()


def _load_events(con: duckdb.DuckDBPyConnection, path: str, key: str) -> None:
    """The event log as table ``ev`` (k: entity, t: epoch microseconds, every column)."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f'CREATE TEMP TABLE ev AS SELECT CAST("{key}" AS BIGINT) AS k, '
        f"epoch_us(CAST(event_timestamp AS TIMESTAMPTZ)) AS t, * FROM read_parquet({_q(path)})"
    )


def _label_sql(problem: Problem) -> str:
    horizon = problem.horizon_days * US_PER_DAY
    label = problem.label
    cond = filter_to_sql(label.where) if label.where else "TRUE"
    if isinstance(label, NoEvents):
        return f"""
            SELECT s.k, s.c, CASE WHEN nxt.t IS NULL OR nxt.t > s.c + {horizon} THEN 1 ELSE 0 END AS label
            FROM spine s ASOF LEFT JOIN (SELECT k, t FROM ev WHERE {cond}) nxt
              ON nxt.k = s.k AND nxt.t > s.c"""
    column = '"' + label.column.replace('"', '""') + '"'
    return f"""
        SELECT s.k, s.c, COALESCE(SUM(CASE WHEN {cond} THEN COALESCE(CAST(ev.{column} AS DOUBLE), 0) ELSE 0 END), 0) AS label
        FROM spine s LEFT JOIN ev ON ev.k = s.k AND ev.t > s.c AND ev.t <= s.c + {horizon}
        GROUP BY s.k, s.c"""
