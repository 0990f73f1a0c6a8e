"""Batch prediction: score entities with point-in-time features, write them to a database.

``predict_batch(repo, "churn", as_of=T)`` scores every entity of the problem's
feature views (or the ones given) with the production model, on the features
as of T (the same point-in-time retrieval as training), and writes the rows to
the table ``predictions`` (run_id, problem, model_version, entity_id, as_of,
score, label, created_at) in SQLite (default: ``<repo>/data/predictions.db``)
or PostgreSQL.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from framework.common.times import to_utc
from framework.declare.repo import FeatureRepo
from framework.deploy.bulk import BulkInsert
from framework.errors import DataError, StoreError
from framework.models import scoring

__all__ = ["BatchRun", "predict_batch"]


@dataclass(frozen=True)
class BatchRun:
    run_id: str
    problem: str
    model_version: str
    as_of: datetime
    rows: int
    replaced: int


def _table(sa: Any) -> Any:
    metadata = sa.MetaData()
    return sa.Table(
        "predictions",
        metadata,
        sa.Column("run_id", sa.String(36), nullable=False, index=True),
        sa.Column("problem", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.BigInteger, nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("label", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("predictions_run_key", "problem", "model_version", "as_of"),
    )


def _all_entities(repo: FeatureRepo, service: str) -> np.ndarray:
    """Every entity key the service's stored views know."""
    from framework.declare.windows import WindowSpec
    from framework.features.pit import load_index
    from framework.features.resolve import resolve_features
    from framework.prepare.window_index import load_window_index

    keys = []
    for vf in resolve_features(repo, service):
        if vf.on_demand:
            continue
        spec = WindowSpec.from_feature_view(vf.view)
        windows = load_window_index(spec) if spec else None
        if windows is not None:
            keys.append(np.asarray(windows.keys))
            continue
        src = vf.view.batch_source
        index = load_index(
            src.path, vf.view.entity_columns[0].name, src.timestamp_field, vf.features
        )
        keys.append(np.asarray(index.keys))
    return np.unique(np.concatenate(keys)) if keys else np.empty(0, dtype=np.int64)


def predict_batch(
    repo: FeatureRepo,
    problem: str,
    as_of: datetime | str,
    *,
    entities: list[int] | None = None,
    db: str | Path | None = None,
) -> BatchRun:
    """Score entities as of ``as_of`` with the production model and write one run."""
    import sqlalchemy as sa

    from framework.deploy.prediction_log import engine_url
    from framework.errors import ValidationError
    from framework.features.historical import get_historical_features
    from framework.models.registry import registry_of
    from framework.training.validation import validate_features

    declared = repo.problem(problem)
    ts = to_utc(as_of, "as-of time")
    artifact = registry_of(repo).get(declared.name)
    meta = artifact.meta
    ids = (
        np.asarray(entities, dtype=np.int64)
        if entities is not None
        else _all_entities(repo, meta.feature_service)
    )
    if len(ids) == 0:
        raise DataError(f"No entities to score for {problem!r}.")
    rows = pd.DataFrame({declared.entity: ids, "event_timestamp": ts})
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
    columns = {
        "run_id": run_id,
        "problem": declared.name,
        "model_version": artifact.version,
        "entity_id": ids.tolist(),
        "as_of": ts.to_pydatetime(),
        "score": score.astype(float).tolist(),
        "label": label.tolist() if label is not None else None,
        "created_at": now,
    }
    url = engine_url(db or repo.prediction_db)
    table = _table(sa)
    engine = sa.create_engine(url)
    try:
        table.metadata.create_all(engine)
        insert = BulkInsert(engine, table)
        params = insert.columnar(columns, len(ids))
        with engine.begin() as conn:  # one transaction: nothing is visible until it commits
            replaced = conn.execute(
                table.delete().where(
                    table.c.problem == declared.name,
                    table.c.model_version == artifact.version,
                    table.c.as_of == ts.to_pydatetime(),
                )
            ).rowcount
            insert.write(conn, params)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(
            f"Writing batch predictions to {url.split('@')[-1]} failed: {exc}"
        ) from exc
    finally:
        engine.dispose()
    return BatchRun(
        run_id, declared.name, artifact.version, ts.to_pydatetime(), len(ids), replaced or 0
    )
