"""The "do we have enough data?" report: as text (the CLI), and as a page with the
learning curve as a plot and the facts as tables.

``write_assessment(assessment, folder)`` writes ``report.html`` (self-contained)
and ``report.json`` (what ``lifecycle assess --json`` prints); ``curve_section``
is the same curve and verdict as an HTML fragment for the model card.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

from framework.common.html import STYLE, png
from framework.common.html import table as _table

if TYPE_CHECKING:
    from framework.training.assess import Assessment, DataFacts, LearningCurve

__all__ = ["curve_plot", "curve_section", "curve_text", "facts_text", "share", "write_assessment"]


def share(fraction: float) -> str:
    """1/8, 1/4, 1/2, all."""
    return "all" if fraction == 1 else f"1/{round(1 / fraction)}"


def curve_plot(curve: LearningCurve) -> str:
    """The metric against training rows (log scale), with the noise band and the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [p["rows"] for p in curve.points]
    values = [p["value"] for p in curve.points]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.fill_between(rows, curve.baseline, values, alpha=0.4, label="gain over the baseline")
    ax.errorbar(
        rows,
        values,
        yerr=curve.noise,
        marker="o",
        linewidth=2,
        capsize=4,
        label=f"{curve.model} (± bootstrap noise)",
    )
    ax.axhline(curve.baseline, color="#c0392b", linestyle="--", label="baseline")
    ax.set_xscale("log", base=2)
    ax.set(
        title=f"Learning curve: {curve.metric} on validation",
        xlabel="training rows (last 1/8, 1/4, 1/2, all of the training period)",
        ylabel=curve.metric,
    )
    ax.legend(fontsize=7)
    return png(fig)


def curve_section(curve: LearningCurve) -> str:
    rows = [
        {
            "training period": p["fraction"],
            "times": p["times"],
            "rows": p["rows"],
            curve.metric: p["value"],
        }
        for p in curve.points
    ]
    return f"""<h2>Do we have enough data?</h2>
<p>{html.escape(curve.configuration)}: <b>{html.escape(curve.verdict)}</b>.
Gain over the baseline ({curve.baseline:.4f}): {curve.gain_over_baseline:.4g} {html.escape(curve.metric)} now,
about {curve.expected_gain_doubled:.4g} with twice the training period (extrapolated).</p>
<figure><img alt="Learning curve" src="data:image/png;base64,{curve_plot(curve)}"><figcaption>Learning curve</figcaption></figure>
{_table(rows, ["training period", "times", "rows", curve.metric])}"""


def _facts_section(facts: DataFacts) -> str:
    o = facts.observations
    split = [
        {
            "split": k,
            "from": v[0],
            "to": v[1],
            "rows": v[2],
            "observation times": v[3],
            "days": v[4],
        }
        for k, v in facts.split["parts"].items()
    ]
    label = {k: v for k, v in facts.label.items() if k != "parts"}
    parts = [{"split": k, **v} for k, v in facts.label["parts"].items()]
    part_cols = sorted({c for p in parts for c in p if c != "split"})
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in facts.warnings) or "<li>none</li>"
    return f"""<h2>Observations</h2>
<p>{o["rows"]:,} rows, {o["entities"]:,} entities, {o["observation_times"]} observation times from
{html.escape(o["first"])} to {html.escape(o["last"])}: {o["span_days"]:g} days, {o["span_in_horizons"]} label
horizons of {o["horizon_days"]:g} days{f"; warm-up {o['warmup_days']:g} days" if o["warmup_days"] else ""}.
{facts.split["purged"]:,} rows purged between the parts.</p>
{_table(split, ["split", "from", "to", "rows", "observation times", "days"])}
<h2>Label</h2><p>{html.escape(json.dumps(label))}</p>{_table(parts, ["split", *part_cols])}
<h2>Warnings</h2><ul>{warnings}</ul>
<h2>Features</h2>{_table(facts.features, ["feature", "dtype", "missing", "coverage", "distinct"])}"""


def write_assessment(assessment: Assessment, folder: str | Path) -> Path:
    """Write report.html and report.json into ``folder``; return the page's path."""
    folder = Path(folder)
    (folder / "report.json").write_text(json.dumps(assessment.as_json(), indent=2, default=str))
    curve = curve_section(assessment.curve) if assessment.curve else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Enough data? {html.escape(assessment.problem)}</title>{STYLE}</head><body>
<h1>{html.escape(assessment.problem)}: do we have enough data?</h1>
{curve}{_facts_section(assessment.facts)}</body></html>"""
    path = folder / "report.html"
    path.write_text(page)
    return path


def facts_text(problem: str, facts: DataFacts) -> str:
    o, label = facts.observations, facts.label
    warmup = f"; warm-up {o['warmup_days']:g} days" if o["warmup_days"] else ""
    lines = [
        f"{problem}: do we have enough data?",
        f"  observations  {o['rows']:,} rows, {o['entities']:,} entities, "
        f"{o['observation_times']} observation times",
        f"  time span     {o['first'][:10]} .. {o['last'][:10]}: {o['span_days']:g} days = "
        f"{o['span_in_horizons']} label horizons of {o['horizon_days']:g} days{warmup}",
        "  split         "
        + ", ".join(f"{k} {v[2]:,} rows / {v[3]} times" for k, v in facts.split["parts"].items())
        + f"; {facts.split['purged']:,} purged",
    ]
    if "positives" in label:
        parts = ", ".join(f"{k} {v['positives']:,}" for k, v in label["parts"].items())
        lines.append(
            f"  label         {label['positives']:,} positives of {label['rows']:,} "
            f"(base rate {label['base_rate']:.2%}); {parts}"
        )
    elif "classes" in label:
        lines.append(f"  label         classes {label['classes']}")
    else:
        lines.append(
            f"  label         mean {label['mean']:.4g}, std {label['std']:.4g}, median "
            f"{label['median']:.4g}, p95 {label['p95']:.4g}, zero {label['zero_share']:.1%}"
        )
    worst = sorted(facts.features, key=lambda f: f["coverage"])[:3]
    lines.append(
        f"  features      {len(facts.features)}; least covered: "
        + ", ".join(
            f"{f['feature']} {f['coverage']:.1%} (missing {f['missing']:.1%})" for f in worst
        )
    )
    lines += [f"  warning       {w}" for w in facts.warnings]
    return "\n".join(lines)


def curve_text(curve: LearningCurve) -> str:
    lines = [f"  learning curve: {curve.configuration}; {curve.metric} on validation"]
    for p in curve.points:
        lines.append(
            f"    {share(p['fraction']):>4} of the training period  {p['times']:>4} times "
            f"{p['rows']:>10,} rows  {p['value']:.4f}"
        )
    lines.append(f"    {'baseline':<31}{'':>16}{curve.baseline:.4f}")
    lines.append(f"  verdict       {curve.verdict}")
    lines.append(
        f"  gain over the baseline: {curve.gain_over_baseline:.4g} {curve.metric} now; about "
        f"{curve.expected_gain_doubled:.4g} with twice the training period (extrapolated)"
    )
    return "\n".join(lines)
