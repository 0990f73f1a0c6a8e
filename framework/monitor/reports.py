"""Reports people look at: the drift report as an HTML page with plots, and as JSON.

``write_drift_report(report, folder)`` writes ``report.html`` (self-contained:
plots are inline PNGs made with matplotlib) and ``report.json`` (the same
content as ``lifecycle monitor --json``). The page shows the PSI of every
feature against the threshold, then the reference and current distributions of
the drifted features (or of the largest PSIs when none drifted) and of the scores.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

from framework.common.html import STYLE, png
from framework.monitor.drift_stats import DriftReport, FeatureDrift

if TYPE_CHECKING:
    from framework.monitor.performance import PerformanceReport

__all__ = ["write_drift_report", "write_performance_report"]

PLOTS = 8


def _psi_plot(report: DriftReport, threshold: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    features = sorted(report.features, key=lambda f: f.psi)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.22 * len(features))))
    colors = ["#c0392b" if f.drifted else "#7f8c8d" for f in features]
    ax.barh([f.name for f in features], [f.psi for f in features], color=colors)
    ax.axvline(threshold, color="#c0392b", linestyle="--", linewidth=1, label=f"PSI {threshold:g}")
    ax.set_xlabel("population stability index (red: drifted)")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(loc="lower right")
    return png(fig)


def _distribution_plot(f: FeatureDrift) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3))
    x = range(len(f.bins))
    width = 0.4
    ax.bar([i - width / 2 for i in x], f.reference_shares, width, label="reference (training)")
    ax.bar([i + width / 2 for i in x], f.current_shares, width, label="current")
    ax.set_xticks(list(x))
    ax.set_xticklabels(f.bins, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title(f"{f.name}: PSI {f.psi:.2f}, {f.test} p = {f.p_value:.2g}", fontsize=9)
    ax.legend(fontsize=7)
    return png(fig)


def _history(folder: Path) -> list[tuple[str, dict]]:
    """Earlier drift reports of the same problem (and this one), oldest first."""
    runs = []
    for sibling in sorted(folder.parent.iterdir()):
        path = sibling / "report.json"
        if "-drift-" in sibling.name and path.is_file():
            runs.append((sibling.name[:15], json.loads(path.read_text())))
    return runs


def _over_time_plot(runs: list[tuple[str, dict]], threshold: float) -> str | None:
    """PSI per run of the features that drifted in any run (at most 6), and of the scores."""
    if len(runs) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[float | None]] = {}
    for i, (_, data) in enumerate(runs):
        rows = [*data["features"], *(x for x in [data.get("prediction_drift")] if x)]
        for f in rows:
            series.setdefault(f["name"], [None] * len(runs))[i] = f["psi"]
    drifted = {f["name"] for _, d in runs for f in d["features"] if f["drifted"]}
    names = sorted(drifted, key=lambda n: -max(v or 0 for v in series[n]))[:6]
    names += [n for n in series if n.startswith("prediction")]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name in names:
        values = [float("nan") if v is None else v for v in series[name]]  # a gap: no value
        ax.plot(range(len(runs)), values, marker="o", label=name)
    ax.axhline(threshold, color="#c0392b", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([r[0] for r in runs], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("PSI")
    ax.legend(fontsize=6)
    return png(fig)


def write_drift_report(report: DriftReport, folder: str | Path, psi_threshold: float) -> Path:
    """Write report.html and report.json into ``folder``; return the HTML path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report.to_json(), indent=2))
    over_time = _over_time_plot(_history(folder), psi_threshold)
    by_psi = sorted(report.features, key=lambda f: -f.psi)
    chosen = [f for f in by_psi if f.drifted] or by_psi
    chosen = chosen[:PLOTS] + [f for f in (report.prediction_drift, report.target_drift) if f]
    figures = [
        ("PSI per feature", _psi_plot(report, psi_threshold)),
        *([("Drift over time (PSI per monitoring run)", over_time)] if over_time else []),
        *[(f"Distribution of {f.name}", _distribution_plot(f)) for f in chosen],
    ]
    rows = "".join(
        f"<tr><td style='text-align:left'>{html.escape(f.name)}</td><td>{f.test}</td>"
        f"<td>{f.psi:.3f}</td><td>{f.p_value:.2g}</td><td>{f.js_distance:.3f}</td>"
        f"<td>{f.missing_rate:.1%}</td><td>{f.out_of_range_rate:.1%}</td>"
        f"<td>{'<b>yes</b>' if f.drifted else 'no'}</td></tr>"
        for f in [
            *report.features,
            *(x for x in (report.prediction_drift, report.target_drift) if x),
        ]
    )
    images = "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{b}">'
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for t, b in figures
    )
    reasons = "; ".join(report.reasons) or "no drift"
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Drift of {html.escape(report.problem)} {html.escape(report.model_version)}</title>
{STYLE}</head><body>
<p><a href="/ui">index</a></p>
<h1>Drift of {html.escape(report.problem)} {html.escape(report.model_version)}</h1>
<p>{report.rows:,} current rows against the training reference.
Action: <b>{html.escape(report.action)}</b> ({html.escape(reasons)}).</p>
{images}
<table><tr><th>feature</th><th>test</th><th>PSI</th><th>p-value</th><th>JS distance</th>
<th>missing</th><th>outside / unseen</th><th>drifted</th></tr>{rows}</table>
</body></html>"""
    path = folder / "report.html"
    path.write_text(page)
    return path


def write_performance_report(report: PerformanceReport, folder: str | Path) -> Path:
    """The realized-performance report (``framework.monitor.performance``) as report.html with
    the metric per week and model version beside its test value, and report.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report.to_json(), indent=2))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for version, v in report.versions.items():
        weeks = [s["week"] for s in v["slices"]]
        values = [s.get(report.metric) for s in v["slices"]]
        line = ax.plot(weeks, values, marker="o", label=f"{version} realized")[0]
        test = v["test"].get(report.metric)
        if test is not None:
            ax.axhline(
                test,
                color=line.get_color(),
                linestyle="--",
                linewidth=1,
                label=f"{version} on test",
            )
    ax.set_ylabel(report.metric)
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax.legend(fontsize=7)
    plot = png(fig)
    rows = "".join(
        f"<tr><td>{html.escape(version)}</td><td>{html.escape(s['week'])}</td><td>{s['n']:,}</td>"
        f"<td>{'-' if s.get(report.metric) is None else f'{s[report.metric]:.4f}'}</td></tr>"
        for version, v in report.versions.items()
        for s in v["slices"]
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Realized performance of {html.escape(report.problem)}</title>
{STYLE}</head><body>
<p><a href="/ui">index</a></p>
<h1>Realized performance of {html.escape(report.problem)}</h1>
<p>{report.labeled:,} predictions with known labels; {report.pending:,} still inside their
label horizon.</p>
<figure><img alt="Metrics over time" src="data:image/png;base64,{plot}">
<figcaption>{html.escape(report.metric)} per week (solid) and on the test split (dashed)</figcaption></figure>
<table><tr><th>version</th><th>week</th><th>predictions</th><th>{html.escape(report.metric)}</th></tr>{rows}</table>
</body></html>"""
    path = folder / "report.html"
    path.write_text(page)
    return path
