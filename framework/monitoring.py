"""Monitor a deployed model: the data it was asked about, against its training reference.

``monitor(repo, "churn")`` takes the current rows (by default every online
prediction of the production version in the prediction log between ``since``
and ``until``: the feature values served and the scores; or a parquet/CSV file
of feature rows), the version's reference sample, and the thresholds declared
with the problem (``Monitoring``), and returns a ``framework.drift.DriftReport``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from framework.drift import DriftReport, drift
from framework.errors import DataError
from framework.repo import FeatureRepo

__all__ = ["apply_policy", "current_from_log", "logged_predictions", "monitor"]


def logged_predictions(
    db: str | Path, problem: str, version: str, since=None, until=None
) -> pd.DataFrame:
    """Logged predictions of ``problem`` ``version`` with request time in [since, until):
    entity_id, request_ts, features (JSON text) and score, in logging order."""
    import sqlalchemy as sa

    from framework.errors import StoreError
    from framework.prediction_log import engine_url

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
    db: str | Path, problem: str, version: str, since=None, until=None
) -> pd.DataFrame:
    """The served feature values and scores of ``problem`` ``version`` in [since, until)."""
    log = logged_predictions(db, problem, version, since, until)
    frame = pd.DataFrame([json.loads(v) for v in log["features"]])
    frame["score"] = log["score"].to_numpy()
    return frame


def _read_current(path: Path, features: list[str]) -> pd.DataFrame:
    from framework.events import read_table

    table = read_table(path, "Current data")
    missing = [f for f in features if f not in table.column_names]
    if missing:
        raise DataError(
            f"{path} lacks feature(s) {missing}; a --current file needs every feature of the "
            f"model ({len(features)} columns, e.g. from `lifecycle features historical`)."
        )
    return table.to_pandas()


def monitor(
    repo: FeatureRepo,
    problem: str,
    *,
    version: str | None = None,
    since=None,
    until=None,
    current: str | Path | None = None,
    db: str | Path | None = None,
) -> DriftReport:
    """Drift of ``problem``'s model (default: the production version); see the module docstring."""
    from framework.modeling import registry_of

    declared = repo.problem(problem)
    artifact = registry_of(repo).get(declared.name, version)
    reference = artifact.load_reference()
    features = artifact.meta["features"]
    if current is not None:
        frame = _read_current(Path(current), features)
        if "score" not in frame:
            from framework import scoring

            frame["score"] = scoring.score(artifact.meta, artifact.load_model(), frame)[0]
    else:
        frame = current_from_log(
            db or repo.data_dir / "predictions.db", declared.name, artifact.version, since, until
        )
        if frame.empty:
            window = f" between {since or 'the start'} and {until or 'now'}"
            raise DataError(
                f"No logged predictions of {declared.name} {artifact.version}{window}: nothing "
                "to compare. Serve traffic first, widen --since/--until, or pass --current FILE."
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
    )
    realized = None
    if policy.performance_drop is not None or policy.new_labels is not None:
        from framework.performance import realized_performance

        try:
            performance = realized_performance(
                repo, declared.name, db=db or repo.data_dir / "predictions.db"
            )
            realized = performance.versions.get(artifact.version)
        except DataError:
            realized = None  # no predictions with known labels yet
    return apply_policy(report, realized, policy, declared.metric, declared.higher_is_better)


def apply_policy(
    report: DriftReport, realized: dict | None, policy, metric: str, higher_is_better: bool
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
    if policy.new_labels is not None and labeled >= policy.new_labels:
        reasons.append(
            f"{labeled:,} predictions have labels (policy: retrain at {policy.new_labels:,})"
        )
    if len(reasons) == len(report.reasons):
        return report
    return dataclasses.replace(report, action="retrain", reasons=reasons)
