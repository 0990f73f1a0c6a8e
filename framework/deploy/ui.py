"""The web pages of ``lifecycle serve``: an index of model cards and monitoring reports.

``GET /ui`` lists every registered model version (stage, metric, link to its
card) and every report under ``<repo>/data/reports/`` (newest first);
``GET /ui/jobs`` the declared jobs and their recent runs (``job_runs``). Names in
URLs are checked against the naming rules before any path is built, so a
request cannot reach a file outside the registry or the reports folder.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from fastapi.responses import HTMLResponse

from framework.common.html import STYLE
from framework.declare.repo import FeatureRepo
from framework.errors import NotFound

__all__ = ["card_path", "file_page", "index_page", "jobs_page", "report_path"]

_PROBLEM = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_VERSION = re.compile(r"^v[0-9]{1,9}$")
_REPORT = re.compile(r"^[0-9]{8}T[0-9]{6}([0-9]{6})?Z-[a-z]+-(v[0-9]{1,9}|all)(-[0-9]{1,3})?$")


def _check(value: str, pattern: re.Pattern, what: str) -> str:
    if not pattern.match(value):
        raise NotFound(what, f"no such {what}: {value!r}")
    return value


def card_path(repo: FeatureRepo, problem: str, version: str) -> Path:
    from framework.models.registry import registry_of

    root = registry_of(repo).root
    return (
        root
        / _check(problem, _PROBLEM, "problem")
        / _check(version, _VERSION, "version")
        / "card.html"
    )


def report_path(repo: FeatureRepo, problem: str, name: str) -> Path:
    folder = repo.reports_dir / _check(problem, _PROBLEM, "problem")
    return folder / _check(name, _REPORT, "report") / "report.html"


def file_page(path: Path) -> HTMLResponse:
    if not path.is_file():
        raise NotFound("path", "no such page")
    return HTMLResponse(path.read_text())


def _reports(repo: FeatureRepo) -> list[tuple[str, str]]:
    root = repo.reports_dir
    found = []
    if root.is_dir():
        for problem in sorted(p.name for p in root.iterdir() if _PROBLEM.match(p.name)):
            for folder in (root / problem).iterdir():
                if _REPORT.match(folder.name) and (folder / "report.html").is_file():
                    found.append((problem, folder.name))
    return sorted(found, key=lambda r: r[1], reverse=True)


def index_page(repo: FeatureRepo) -> str:
    from framework.models.registry import registry_of

    registry = registry_of(repo)
    rows = []
    for problem in registry.problems():
        for version in reversed(registry.versions(problem)):
            meta = registry.get(problem, version).meta
            metric = meta.metric
            rows.append(
                f"<tr><td style='text-align:left'>{html.escape(problem)}</td>"
                f"<td><a href='/ui/models/{problem}/{version}'>{version}</a></td>"
                f"<td>{html.escape(registry.stage_of(problem, version))}</td>"
                f"<td>{html.escape(meta.winner)}</td>"
                f"<td>{metric} {meta.metrics['test'][metric]:.4f}</td>"
                f"<td>{html.escape(meta.created_at[:19])}</td></tr>"
            )
    reports = "".join(
        f"<li><a href='/ui/reports/{p}/{n}'>{html.escape(p)}: {html.escape(n)}</a></li>"
        for p, n in _reports(repo)
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>lifecycle</title>
{STYLE}</head><body><h1>Models</h1>
<table><tr><th>problem</th><th>version</th><th>stage</th><th>winner</th><th>test</th>
<th>created</th></tr>{"".join(rows)}</table>
<p><a href='/ui/jobs'>Scheduled jobs and their runs</a></p>
<h1>Monitoring reports</h1><ul>{reports or "<li>none yet: run <code>lifecycle monitor PROBLEM</code></li>"}</ul>
</body></html>"""


_STATUS_COLOUR = {
    "succeeded": "#1a7f37",
    "running": "#0969da",
    "failed": "#cf222e",
    "crashed": "#cf222e",
    "abandoned": "#9a6700",
    "skipped": "#9a6700",
    "missed": "#6e7781",
}


def _when(ts: object) -> str:
    from datetime import datetime

    return ts.strftime("%Y-%m-%d %H:%M") if isinstance(ts, datetime) else "-"


def _made(produced: dict) -> str:
    parts = []
    report = produced.get("report")
    if isinstance(report, str) and "/" in report:
        problem, name = report.split("/", 1)
        if _PROBLEM.match(problem) and _REPORT.match(name):
            parts.append(f"<a href='/ui/reports/{problem}/{name}'>report</a>")
    for key, value in produced.items():
        if key == "report" or isinstance(value, dict | list):
            continue
        text = str(value)
        if key == "run_id":
            text = text[:8]
        parts.append(f"{html.escape(key)} {html.escape(text)}")
    return ", ".join(parts)


def jobs_page(repo: FeatureRepo, url: str, limit: int = 100) -> str:
    """The declared jobs (schedule, upstream, next tick, last success) and the latest
    ``limit`` runs (status, duration, attempts, what they made, the error)."""
    from datetime import UTC, datetime

    from framework.common.job_log import RunLog

    store = RunLog(url)
    try:
        store.reap()
        runs = store.runs(limit=limit)
        success = store.last_success()
    finally:
        store.close()
    now = datetime.now(UTC)
    jobs = []
    for job in repo.jobs.values():
        upcoming = job.next_tick(now) if job.active else None
        jobs.append(
            f"<tr><td style='text-align:left'>{html.escape(job.name)}</td>"
            f"<td style='text-align:left'>{html.escape(job.command_name)}</td>"
            f"<td style='text-align:left'>{html.escape(job.schedule_text)} UTC</td>"
            f"<td style='text-align:left'>{html.escape(', '.join(job.after)) or '-'}</td>"
            f"<td>{_when(upcoming) if job.active else 'inactive'}</td>"
            f"<td>{_when(success.get(job.name))}</td></tr>"
        )
    rows = []
    for run in runs:
        colour = _STATUS_COLOUR.get(run.status, "#000")
        took = f"{run.seconds:.1f} s" if run.seconds is not None else "-"
        error = ""
        if run.error and run.status != "succeeded":
            first = html.escape(run.error.splitlines()[0][:160])
            error = (
                f"<details><summary>{first}</summary><pre>{html.escape(run.error)}</pre></details>"
            )
        rows.append(
            f"<tr class='run {html.escape(run.status)}'>"
            f"<td style='text-align:left'>{html.escape(run.job)}</td>"
            f"<td>{_when(run.scheduled_for)}</td>"
            f"<td style='color:{colour};font-weight:bold'>{html.escape(run.status)}</td>"
            f"<td>{html.escape(run.trigger)}</td><td>{run.attempts}</td><td>{took}</td>"
            f"<td style='text-align:left'>{_made(run.produced)}{error}</td></tr>"
        )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>lifecycle: jobs</title>
{STYLE}</head><body><p><a href='/ui'>models and reports</a></p><h1>Scheduled jobs</h1>
<table><tr><th>job</th><th>command</th><th>schedule</th><th>after</th><th>next tick</th>
<th>last success</th></tr>{"".join(jobs) or "<tr><td colspan=6>none declared: add framework.Job(...) under the repo</td></tr>"}</table>
<h1>Recent runs</h1>
<table><tr><th>job</th><th>tick (UTC)</th><th>status</th><th>trigger</th><th>attempts</th>
<th>took</th><th>made / error</th></tr>{"".join(rows) or "<tr><td colspan=7>none yet: <code>lifecycle schedule run</code></td></tr>"}</table>
</body></html>"""
