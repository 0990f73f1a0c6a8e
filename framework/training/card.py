"""Model cards: one JSON file and one self-contained HTML page per model version.

The card holds the metrics table of every candidate (validation) and of the
winner and baseline (test), curves (ROC and precision-recall for classifiers,
predicted vs actual and residuals for regressors), feature importance, and the
data the model was trained on (rows, time range, label balance). Plots are PNGs
made with matplotlib and embedded in the page.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from framework.common.html import STYLE, figure, png, pyplot, table
from framework.tasks import task_of

if TYPE_CHECKING:
    from framework.models.metadata import ModelMeta

__all__ = ["feature_importance", "write_card"]


def feature_importance(model: Any, top: int = 20) -> list[tuple[str, float]]:
    """Importance per transformed feature (tree gains or |coefficients|), largest first."""
    est = model.named_steps["model"]
    if "preprocess" not in model.named_steps:  # a model that reads its inputs as given
        return []
    names = list(model.named_steps["preprocess"].get_feature_names_out())
    if hasattr(est, "feature_importances_"):
        values = np.asarray(est.feature_importances_, dtype=float)
    elif hasattr(est, "coef_"):
        coef = np.abs(np.asarray(est.coef_, dtype=float))
        values = coef.sum(axis=0) if coef.ndim == 2 else coef  # multiclass: over the classes
    else:
        return []
    if values.sum() > 0:
        values = values / values.sum()
    order = np.argsort(values)[::-1][:top]
    return [(names[i], float(values[i])) for i in order]


def _importance_plot(importance: list[tuple[str, float]]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(importance) + 1))
    names = [n for n, _ in importance][::-1]
    ax.barh(names, [v for _, v in importance][::-1])
    ax.set(title="Feature importance (share)", xlabel="share")
    return png(fig)


def _split_rows(split: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = ["from", "to", "rows", "observation times", "days"]
    return [{"split": k, **dict(zip(names, v, strict=False))} for k, v in split.items()]


def _split_warnings(meta: ModelMeta) -> str:
    if not meta.split_warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in meta.split_warnings)
    return f'<p class="warn">Split warnings:</p><ul>{items}</ul>'


def _enough_data(meta: ModelMeta) -> str:
    curve = (meta.assessment or {}).get("learning_curve")
    if not curve:
        return ""
    from framework.training.assess import LearningCurve
    from framework.training.assess_report import curve_section

    return curve_section(LearningCurve(**curve))


def write_card(
    folder: str | Path,
    meta: ModelMeta,
    model: Any,
    y_test: np.ndarray,
    test_scores: np.ndarray,
    forecast_rows: Any = None,
) -> dict[str, Any]:
    """Write card.json and card.html into a model version's folder; return the card
    (``forecast_rows``: a forecast's test rows with their forecast, or a ranking's with
    their list, score and popularity, for the task's plot)."""
    folder = Path(folder)
    task = meta.task
    kind = task_of(task)
    y = kind.card_labels(meta, y_test)
    curves, plots = kind.card_curves(y, np.asarray(test_scores, dtype=float), meta.classes)
    importance = feature_importance(model)
    card = {
        "problem": meta.problem,
        "version": meta.version,
        "task": task,
        "winner": meta.winner,
        "metric": meta.metric,
        "decision_threshold": meta.decision_threshold,
        "success_threshold": meta.success_threshold,
        "success": meta.success,
        "metrics": meta.metrics,
        "baseline": meta.baseline,
        "candidates": meta.candidates,
        "data": meta.dataset,
        "split": meta.split,
        "split_warnings": meta.split_warnings,
        "feature_importance": importance,
        "curves": curves,
        "assessment": meta.assessment,
    }
    (folder / "card.json").write_text(json.dumps(card, indent=2, default=str))
    metric_cols = kind.metric_columns
    candidates = [
        {"candidate": c["name"], **c["validation"], "fit seconds": c["fit_seconds"]}
        for c in meta.candidates
    ]
    test_rows = [
        {"model": f"{meta.winner} (winner)", **meta.metrics["test"]},
        {"model": "baseline", **meta.baseline["test"]},
    ]
    data = meta.dataset
    images = "".join(figure(t, b) for t, b in plots)
    if importance:
        images += figure("Feature importance", _importance_plot(importance))
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Model card: {html.escape(meta.problem)} {html.escape(meta.version)}</title>
{STYLE}</head><body>
<h1>{html.escape(meta.problem)} {html.escape(meta.version)}</h1>
<p>{html.escape(meta.description)}</p>
<p>Task: {task}. Label: {html.escape(meta.label_description)}. Feature service: {html.escape(meta.feature_service)}
({len(meta.features)} features). Winner: <b>{html.escape(meta.winner)}</b>, chosen on validation {html.escape(meta.metric)};
success threshold {meta.success_threshold}: <b>{"met" if meta.success else "not met"}</b> on test.</p>
<h2>Test</h2>{table(test_rows, ["model", *metric_cols])}
{kind.card_section(meta, forecast_rows)}
<h2>Candidates (validation)</h2>{table(candidates, ["candidate", *metric_cols, "fit seconds"])}
<h2>Plots</h2>{images}
{_enough_data(meta)}
<h2>Data</h2><p>Dataset {html.escape(data["hash"])}: {data["rows"]:,} rows, {data["entities"]:,} entities,
observations from {html.escape(data["time_range"][0])} to {html.escape(data["time_range"][1])}.
{html.escape(json.dumps(data.get("label_balance") or {"label_mean": data.get("label_mean")}))}</p>
{table(_split_rows(meta.split), ["split", "from", "to", "rows", "observation times", "days"])}
{_split_warnings(meta)}
<p>Libraries: {html.escape(json.dumps(meta.libraries))}</p>
</body></html>"""
    (folder / "card.html").write_text(page)
    return card
