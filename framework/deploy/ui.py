"""The web pages of ``lifecycle serve``: an index of model cards and monitoring reports.

``GET /ui`` lists every registered model version (stage, metric, link to its
card) and every report under ``<repo>/data/reports/`` (newest first). Names in
URLs are checked against the naming rules before any path is built, so a
request cannot reach a file outside the registry or the reports folder.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from fastapi.responses import HTMLResponse

from framework.declare.repo import FeatureRepo
from framework.errors import NotFound
from framework.training.card import STYLE

__all__ = ["card_path", "file_page", "index_page", "report_path"]

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
<h1>Monitoring reports</h1><ul>{reports or "<li>none yet: run <code>lifecycle monitor PROBLEM</code></li>"}</ul>
</body></html>"""
