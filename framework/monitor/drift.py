"""Monitor a deployed model: the data it was asked about, against its training reference.

``detect_drift(repo, "churn")`` takes the current rows (by default every online
prediction of the production version in the prediction log between ``since``
and ``until``, with the feature values served and the scores, plus the batch
predictions of the version in the window with their point-in-time features;
or a parquet/CSV file of feature rows), the version's reference sample, and the
thresholds declared with the problem (``Monitoring``), and returns a
``framework.monitor.drift_stats.DriftReport``. Rows whose label horizon has passed get their
label, so the report includes target drift once labels are known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from framework.common.keys import entity_frame
from framework.declare.repo import FeatureRepo
from framework.errors import DataError
from framework.monitor.drift_stats import DriftReport, drift

if TYPE_CHECKING:
    from datetime import datetime

    from framework.declare.problems import Monitoring, Problem
    from framework.models.registry import ModelArtifact

__all__ = [
    "apply_policy",
    "calendar_features",
    "current_from_log",
    "detect_drift",
    "logged_predictions",
]


def logged_predictions(
    db: str | Path,
    problem: str,
    version: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """Logged predictions of ``problem`` ``version`` with request time in [since, until):
    entity_id, request_ts, features (JSON text) and score, in logging order."""
    import sqlalchemy as sa

    from framework.common.database import engine_url
    from framework.errors import StoreError

    engine = sa.create_engine(engine_url(db))
    query = (
        "SELECT entity_id, request_ts, features, score FROM prediction_log "
        "WHERE problem = :problem AND model_version = :version"
    )
    params: dict = {"problem": problem, "version": version}
    if since is not None:
        query += " AND request_ts >= :since"
        params["since"] = pd.Timestamp(since).to_pydatetime()
    if until is not None:
        query += " AND request_ts < :until"
        params["until"] = pd.Timestamp(until).to_pydatetime()
    query += " ORDER BY id"
    columns = ["entity_id", "request_ts", "features", "score"]
    try:
        if not sa.inspect(engine).has_table("prediction_log"):
            return pd.DataFrame(columns=columns)
        # Typed parameters: SQLAlchemy formats the times as it stored them (a bare
        # datetime would go to sqlite3's adapters, which Feast replaces).
        statement = sa.text(query).bindparams(
            *[
                sa.bindparam(k, type_=sa.DateTime(timezone=True))
                for k in ("since", "until")
                if k in params
            ]
        )
        with engine.connect() as conn:
            rows = conn.execute(statement, params).fetchall()
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"Reading the prediction log failed: {exc}") from exc
    finally:
        engine.dispose()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def current_from_log(
    db: str | Path,
    problem: str,
    version: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """The served feature values and scores of ``problem`` ``version`` in [since, until)."""
    log = logged_predictions(db, problem, version, since, until)
    frame = pd.DataFrame([json.loads(v) for v in log["features"]])
    frame["score"] = log["score"].to_numpy()
    frame["entity_id"] = log["entity_id"].astype(str).to_numpy()
    frame["at"] = pd.to_datetime(log["request_ts"], utc=True).astype("datetime64[us, UTC]")
    return frame


def current_from_batch(
    repo: FeatureRepo,
    db: str | Path,
    artifact: ModelArtifact,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50_000,
) -> pd.DataFrame:
    """Batch predictions of the version with as-of in [since, until): their point-in-time
    features (fetched again: batch runs store scores, not features) and scores; a seeded
    sample of ``limit`` rows at most."""
    from framework.features.historical import get_historical_features
    from framework.monitor.performance import predictions_of

    preds = predictions_of(db, artifact.problem, sources=("batch",))
    preds = preds[preds["model_version"] == artifact.version]
    if since is not None:
        preds = preds[preds["at"] >= pd.Timestamp(since)]
    if until is not None:
        preds = preds[preds["at"] < pd.Timestamp(until)]
    if preds.empty:
        return pd.DataFrame()
    if len(preds) > limit:
        preds = preds.sample(n=limit, random_state=0)
    rows = entity_frame(preds["entity_id"], repo.key_kinds(artifact.problem))
    rows["event_timestamp"] = preds["at"].array
    frame = get_historical_features(repo, rows, artifact.meta.feature_service)
    frame = frame[artifact.meta.features].copy()
    frame["score"] = preds["score"].to_numpy(dtype=float)
    frame["entity_id"] = preds["entity_id"].astype(str).to_numpy()
    frame["at"] = rows["event_timestamp"].array
    return frame


def _with_known_labels(
    problem: Problem, frame: pd.DataFrame, kinds: dict[str, str]
) -> pd.DataFrame:
    """``label``: each row's label by the problem's rule where its horizon has passed
    (``kinds``: the problem's key kinds, to read the entity texts back)."""
    from framework.training.labels import labels_at

    if frame.empty or "entity_id" not in frame or "at" not in frame:
        return frame
    points = entity_frame(frame["entity_id"], kinds)
    points["event_timestamp"] = frame["at"].to_numpy()
    truth = labels_at(problem, points)
    frame = frame.copy()
    frame["label"] = truth["label"].where(truth["complete"]).to_numpy()
    return frame


def _read_current(path: Path, features: list[str]) -> pd.DataFrame:
    from framework.collect.checks import read_table

    table = read_table(path, "Current data")
    missing = [f for f in features if f not in table.column_names]
    if missing:
        raise DataError(
            f"{path} lacks feature(s) {missing}; a --current file needs every feature of the "
            f"model ({len(features)} columns, e.g. from `lifecycle features historical`)."
        )
    return table.to_pandas()


def calendar_features(repo: FeatureRepo, problem: Problem) -> frozenset[str]:
    """The problem's features that come from date expansions (the calendar of t)."""
    from framework.declare.dates import DATES_TAG
    from framework.features.resolve import resolve_features

    return frozenset(
        name
        for vf in resolve_features(repo, problem.feature_service)
        if DATES_TAG in (vf.view.tags or {})
        for name in vf.features
    )


def detect_drift(
    repo: FeatureRepo,
    problem: str,
    *,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    current: str | Path | None = None,
    db: str | Path | None = None,
) -> DriftReport:
    """Drift of ``problem``'s model (default: the production version); see the module docstring."""
    from framework.models.registry import registry_of

    declared = repo.problem(problem)
    artifact = registry_of(repo).get(declared.name, version)
    reference = artifact.load_reference()
    features = artifact.meta.features
    if current is not None:
        frame = _read_current(Path(current), features)
        if "score" not in frame:
            from framework.models import scoring

            frame["score"] = scoring.score(artifact.meta, artifact.load_model(), frame)[0]
    else:
        store = db or repo.prediction_db
        parts = [
            current_from_log(store, declared.name, artifact.version, since, until),
            current_from_batch(repo, store, artifact, since, until),
        ]
        parts = [p for p in parts if not p.empty]
        if not parts:
            window = f" between {since or 'the start'} and {until or 'now'}"
            raise DataError(
                f"No logged or batch predictions of {declared.name} {artifact.version}{window}: "
                "nothing to compare. Serve traffic first, widen --from/--to (a repo of past "
                "data: --to data, or a job's --at data), or pass --current FILE."
            )
        frame = _with_known_labels(
            declared, pd.concat(parts, ignore_index=True), repo.key_kinds(declared)
        )
    policy = declared.monitoring
    report = drift(
        reference,
        frame,
        features,
        problem=declared.name,
        model_version=artifact.version,
        psi_max=policy.psi,
        alpha=policy.p_value,
        retrain_when=policy.retrain_when_drifted,
        uncounted=frozenset() if policy.count_calendar else calendar_features(repo, declared),
        min_rows=policy.min_rows,
    )
    realized = None
    if policy.performance_drop is not None or policy.new_labels is not None:
        from framework.monitor.performance import realized_performance

        try:
            performance = realized_performance(repo, declared.name, db=db or repo.prediction_db)
            realized = performance.versions.get(artifact.version)
        except DataError:
            realized = None  # no predictions with known labels yet
    return apply_policy(report, realized, policy, declared.metric, declared.higher_is_better)


def apply_policy(
    report: DriftReport,
    realized: dict[str, Any] | None,
    policy: Monitoring,
    metric: str,
    higher_is_better: bool,
) -> DriftReport:
    """Raise the action to ``retrain`` when the realized metric dropped below the test
    metric by more than ``policy.performance_drop``, or ``policy.new_labels`` labels arrived."""
    import dataclasses

    if not realized:
        return report
    reasons = list(report.reasons)
    value, test = realized["realized"].get(metric), realized["test"].get(metric)
    if policy.performance_drop is not None and value is not None and test is not None:
        drop = (test - value) if higher_is_better else (value - test)
        if drop > policy.performance_drop:
            reasons.append(
                f"realized {metric} {value:.4f} vs {test:.4f} on test: worse by {drop:.4f} "
                f"(more than {policy.performance_drop:g})"
            )
    labeled = realized["realized"].get("n", 0)
    if labeled < policy.min_rows and len(reasons) > len(report.reasons):
        reasons = [
            *report.reasons,
            f"realized {metric} on only {labeled:,} labeled predictions, fewer than the "
            f"declared minimum of {policy.min_rows:,} (Monitoring.min_rows): not acted on",
        ]
        return dataclasses.replace(report, reasons=reasons)
    if policy.new_labels is not None and labeled >= policy.new_labels:
        reasons.append(
            f"{labeled:,} predictions have labels (policy: retrain at {policy.new_labels:,})"
        )
    if len(reasons) == len(report.reasons):
        return report
    return dataclasses.replace(report, action="retrain", reasons=reasons)
