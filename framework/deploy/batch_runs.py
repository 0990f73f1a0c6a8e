"""What batch scoring and forecasts share: a run's record (``BatchRun``), the population
rows checked against the problem's keys, and the deletion of an earlier run that a rerun
replaces (the tables themselves: ``framework.common.database``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from framework.errors import DataError

__all__ = ["BatchRun", "delete_run", "entity_rows"]


@dataclass(frozen=True)
class BatchRun:
    run_id: str
    problem: str
    model_version: str
    as_of: datetime
    rows: int
    replaced: int


def delete_run(conn: Any, table: Any, problem: str, version: str, as_of: datetime) -> int:
    """Delete the run of (problem, model version, as-of) from ``table`` inside the caller's
    transaction (a rerun replaces it); return the rows deleted."""
    result = conn.execute(
        table.delete().where(
            table.c.problem == problem,
            table.c.model_version == version,
            table.c.as_of == as_of,
        )
    )
    return int(result.rowcount or 0)


def entity_rows(entities: Any, kinds: dict[str, str], problem: str) -> pd.DataFrame:
    """The given entities as typed key columns: a frame with the key columns, a list of
    dicts, or (one key) a list of values."""
    keys = list(kinds)
    if isinstance(entities, pd.DataFrame):
        frame = entities
    elif len(entities) and isinstance(entities[0], dict):
        frame = pd.DataFrame(list(entities))
    elif len(keys) == 1:
        frame = pd.DataFrame({keys[0]: list(entities)})
    else:
        raise DataError(
            f"Problem {problem!r} has the composite key {keys}: give the entities as rows "
            "with every key column."
        )
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise DataError(
            f"The entities of {problem!r} lack the key column(s) {missing}; they have "
            f"{list(frame.columns)}."
        )
    out = {}
    for key, kind in kinds.items():
        col = frame[key]
        if col.isna().any():
            raise DataError(f"The entities of {problem!r} have a null {key!r}.")
        if kind == "int":
            try:
                out[key] = col.astype("int64").to_numpy()
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"{key!r} of problem {problem!r} is an integer key; the entities hold "
                    f"{col.iloc[0]!r}."
                ) from exc
        else:
            out[key] = col.astype(str).to_numpy(dtype=object)
    return pd.DataFrame(out).drop_duplicates(ignore_index=True)
