"""The project's database: every table the lifecycle writes, in one place.

SQLite by default (``REPO/data/predictions.db``), PostgreSQL in production; any
SQLAlchemy URL through ``engine_url``. The tables:

- ``predictions``: batch scores, one run at a time (``framework.deploy.batch``);
- ``forecasts``: one row per entity and target day (``framework.deploy.forecast``);
- ``prediction_log`` and ``prediction_log_batches``: every online prediction and the
  batches written (``framework.deploy.prediction_log``);
- ``job_runs``: one row per scheduled job and tick (``framework.schedule.job_runs``).

Tables with a column per join key (``predictions``, ``forecasts``) gain the columns of a
problem with new keys when it first writes (``prepare_table``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from framework.errors import ConfigError

__all__ = [
    "BASE_COLUMNS",
    "FORECAST_COLUMNS",
    "engine_url",
    "forecasts_table",
    "job_runs_table",
    "key_columns",
    "prediction_log_batches_table",
    "prediction_log_table",
    "predictions_table",
    "prepare_table",
    "widen_entity_columns",
]

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

FORECAST_COLUMNS = (
    "run_id",
    "problem",
    "model_version",
    "entity_key",
    "entity_id",
    "as_of",
    "target_date",
    "horizon_days",
    "forecast",
    "created_at",
)


def engine_url(url: str | Path) -> str:
    """A SQLAlchemy URL: ``postgresql://`` uses psycopg 3; a bare path means SQLite."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if text.startswith(("sqlite://", "postgresql+psycopg://")):
        return text
    if "://" in text:
        raise ConfigError(
            f"Unsupported database URL {text!r}: use sqlite:///PATH or postgresql://..."
        )
    return f"sqlite:///{Path(text).resolve()}"


def key_columns(sa: Any, kinds: dict[str, str], base: tuple[str, ...]) -> list[Any]:
    """One column per join key, typed as declared (nullable: a row has its problem's)."""
    return [
        sa.Column(k, sa.BigInteger if kind == "int" else sa.String(256))
        for k, kind in kinds.items()
        if k not in base
    ]


def _run_columns(sa: Any) -> list[Any]:
    """What every row of a batch run carries first: the run, the problem, the model
    version, the entity (its key names and its text) and the as-of time."""
    return [
        sa.Column("run_id", sa.String(36), nullable=False, index=True),
        sa.Column("problem", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(16), nullable=False),
        sa.Column("entity_key", sa.String(256)),
        sa.Column("entity_id", sa.String(1024), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    ]


def predictions_table(sa: Any, kinds: dict[str, str] | None = None) -> Any:
    """The ``predictions`` table, with a column per join key of ``kinds`` (nullable: a
    row has the columns of its problem's keys)."""
    return sa.Table(
        "predictions",
        sa.MetaData(),
        *_run_columns(sa),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("label", sa.Integer),
        sa.Column("predicted_class", sa.String(256)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        *key_columns(sa, kinds or {}, BASE_COLUMNS),
        sa.Index("predictions_run_key", "problem", "model_version", "as_of"),
    )


def forecasts_table(sa: Any, kinds: dict[str, str]) -> Any:
    """The ``forecasts`` table: one row per entity and target day of a forecast run."""
    return sa.Table(
        "forecasts",
        sa.MetaData(),
        *_run_columns(sa),
        sa.Column("target_date", sa.Date, nullable=False),
        sa.Column("horizon_days", sa.Integer, nullable=False),
        sa.Column("forecast", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        *key_columns(sa, kinds, FORECAST_COLUMNS),
        sa.Index("forecasts_run_key", "problem", "model_version", "as_of"),
    )


def prediction_log_table(sa: Any) -> Any:
    """Every online prediction: its problem, model version, entity, request time, features,
    score and label, and the experiment arm that answered."""
    metadata = sa.MetaData()
    return sa.Table(
        "prediction_log",
        metadata,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("problem", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(16), nullable=False),
        sa.Column("entity_key", sa.String(256), nullable=False),  # the key names, comma-joined
        sa.Column("entity_id", sa.String(1024), nullable=False),  # framework.common.keys
        sa.Column("request_ts", sa.DateTime(timezone=True)),
        sa.Column("features", sa.Text),
        sa.Column("feature_status", sa.String(16)),
        sa.Column("score", sa.Float),  # null in an experiment arm without a model
        sa.Column("label", sa.Integer),
        sa.Column("experiment", sa.String(64)),
        sa.Column("arm", sa.String(32)),
        sa.Index("prediction_log_experiment", "experiment"),
    )


def prediction_log_batches_table(metadata: Any, sa: Any) -> Any:
    """The ids of the batches written: a replayed batch already there is not written again."""
    return sa.Table(
        "prediction_log_batches",
        metadata,
        sa.Column("batch_id", sa.String(32), primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    )


def job_runs_table(sa: Any) -> Any:
    """One row per job and tick (the unique pair is the lock; see framework.schedule)."""
    metadata = sa.MetaData()
    return sa.Table(
        "job_runs",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("ended_at", sa.DateTime()),
        sa.Column("error", sa.Text()),
        sa.Column("produced", sa.Text()),
        sa.Column("owner", sa.String(200)),
        sa.Column("heartbeat_at", sa.DateTime()),
        sa.UniqueConstraint("job", "scheduled_for", name="job_runs_one_per_tick"),
        sa.Index("job_runs_by_status", "status"),
    )


def prepare_table(sa: Any, engine: Any, table: Any, base: tuple[str, ...] = BASE_COLUMNS) -> None:
    """Create the table, or add the columns an earlier run did not need (new key columns;
    text entity ids where an earlier version stored integers). ``base``: the table's own
    columns (every other column is a join key, indexed with the problem)."""
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


def widen_entity_columns(
    sa: Any, conn: Any, engine: Any, table: str, have: dict[str, Any], names: tuple[str, ...]
) -> None:
    """An earlier version stored entity ids as BIGINT: make them text (PostgreSQL; SQLite's
    columns take text as it is)."""
    if engine.dialect.name != "postgresql":
        return
    for name in names:
        column = have.get(name)
        if column is None:
            continue
        if isinstance(column["type"], sa.Integer) or (
            isinstance(column["type"], sa.String) and (column["type"].length or 0) < 256
        ):
            size = 1024 if name == "entity_id" else 256
            conn.execute(sa.text(f'ALTER TABLE {table} ALTER COLUMN "{name}" TYPE VARCHAR({size})'))
