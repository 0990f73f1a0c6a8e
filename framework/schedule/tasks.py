"""What a job does at its tick: the lifecycle's own functions, each as of the tick.

``execute(repo, job, tick, db)`` runs one attempt and returns what it produced
(recorded with the run, shown at ``/ui/jobs``):

========== ===================================================== ==========================
command    runs                                                  produced
========== ===================================================== ==========================
apply      check inputs, rebuild window tables, register         tables, registered
materialize the online store loaded with values as of the tick    rows, end
predict    the batch run (or a forecast's) as of the tick        run_id, rows, model_version
monitor    drift of the predictions in (tick - window, tick]     report, action, reasons
performance realized performance of every prediction so far      report, versions
skew       train/serve skew of the logged predictions            rows, skewed
retrain    challenger against champion; promoted if better       promoted, champion, ...
function   ``f(repo, tick)``                                     its dict
========== ===================================================== ==========================

A monitor's or skew's window defaults to the job's period (the time since its
previous tick). Reports go where ``lifecycle monitor`` puts them, so they are
listed at ``/ui`` too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from framework.common.jsonable import finite
from framework.declare.repo import FeatureRepo
from framework.declare.schedules import Job
from framework.errors import DataError

__all__ = ["execute"]

_JUST_AFTER = timedelta(microseconds=1)  # a run as of the tick itself belongs to its window


def _window(job: Job, tick: datetime) -> tuple[datetime, datetime]:
    span = job.window if isinstance(job.window, timedelta) else job.period_before(tick)
    return tick - span + _JUST_AFTER, tick + _JUST_AFTER


def execute(repo: FeatureRepo, job: Job, tick: datetime, db: str) -> dict[str, Any]:
    """One attempt of ``job`` as of ``tick``; raises what the command raises."""
    command = job.command
    if callable(command):
        out = command(repo, tick)
        if out is not None and not isinstance(out, dict):
            raise DataError(
                f"Job {job.name!r}: its function returned {type(out).__name__}; return a "
                "dict of what it made (or None)."
            )
        return finite(dict(out or {}))
    problem = job.problem or ""
    if command == "apply":
        from framework.prepare.apply import apply

        result = apply(repo)
        return {
            "tables": {t.view: t.rows for t in result.tables},
            "registered": len(result.registered),
        }
    if command == "materialize":
        from framework.features.materialize import materialize

        done = materialize(repo, end=tick)
        return {"rows": sum(done.rows.values()), "end": done.end.isoformat(), "views": done.rows}
    if command == "predict":
        if repo.problem(problem).kind.route == "horizon":
            from framework.deploy.forecast import predict_forecast

            run = predict_forecast(repo, problem, tick, horizon_days=job.horizon, db=db)
        else:
            from framework.deploy.batch import predict_batch

            run = predict_batch(repo, problem, tick, db=db)
        return {
            "run_id": run.run_id,
            "rows": run.rows,
            "model_version": run.model_version,
            "as_of": run.as_of.isoformat(),
            "replaced": run.replaced,
        }
    if command == "monitor":
        from framework.monitor.drift import detect_drift
        from framework.monitor.reports import write_drift_report

        since, until = _window(job, tick)
        report = detect_drift(repo, problem, since=since, until=until, db=db)
        folder = repo.new_report_folder(report.problem, "drift", report.model_version)
        write_drift_report(report, folder, repo.problem(problem).monitoring.psi)
        return {
            "report": f"{report.problem}/{folder.name}",
            "action": report.action,
            "reasons": report.reasons,
            "rows": report.rows,
        }
    if command == "performance":
        from framework.monitor.performance import realized_performance
        from framework.monitor.reports import write_performance_report

        perf = realized_performance(repo, problem, db=db)
        folder = repo.new_report_folder(perf.problem, "performance", "all")
        write_performance_report(perf, folder)
        return {"report": f"{perf.problem}/{folder.name}", "versions": sorted(perf.versions)}
    if command == "skew":
        from framework.monitor.skew import skew

        since, until = _window(job, tick)
        found = skew(repo, problem, since=since, until=until, db=db)
        return {"rows": found.rows, "skewed": [f.name for f in found.skewed]}
    if command == "retrain":
        from framework.monitor.retrain import retrain

        decision = retrain(repo, problem)
        keys = ("promoted", "champion", "challenger", "metric", "champion_score")
        out = {k: v for k, v in decision.to_json().items() if k in keys}
        return {**out, "challenger_score": decision.challenger_score, "reason": decision.reason}
    raise DataError(f"Job {job.name!r}: unknown command {command!r}.")  # checked at declaration
