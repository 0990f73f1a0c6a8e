"""Monitor: how well does the model really do, once the labels are known?

``realized_performance(repo, "churn")`` joins every prediction of the problem
(online ones from the prediction log, batch runs from the ``predictions`` table
of the same database) with the label the problem's own rule gives at that
entity and time (``framework.training.labels.labels_at``: events in (t, t + horizon]).
Predictions whose horizon has not passed yet (t + horizon after the last
logged event) are left out and counted as pending. Metrics per model version
and per week of the prediction time, beside the test metrics recorded at
training: precision, recall and PR-AUC for classifiers; MAE and RMSE for
regressions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from framework.common.jsonable import finite
from framework.declare.repo import FeatureRepo
from framework.errors import DataError
from framework.tasks import task_of

__all__ = ["PerformanceReport", "predictions_of", "realized_performance"]


def predictions_of(
    db: str | Path, problem: str, sources: tuple[str, ...] = ("online", "batch")
) -> pd.DataFrame:
    """Every prediction of ``problem`` in the database: online (prediction log) and batch
    (``predictions``), or those of ``sources``: source, model_version, entity_id, at,
    score, predicted."""
    import sqlalchemy as sa

    from framework.common.database import engine_url
    from framework.errors import StoreError

    engine = sa.create_engine(engine_url(db))
    parts = []
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            if "online" in sources and "prediction_log" in tables:
                rows = conn.execute(
                    sa.text(
                        "SELECT model_version, entity_id, request_ts, score, label "
                        "FROM prediction_log WHERE problem = :p AND score IS NOT NULL"
                    ),
                    {"p": problem},
                ).fetchall()
                parts.append(("online", rows))
            if "batch" in sources and "predictions" in tables:
                rows = conn.execute(
                    sa.text(
                        "SELECT model_version, entity_id, as_of, score, label "
                        "FROM predictions WHERE problem = :p"
                    ),
                    {"p": problem},
                ).fetchall()
                parts.append(("batch", rows))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"Reading predictions from {engine.url!r} failed: {exc}") from exc
    finally:
        engine.dispose()
    columns = ["model_version", "entity_id", "at", "score", "predicted"]
    frames = [
        pd.DataFrame([tuple(r) for r in rows], columns=columns).assign(source=source)
        for source, rows in parts
        if rows
    ]
    if not frames:
        return pd.DataFrame(columns=[*columns, "source"])
    out = pd.concat(frames, ignore_index=True)
    out["at"] = pd.to_datetime(out["at"], utc=True, format="mixed").astype("datetime64[us, UTC]")
    return out


def _metrics(
    task: str,
    y: np.ndarray,
    score: np.ndarray,
    predicted: np.ndarray,
    lists: np.ndarray | None = None,
    k: int = 10,
) -> dict:
    out: dict[str, Any] = {"n": len(y)}
    out.update(task_of(task).realized_metrics(y, score, predicted, lists, k))
    return out


@dataclass(frozen=True)
class PerformanceReport:
    problem: str
    metric: str
    labeled: int
    pending: int
    versions: dict[str, dict[str, Any]]  # version -> {"realized", "test", "slices"}
    min_rows: int = 1  # the declared minimum of labels (Monitoring.min_rows)

    def to_json(self) -> dict[str, Any]:
        return finite(asdict(self))

    def to_text(self) -> str:
        lines = [
            f"Realized performance of {self.problem}: {self.labeled:,} predictions with known "
            f"labels ({self.pending:,} still inside their label horizon)"
        ]
        for version, v in self.versions.items():
            realized, test = v["realized"], v["test"]
            few = realized["n"] < self.min_rows
            lines.append(
                f"  {version}: {self.metric} {_fmt(realized.get(self.metric))} realized on "
                f"{realized['n']:,} vs {_fmt(test.get(self.metric))} on the test split"
                + (
                    f"  (warning: fewer than {self.min_rows:,} labels, Monitoring.min_rows: "
                    "noise at this size)"
                    if few
                    else ""
                )
            )
            for s in v["slices"]:
                lines.append(
                    f"    week of {s['week']}: {self.metric} {_fmt(s.get(self.metric))} (n={s['n']:,})"
                )
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def realized_performance(
    repo: FeatureRepo, problem: str, *, db: str | Path | None = None
) -> PerformanceReport:
    """See the module docstring."""
    from framework.common.keys import entity_frame
    from framework.models.registry import registry_of
    from framework.training.labels import labels_at

    declared = repo.problem(problem)
    preds = predictions_of(db or repo.prediction_db, declared.name)
    if preds.empty:
        raise DataError(f"No predictions of {declared.name!r} are stored yet.")
    points = entity_frame(preds["entity_id"], repo.key_kinds(declared))
    points["event_timestamp"] = preds["at"].to_numpy()
    truth = labels_at(declared, points)
    preds = preds.assign(truth=truth["label"].to_numpy(), complete=truth["complete"].to_numpy())
    preds["list"] = declared.kind.list_ids(declared, points, preds["at"])
    done = preds[preds["complete"]]
    registry = registry_of(repo)
    versions: dict[str, dict[str, Any]] = {}
    for version, group in done.groupby("model_version", sort=True):
        if version == "none":
            continue
        known = version in registry.versions(declared.name)
        meta = registry.get(declared.name, version).meta if known else None
        truth = declared.kind.realized_labels(meta, group["truth"])
        if truth is None:
            continue  # the version's labels cannot be compared (say, its classes unknown)
        group = group.assign(truth=truth)
        y = group["truth"].to_numpy()
        score = group["score"].to_numpy(dtype=float)
        predicted = group["predicted"].fillna(0).to_numpy(dtype=int)
        slices = []
        week = group["at"].dt.tz_localize(None).dt.to_period("W-SUN").dt.start_time
        for start, part in group.groupby(week, sort=True):
            idx = part.index
            slices.append(
                {
                    "week": start.date().isoformat(),
                    **_metrics(
                        declared.task,
                        group.loc[idx, "truth"].to_numpy(),
                        group.loc[idx, "score"].to_numpy(dtype=float),
                        group.loc[idx, "predicted"].fillna(0).to_numpy(dtype=int),
                        group.loc[idx, "list"].to_numpy(),
                        declared.top_k,
                    ),
                }
            )
        # A version no longer in the registry has realized metrics only; any other
        # registry error (a changed or unreadable model.json) is raised, not hidden.
        test = meta.metrics["test"] if meta is not None else {}
        versions[version] = {
            "realized": _metrics(
                declared.task, y, score, predicted, group["list"].to_numpy(), declared.top_k
            ),
            "test": test,
            "slices": slices,
        }
    return PerformanceReport(
        problem=declared.name,
        metric=declared.metric,
        labeled=len(done),
        pending=int(len(preds) - len(done)),
        versions=versions,
        min_rows=declared.monitoring.min_rows,
    )
