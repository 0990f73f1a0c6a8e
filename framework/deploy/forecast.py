"""Batch forecasts: each entity's daily total for each of the next H days, to a database.

``predict_forecast(repo, "demand", as_of=T, horizon_days=365)`` takes the
population of the problem's spine rule at T (or the entities given), reads their
features as of T (the same point-in-time retrieval as training), adds for every
target day d = day(T) + 1 .. day(T) + H the horizon features of
``framework.features.horizons`` (the calendar of d, the seasonal-naive totals known
at T), scores them with the production model and writes one row per entity and
target day to the table ``forecasts``: run_id, problem, model_version, entity_key,
entity_id, as_of, target_date, horizon_days, forecast, created_at, and one typed
column per join key.

A run is one transaction that first deletes any earlier run of the same problem,
model version and as-of: a rerun replaces it, a killed run leaves nothing visible.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from framework.common.database import FORECAST_COLUMNS, engine_url, forecasts_table, prepare_table
from framework.common.times import to_utc
from framework.declare.problems import DailyTotal
from framework.declare.repo import FeatureRepo
from framework.deploy.batch_runs import BatchRun, delete_run, entity_rows
from framework.deploy.bulk import BulkInsert
from framework.errors import DataError, StoreError, ValidationError
from framework.models import scoring

__all__ = ["FORECAST_COLUMNS", "forecast_frame", "predict_forecast", "write_forecasts"]


def forecast_frame(
    repo: FeatureRepo,
    problem: str,
    as_of: datetime | str,
    *,
    horizon_days: int | None = None,
    entities: Any = None,
) -> tuple[pd.DataFrame, Any]:
    """The scored rows (keys, event_timestamp, horizon_days, target_date, features,
    forecast) of every entity and target day, and the model artifact."""
    from framework.features.historical import get_historical_features
    from framework.features.horizons import daily_series, horizon_features
    from framework.models.registry import registry_of
    from framework.training.labels import population_at
    from framework.training.validation import validate_features

    declared = repo.problem(problem)
    label = declared.label
    if not isinstance(label, DailyTotal):
        raise DataError(
            f"Problem {problem!r} is {declared.task}, not a forecast: a horizon applies only to "
            "a problem whose label is DailyTotal(...)."
        )
    days = label.days if horizon_days is None else int(horizon_days)
    if not 1 <= days <= label.days:
        raise DataError(
            f"Problem {problem!r} forecasts 1 to {label.days} days ahead (its label's "
            f"horizon); got a horizon of {days} days."
        )
    ts = to_utc(as_of, "as-of time")
    artifact = registry_of(repo).get(declared.name)
    kinds = repo.key_kinds(declared)
    keys = list(kinds)
    population = entity_rows(
        entities if entities is not None else population_at(declared, int(ts.value // 1_000)),
        kinds,
        declared.name,
    )
    if len(population) == 0:
        raise DataError(f"No entities to forecast for {problem!r} as of {ts.isoformat()}.")
    fetched = get_historical_features(
        repo, population.assign(event_timestamp=ts), artifact.meta.feature_service
    )
    horizons = np.arange(1, days + 1, dtype=np.int64)
    rows = fetched.loc[fetched.index.repeat(days)].reset_index(drop=True)
    rows["horizon_days"] = np.tile(horizons, len(fetched))
    series = daily_series(
        label.source or declared.events,
        keys,
        where=label.where,
        column=label.column,
        until_us=int(ts.value // 1_000),
    )
    rows = horizon_features(rows, series, country=label.country)
    checked = validate_features(declared.name, rows, artifact.meta)
    if checked.failures:
        raise ValidationError(
            f"Forecast input refused by model {declared.name} {artifact.version}'s validation "
            f"suite; nothing was written.\n{checked.report()}"
        )
    rows["forecast"] = scoring.score(artifact.meta, artifact.load_model(), rows)[0]
    return rows, artifact


def predict_forecast(
    repo: FeatureRepo,
    problem: str,
    as_of: datetime | str,
    *,
    horizon_days: int | None = None,
    entities: Any = None,
    db: str | Path | None = None,
) -> BatchRun:
    """Forecast every entity's next ``horizon_days`` days (default: the label's horizon)
    as of ``as_of`` with the production model, and write them as one run."""
    from framework.common.keys import entity_texts

    rows, artifact = forecast_frame(
        repo, problem, as_of, horizon_days=horizon_days, entities=entities
    )
    declared = repo.problem(problem)
    kinds = repo.key_kinds(declared)
    keys = list(kinds)
    ts = to_utc(as_of, "as-of time")
    n = len(rows)
    texts = entity_texts(rows, keys)
    columns: dict[str, Any] = {
        "run_id": str(uuid.uuid4()),
        "problem": declared.name,
        "model_version": artifact.version,
        "entity_key": ",".join(keys),
        "entity_id": texts,
        "as_of": ts.to_pydatetime(),
        "target_date": list(rows["target_date"].dt.date),
        "horizon_days": rows["horizon_days"].astype(int).tolist(),
        "forecast": rows["forecast"].astype(float).tolist(),
        "created_at": datetime.now(UTC),
        **{k: rows[k].tolist() for k in keys if k not in FORECAST_COLUMNS},
    }
    replaced = write_forecasts(engine_url(db or repo.prediction_db), kinds, columns, n)
    return BatchRun(
        columns["run_id"], declared.name, artifact.version, ts.to_pydatetime(), n, replaced
    )


def write_forecasts(url: str, kinds: dict[str, str], columns: dict[str, Any], n: int) -> int:
    """Write one run's ``n`` rows (``columns``: a list per varying column, a scalar per
    constant one) in one transaction, replacing an earlier run of the same problem, model
    version and as-of; return the number of rows replaced."""
    import sqlalchemy as sa

    table = forecasts_table(sa, kinds)
    engine = sa.create_engine(url)
    try:
        prepare_table(sa, engine, table, base=FORECAST_COLUMNS)
        insert = BulkInsert(engine, table)
        params = insert.columnar(columns, n)
        with engine.begin() as conn:  # one transaction: nothing is visible until it commits
            replaced = delete_run(
                conn, table, columns["problem"], columns["model_version"], columns["as_of"]
            )
            insert.write(conn, params)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"Writing forecasts to {url.split('@')[-1]} failed: {exc}") from exc
    finally:
        engine.dispose()
    return int(replaced or 0)
