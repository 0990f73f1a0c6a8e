"""The ``predictions`` table of batch scoring and forecasts: its columns (one per join
key, typed as declared), how it is created and extended, and how a run is replaced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from framework.errors import DataError

__all__ = [
    "BASE_COLUMNS",
    "BatchRun",
    "delete_run",
    "entity_rows",
    "key_columns",
    "predictions_table",
    "prepare_table",
]


@dataclass(frozen=True)
class BatchRun:
    run_id: str
    problem: str
    model_version: str
    as_of: datetime
    rows: int
    replaced: int


BASE_COLUMNS = (
    "run_id",
    "problem",
    "model_version",
    "entity_key",
    "entity_id",
    "as_of",
    "score",
    "label",
    "predicted_class",
    "created_at",
)


def key_columns(sa: Any, kinds: dict[str, str], base: tuple[str, ...]) -> list[Any]:
    """One column per join key, typed as declared (nullable: a row has its problem's)."""
    return [
        sa.Column(k, sa.BigInteger if kind == "int" else sa.String(256))
        for k, kind in kinds.items()
        if k not in base
    ]


def predictions_table(sa: Any, kinds: dict[str, str] | None = None) -> Any:
    """The ``predictions`` table, with a column per join key of ``kinds`` (nullable: a
    row has the columns of its problem's keys)."""
    return sa.Table(
        "predictions",
        sa.MetaData(),
        sa.Column("run_id", sa.String(36), nullable=False, index=True),
        sa.Column("problem", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(16), nullable=False),
        sa.Column("entity_key", sa.String(256)),
        sa.Column("entity_id", sa.String(1024), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("label", sa.Integer),
        sa.Column("predicted_class", sa.String(256)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        *key_columns(sa, kinds or {}, BASE_COLUMNS),
        sa.Index("predictions_run_key", "problem", "model_version", "as_of"),
    )


def prepare_table(sa: Any, engine: Any, table: Any, base: tuple[str, ...] = BASE_COLUMNS) -> None:
    """Create the table, or add the columns an earlier run did not need (new key columns;
    text entity ids where an earlier version stored integers). ``base``: the table's own
    columns (every other column is a join key, indexed with the problem)."""
    from framework.deploy.prediction_log import widen_entity_columns

    name = table.name
    table.metadata.create_all(engine)
    have = {c["name"]: c for c in sa.inspect(engine).get_columns(name)}
    missing = [c for c in table.columns if c.name not in have]
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        widen_entity_columns(sa, conn, engine, name, have, ("entity_id",))
        for column in missing:
            kind = column.type.compile(dialect=engine.dialect)
            conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN {quote(column.name)} {kind}"))
        for key in [c.name for c in table.columns if c.name not in base]:
            index = f"{name}_{key}"[:60]
            conn.execute(
                sa.text(f"CREATE INDEX IF NOT EXISTS {index} ON {name} (problem, {quote(key)})")
            )


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
