"""Batch prediction: score entities with point-in-time features, write them to a database.

``predict_batch(repo, "churn", as_of=T)`` scores the population of the
problem's spine rule at T (for periodic cutoffs: the entities active within its
lookback; otherwise every entity its source holds) or the entities given, with
the production model, on the features as of T (the same point-in-time retrieval
as training), and writes the rows to the table ``predictions`` (run_id,
problem, model_version, entity_key, entity_id, as_of, score, label, created_at,
and one column per join key) in SQLite (default: ``<repo>/data/predictions.db``)
or PostgreSQL. The key columns are typed as declared (integer or text) and
added the first time a problem with a new key writes, so a product developer
asks ``SELECT score FROM predictions WHERE problem = 'dispute' AND card_id =
'c_17'`` (a composite key: one condition per key column). ``entity_id`` holds the
entity text of ``framework.common.keys``; a multiclass run stores the
probability of the most likely class as ``score`` and its index in the model's
classes as ``label`` (and the class itself in ``predicted_class``).

Before anything is written, the features are checked with the model's own
validation suite (its training suite without the label expectations: types,
non-null and non-negative windowed counts, the window order, declared
categories); a failing input is refused with the suite's report.

A run is one transaction: it first deletes any earlier run of the same
problem, model version and as-of, then inserts its rows. A killed run
leaves nothing visible, and a rerun replaces the run instead of duplicating it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from framework.common.database import (
    BASE_COLUMNS,
    key_columns,
    predictions_table,
    prepare_table,
)
from framework.common.times import to_utc
from framework.declare.repo import FeatureRepo
from framework.deploy.batch_runs import BatchRun, delete_run, entity_rows
from framework.deploy.bulk import BulkInsert
from framework.errors import ConfigError, DataError, StoreError
from framework.models import scoring
from framework.tasks import task_of

__all__ = ["BatchRun", "delete_run", "key_columns", "predict_batch"]


def predict_batch(
    repo: FeatureRepo,
    problem: str,
    as_of: datetime | str,
    *,
    entities: Any = None,
    db: str | Path | None = None,
    output: str | Path | None = None,
) -> BatchRun:
    """Score entities as of ``as_of`` with the production model and write one run.

    ``entities``: a frame (or list of dicts) with the problem's key columns, or for a
    single key a list of values; default: the spine rule's population at ``as_of``.
    On the Spark profile, the population is scored on Spark
    (:mod:`framework.deploy.batch_spark`), and ``output`` writes the run to a
    partitioned parquet dataset instead of the database."""
    import sqlalchemy as sa

    from framework.common.database import engine_url
    from framework.common.keys import entity_texts
    from framework.errors import ValidationError
    from framework.features.historical import get_historical_features
    from framework.models.registry import registry_of
    from framework.training.labels import population_at
    from framework.training.validation import validate_features

    declared = repo.problem(problem)
    ts = to_utc(as_of, "as-of time")
    artifact = registry_of(repo).get(declared.name)
    if repo.spark:
        from framework.deploy.batch_spark import predict_batch_spark

        return predict_batch_spark(
            repo,
            declared,
            artifact,
            ts,
            entities=entities,
            db=str(db) if db else None,
            output=str(output) if output else None,
        )
    if output is not None:
        raise ConfigError(
            "A parquet output of batch predictions needs the Spark profile "
            "(offline_store: type: spark); on one machine they go to the database."
        )
    meta = artifact.meta
    kinds = repo.key_kinds(declared)
    keys = list(kinds)
    if entities is not None:
        population = entity_rows(entities, kinds, declared.name)
    else:
        population = entity_rows(
            population_at(declared, int(ts.value // 1_000)), kinds, declared.name
        )
    if len(population) == 0:
        raise DataError(
            f"No entities to score for {problem!r} as of {ts.isoformat()}"
            + ("" if entities is not None else " (its spine rule selects none then)")
            + "."
        )
    rows = population.assign(event_timestamp=ts)
    frame = get_historical_features(repo, rows, meta.feature_service)
    checked = validate_features(declared.name, frame, meta)
    if checked.failures:
        raise ValidationError(
            f"Batch input refused by model {declared.name} {artifact.version}'s validation "
            f"suite; nothing was written.\n{checked.report()}"
        )
    score, label = scoring.score(meta, artifact.load_model(), frame)
    run_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    n = len(population)
    columns: dict[str, Any] = {
        "run_id": run_id,
        "problem": declared.name,
        "model_version": artifact.version,
        "entity_key": ",".join(keys),
        "entity_id": entity_texts(frame, keys),
        "as_of": ts.to_pydatetime(),
        "score": score.astype(float).tolist(),
        "label": label.tolist() if label is not None else None,
        "predicted_class": task_of(meta.task).class_names(meta, label),
        "created_at": now,
        **{k: frame[k].tolist() for k in keys if k not in BASE_COLUMNS},
    }
    url = engine_url(db or repo.prediction_db)
    table = predictions_table(sa, kinds)
    engine = sa.create_engine(url)
    try:
        prepare_table(sa, engine, table)
        insert = BulkInsert(engine, table)
        params = insert.columnar(columns, n)
        with engine.begin() as conn:  # one transaction: nothing is visible until it commits
            replaced = delete_run(conn, table, declared.name, artifact.version, ts.to_pydatetime())
            insert.write(conn, params)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(
            f"Writing batch predictions to {url.split('@')[-1]} failed: {exc}"
        ) from exc
    finally:
        engine.dispose()
    return BatchRun(run_id, declared.name, artifact.version, ts.to_pydatetime(), n, replaced or 0)
