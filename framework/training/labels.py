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
    DailyTotal,
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
from framework.features.horizons import HORIZON, training_horizons

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")

__all__ = ["build_observations", "cutoff_times", "labels_at", "population_at"]


def _keys(problem: Problem) -> tuple[str, ...]:
    if not problem.entity:
        raise DataError(
            f"Problem {problem.name!r} has no entity key; load it through FeatureRepo (which "
            "takes the feature service's join keys) or declare entity=..."
        )
    return problem.keys


def _logged_columns(problem: Problem) -> list[str]:
    """The spine columns an observation carries beside its keys and time: a ranking's
    list (``group``), and the position and propensity it was shown with when declared."""
    return [str(c) for c in (problem.group, problem.position, problem.propensity) if c]


def _k(n: int, alias: str = "") -> str:
    """The key columns k0..k{n-1} (of ``alias``), comma-separated."""
    return ", ".join(f"{alias}k{j}" for j in range(n))


def _k_eq(a: str, b: str, n: int) -> str:
    return " AND ".join(f"{a}.k{j} = {b}.k{j}" for j in range(n))


def cutoff_times(problem: Problem, first_us: int, last_us: int) -> np.ndarray:
    """Observation times (epoch us) whose label horizon is inside the data: from the first
    event + warm-up (aligned to the period, midnight UTC for a day or more) every period."""
    spine = problem.spine
    assert isinstance(spine, Cutoffs | WeeklyCutoffs)
    unit = min(spine.every_us, US_PER_DAY)
    start = (first_us // unit) * unit + spine.warmup_us
    # a forecast keeps an origin while its first target day (day(t) + 1) has ended
    stop = last_us - problem.kind.label_stop_us(problem)
    if stop < start:
        return np.empty(0, dtype=np.int64)
    return np.arange(start, stop + 1, spine.every_us, dtype=np.int64)


def _q(path: str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _source(source: Any) -> tuple[str, str]:
    return str(source.path), source.timestamp_field or "event_timestamp"


def _load(con: duckdb.DuckDBPyConnection, table: str, source: Any, keys: tuple[str, ...]) -> None:
    """A source as table ``table`` (k0..: the entity keys, t: epoch microseconds, every
    column)."""
    path, ts = _source(source)
    names = ", ".join(f"{_ident(key)} AS k{j}" for j, key in enumerate(keys))
    con.execute(
        f"CREATE TEMP TABLE {table} AS SELECT {names}, "
        f"epoch_us(CAST({_ident(ts)} AS TIMESTAMPTZ)) AS t, * FROM read_parquet({_q(path)})"
    )


def build_observations(problem: Problem, events_path: str | None = None) -> pd.DataFrame:
    """Entity rows (``entity``, ``event_timestamp``) with their ``label``.

    ``events_path`` replaces the path of the problem's ``events`` source (tests)."""
    keys = _keys(problem)
    n = len(keys)
    label = problem.label
    spine = problem.spine
    shift = 0  # features are read at c - shift

    def make_spine(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
        nonlocal shift
        last = con.execute("SELECT max(t) FROM ev").fetchall()[0][0]
        if last is None:
            raise DataError(f"Problem {problem.name!r}: the label source is empty.")
        stop = last - problem.horizon_us
        if isinstance(spine, Cutoffs | WeeklyCutoffs):  # (the only spine of a forecast)
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
                SELECT {_k(n, "u.")}, cuts.c, row_number() OVER () AS i
                FROM (SELECT DISTINCT {_k(n)} FROM act) u CROSS JOIN cuts
                ASOF JOIN act ON {_k_eq("act", "u", n)} AND act.t <= cuts.c
                WHERE act.t > cuts.c - {spine.active_us}"""
            )
        elif isinstance(spine, EventSpine | TableSpine):
            cond = (
                filter_to_sql(spine.where)
                if isinstance(spine, EventSpine) and spine.where
                else "TRUE"
            )
            logged = _logged_columns(problem)
            carried = "".join(f", {_ident(c)} AS g{j}" for j, c in enumerate(logged))
            con.execute(
                f"CREATE TEMP TABLE spine AS SELECT {_k(n)}, t AS c{carried}, "
                f"row_number() OVER () AS i FROM act WHERE ({cond}) AND t <= {stop}"
            )
            shift = 1 if isinstance(spine, EventSpine) else 0
            if logged:  # the list each observation was shown in (a ranking), its position
                names = ", ".join(f"g{j}" for j in range(len(logged)))
                return con.execute(f"SELECT i, {names} FROM spine").df()
        return None

    if isinstance(label, LabelTable):
        frame = _label_table(problem, keys)
    else:
        frame, groups = _labelled(problem, events_path, make_spine)
        if groups is not None:
            frame = frame.merge(groups, on="i", how="left", validate="one_to_one")
            if frame["g0"].isna().any():
                raise DataError(
                    f"Problem {problem.name!r}: {int(frame['g0'].isna().sum()):,} observations "
                    f"have no {problem.group!r} (the list they were shown in); every row of "
                    "the spine needs one."
                )
    if frame.empty:
        raise DataError(
            f"Problem {problem.name!r} has an empty spine: no observation with a complete label."
        )
    columns: dict[str, Any] = {}
    for j, key in enumerate(keys):
        values = frame[f"k{j}"]
        if values.isna().any():
            raise DataError(f"Problem {problem.name!r}: observations with a null {key!r}.")
        columns[key] = (
            values.astype("int64")
            if pd.api.types.is_numeric_dtype(values)
            else values.astype(object)
        ).to_numpy()
    out = pd.DataFrame(
        {
            **columns,
            "event_timestamp": pd.to_datetime(frame["c"] - shift, unit="us", utc=True).astype(
                "datetime64[us, UTC]"
            ),
            **({HORIZON: frame["h"].astype("int64").to_numpy()} if "h" in frame else {}),
            **{
                column: frame[f"g{j}"].to_numpy()
                for j, column in enumerate(_logged_columns(problem))
                if f"g{j}" in frame
            },
            "label": _typed_label(problem, frame["label"]),
        }
    )
    out = out[out["label"].notna()]  # a Mean without an event has no label
    out["label"] = problem.kind.label_column(out["label"])
    group = [problem.group] if problem.group and problem.group in out else []
    order = ["event_timestamp", *group, *keys, *([HORIZON] if HORIZON in out else [])]
    return out.sort_values(order, ignore_index=True, kind="stable")


def _typed_label(problem: Problem, label: pd.Series) -> np.ndarray:
    """The label column as the problem's task kind types it (NaN or None: no label)."""
    return problem.kind.typed_labels(problem, label)


def _label_table(problem: Problem, keys: tuple[str, ...]) -> pd.DataFrame:
    import duckdb

    label = problem.label
    assert isinstance(label, LabelTable)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        _load(con, "lt", label.source, keys)
        return con.execute(
            f"SELECT {_k(len(keys))}, t AS c, {_ident(label.column)} AS label FROM lt"
        ).df()
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
    keys = _keys(problem)
    kcols = [f"k{j}" for j in range(len(keys))]
    times = pd.to_datetime(points["event_timestamp"], utc=True)
    spine = pd.DataFrame(
        {
            **{
                f"k{j}": points[key].astype("int64").to_numpy()
                if pd.api.types.is_numeric_dtype(points[key])
                else points[key].astype(object).to_numpy()
                for j, key in enumerate(keys)
            },
            "c": times.astype("datetime64[us, UTC]").astype("int64").to_numpy(),
        }
    )
    if isinstance(problem.label, LabelTable):
        table = _label_table(problem, keys)
        out = spine.merge(table.drop_duplicates([*kcols, "c"]), on=[*kcols, "c"], how="left")
        labels = _typed_label(problem, out["label"])
        complete = ~pd.isna(labels)
    else:

        def given_points(con: duckdb.DuckDBPyConnection) -> int:
            con.register("points", spine)
            con.execute(
                f"CREATE TEMP TABLE spine AS SELECT {_k(len(keys))}, c, "
                f"row_number() OVER () AS i FROM (SELECT DISTINCT {_k(len(keys))}, c FROM points)"
            )
            return con.execute("SELECT max(t) FROM ev").fetchall()[0][0]

        frame, last = _labelled(problem, events_path, given_points)
        out = spine.merge(frame.drop(columns="i"), on=[*kcols, "c"], how="left")
        labels = pd.to_numeric(out["label"], errors="coerce").to_numpy(dtype="float64")
        complete = (out["c"] + problem.horizon_us <= (last or 0)).to_numpy()
    return pd.DataFrame(
        {
            **{key: points[key].to_numpy() for key in keys},
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

    keys = _keys(problem)
    label = problem.label
    events = problem.events
    if events_path is not None:
        events = _Path(events, events_path)
    label_source = getattr(label, "source", None) or events
    spine_source = getattr(problem.spine, "source", None) or events
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        _load(con, "ev", label_source, keys)
        if spine_source is label_source:
            con.execute("CREATE TEMP VIEW act AS SELECT * FROM ev")
        else:
            _load(con, "act", spine_source, keys)
        made = make_spine(con)
        return con.execute(_label_sql(problem, len(keys))).df(), made
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


def _label_sql(problem: Problem, n: int) -> str:
    horizon = problem.horizon_us
    label = problem.label
    where: str | None = getattr(label, "where", None)
    cond = filter_to_sql(where) if where else "TRUE"
    if isinstance(label, NoEvents | AnyEvent):
        hit, miss = (0, 1) if isinstance(label, NoEvents) else (1, 0)
        return f"""
            SELECT {_k(n, "s.")}, s.c, s.i,
                   CASE WHEN nxt.t IS NULL OR nxt.t > s.c + {horizon}
                        THEN {miss} ELSE {hit} END AS label
            FROM spine s ASOF LEFT JOIN (SELECT {_k(n)}, t FROM ev WHERE {cond}) nxt
              ON {_k_eq("nxt", "s", n)} AND nxt.t > s.c"""
    if isinstance(label, DailyTotal):
        return _daily_sql(label, cond, n)
    if isinstance(label, Count):
        value, agg, empty = "1", "SUM", "0"
    else:
        assert isinstance(label, Sum | Mean)
        value = f"CAST(ev.{_ident(label.column)} AS DOUBLE)"
        agg, empty = ("SUM", "0") if isinstance(label, Sum) else ("AVG", "NULL")
    return f"""
        SELECT {_k(n, "s.")}, s.c, s.i,
               COALESCE({agg}(CASE WHEN ev.t IS NOT NULL AND ({cond}) THEN {value} END),
                        {empty}) AS label
        FROM spine s LEFT JOIN ev
          ON {_k_eq("ev", "s", n)} AND ev.t > s.c AND ev.t <= s.c + {horizon}
        GROUP BY {_k(n, "s.")}, s.c, s.i"""


def _daily_sql(label: DailyTotal, cond: str, n: int) -> str:
    """Each spine row times the training horizons h, labelled with the total of day
    day(c) + h; target days that have not ended by the source's last day are left out."""
    value = f"SUM(CAST({_ident(label.column)} AS DOUBLE))" if label.column else "COUNT(*)"
    hs = ", ".join(str(h) for h in training_horizons(label.days))
    day = f"CAST(floor(s.c / {US_PER_DAY}) AS BIGINT)"
    return f"""
        WITH daily AS (
            SELECT {_k(n)}, CAST(floor(t / {US_PER_DAY}) AS BIGINT) AS day, {value} AS v
            FROM ev WHERE {cond} GROUP BY ALL),
        last AS (SELECT CAST(floor(max(t) / {US_PER_DAY}) AS BIGINT) AS day FROM ev),
        hs AS (SELECT unnest([{hs}]) AS h)
        SELECT {_k(n, "s.")}, s.c, s.i, hs.h, COALESCE(d.v, 0) AS label
        FROM spine s CROSS JOIN hs CROSS JOIN last
        LEFT JOIN daily d ON {_k_eq("d", "s", n)} AND d.day = {day} + hs.h
        WHERE {day} + hs.h < last.day"""


def population_at(problem: Problem, as_of_us: int) -> pd.DataFrame:
    """The entities (key columns) the problem's spine rule observes at ``as_of_us``: for
    ``Cutoffs``, those with an event of the spine source in (T - active_within, T]; for
    an event or table spine (or a label table), every entity its source holds up to T."""
    import duckdb

    keys = _keys(problem)
    spine = problem.spine
    source = (
        problem.label.source
        if isinstance(problem.label, LabelTable)
        else getattr(spine, "source", None) or problem.events
    )
    low = as_of_us - spine.active_us if isinstance(spine, Cutoffs | WeeklyCutoffs) else -(2**62)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        _load(con, "act", source, keys)
        frame = con.execute(
            f"SELECT DISTINCT {_k(len(keys))} FROM act WHERE t > {low} AND t <= {as_of_us} "
            f"ORDER BY {_k(len(keys))}"
        ).df()
    except duckdb.Error as exc:
        raise DataError(f"Reading the population of {problem.name!r} failed: {exc}") from exc
    finally:
        con.close()
    frame.columns = list(keys)
    return frame.dropna().reset_index(drop=True)
