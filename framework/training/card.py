"""Model cards: one JSON file and one self-contained HTML page per model version.

The card holds the metrics table of every candidate (validation) and of the
winner and baseline (test), curves (ROC and precision-recall for classifiers,
predicted vs actual and residuals for regressors), feature importance, and the
data the model was trained on (rows, time range, label balance). Plots are PNGs
made with matplotlib and embedded in the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from framework.models.metadata import ModelMeta

__all__ = ["STYLE", "feature_importance", "png", "write_card"]


STYLE = """<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}figure{display:inline-block;margin:0 1em 1em 0}</style>"""


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


def png(fig: Any) -> str:
    """A matplotlib figure as base64 PNG text (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _curves(
    task: str, y: np.ndarray, score: np.ndarray, classes: list[Any] | None = None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn import metrics as m

    data: dict[str, Any] = {}
    plots = []
    if task == "multiclass":
        k = score.shape[1]
        matrix = m.confusion_matrix(y.astype(int), score.argmax(axis=1), labels=list(range(k)))
        data["confusion"] = matrix.tolist()
        fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        names = [str(c) for c in classes or range(k)]
        ax.set_xticks(range(k), names, rotation=45, ha="right")
        ax.set_yticks(range(k), names)
        ax.set(title="Confusion matrix (test)", xlabel="predicted", ylabel="actual")
        plots.append(("Confusion matrix (test)", png(fig)))
    elif task == "binary":
        fpr, tpr, _ = m.roc_curve(y, score)
        precision, recall, _ = m.precision_recall_curve(y, score)
        step = max(1, len(fpr) // 200)
        data["roc"] = {"fpr": fpr[::step].tolist(), "tpr": tpr[::step].tolist()}
        step = max(1, len(recall) // 200)
        data["pr"] = {"recall": recall[::step].tolist(), "precision": precision[::step].tolist()}
        for title, (xs, ys, xl, yl) in {
            "ROC curve (test)": (fpr, tpr, "false positive rate", "true positive rate"),
            "Precision-recall curve (test)": (recall, precision, "recall", "precision"),
        }.items():
            fig, ax = plt.subplots(figsize=(4.2, 3.6))
            ax.plot(xs, ys)
            ax.set(title=title, xlabel=xl, ylabel=yl, xlim=(0, 1), ylim=(0, 1.02))
            plots.append((title, png(fig)))
    elif task == "ranking":  # judged per list: the metrics table says it (no row-wise plot)
        return data, plots
    else:
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
        ax.scatter(y, score, s=3, alpha=0.3)
        top = float(np.quantile(np.r_[y, score], 0.99))
        ax.plot([0, top], [0, top], color="grey")
        ax.set(
            title="Predicted vs actual (test)",
            xlabel="actual",
            ylabel="predicted",
            xlim=(0, top),
            ylim=(0, top),
        )
        plots.append(("Predicted vs actual (test)", png(fig)))
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
        ax.hist(score - y, bins=60)
        ax.set(title="Residuals (test)", xlabel="predicted - actual", ylabel="rows")
        plots.append(("Residuals (test)", png(fig)))
    return data, plots


def _importance_plot(importance: list[tuple[str, float]]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.25 * len(importance) + 1))
    names = [n for n, _ in importance][::-1]
    ax.barh(names, [v for _, v in importance][::-1])
    ax.set(title="Feature importance (share)", xlabel="share")
    return png(fig)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value)) if value is not None else ""


def _split_rows(split: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = ["from", "to", "rows", "observation times", "days"]
    return [{"split": k, **dict(zip(names, v, strict=False))} for k, v in split.items()]


def _enough_data(meta: ModelMeta) -> str:
    curve = (meta.assessment or {}).get("learning_curve")
    if not curve:
        return ""
    from framework.training.assess import LearningCurve
    from framework.training.assess_report import curve_section

    return curve_section(LearningCurve(**curve))


def _forecast_section(meta: ModelMeta, rows: Any) -> str:
    """Test metrics per horizon bucket, and actual vs forecast of the entities with the largest totals
    from their latest test origin (``rows``: keys, event_timestamp, horizon_days, label,
    forecast)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from framework.training.candidates import HORIZON_BUCKETS

    test, base = meta.metrics["test"], meta.baseline["test"]
    table = [
        {
            "horizon (days)": f"{a}-{b}",
            "rows": int(test[f"rows[{a}-{b}]"]),
            "MAE": test[f"mae[{a}-{b}]"],
            "MASE": test[f"mase[{a}-{b}]"],
            "seasonal naive MAE": base[f"mae[{a}-{b}]"],
            "seasonal naive MASE": base[f"mase[{a}-{b}]"],
        }
        for a, b in HORIZON_BUCKETS
        if f"mae[{a}-{b}]" in test
    ]
    keys = meta.keys
    top = rows.groupby(keys)["label"].sum().sort_values(ascending=False).head(4).index
    fig, axes = plt.subplots(1, len(top), figsize=(3.4 * len(top), 2.8), squeeze=False)
    for ax, key in zip(axes[0], top, strict=False):
        key = key if isinstance(key, tuple) else (key,)
        mine = rows[(rows[keys] == pd.Series(key, index=keys)).all(axis=1)]
        latest = mine[mine["event_timestamp"] == mine["event_timestamp"].min()]
        day = latest["event_timestamp"].dt.floor("D") + pd.to_timedelta(
            latest["horizon_days"], unit="D"
        )
        ax.plot(day, latest["label"], "o", markersize=3, label="actual")
        ax.plot(day, latest["forecast"], "-", label="forecast")
        ax.set_title(", ".join(map(str, key)), fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    axes[0][0].legend(fontsize=7)
    plot = png(fig)
    return f"""<h2>Forecast by horizon (test)</h2>
{_table(table, ["horizon (days)", "rows", "MAE", "MASE", "seasonal naive MAE", "seasonal naive MASE"])}
<figure><img alt="Actual vs forecast" src="data:image/png;base64,{plot}"><figcaption>Actual vs
forecast from the first test origin, the entities with the largest totals</figcaption></figure>"""


def _task_section(meta: ModelMeta, rows: Any) -> str:
    if rows is None:
        return ""
    return _ranking_section(meta, rows) if meta.task == "ranking" else _forecast_section(meta, rows)


def _ranking_section(meta: ModelMeta, rows: Any) -> str:
    """The positive rate at each rank of the top k on test, in the model's order and in
    the popularity order (``rows``: group, label, score, popularity)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from framework.training.ranking import TIE_SEED

    k = int(rows.attrs.get("k", 10))
    tie = np.random.default_rng(TIE_SEED).random(len(rows))
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    for column, name in (("score", f"model ({meta.winner})"), ("popularity", "popularity")):
        frame = pd.DataFrame(
            {"g": rows["group"].to_numpy(), "y": rows["label"].to_numpy() > 0, "t": tie}
        )
        frame["s"] = pd.to_numeric(rows[column], errors="coerce").fillna(0).to_numpy()
        frame = frame.sort_values(["g", "s", "t"], ascending=[True, False, True])
        frame["rank"] = frame.groupby("g").cumcount() + 1
        rate = frame[frame["rank"] <= k].groupby("rank")["y"].mean()
        ax.plot(rate.index, rate.to_numpy(), "o-", label=name)
    ax.set(title="Positive rate by rank (test)", xlabel="rank in the order", ylabel="positive rate")
    ax.set_xticks(range(1, k + 1))
    ax.legend(fontsize=8)
    plot = png(fig)
    return f"""<h2>Ranking (test)</h2>
<figure><img alt="Positive rate by rank" src="data:image/png;base64,{plot}"><figcaption>The
share of positives at each rank of the top {k} of the test lists, in the model's order and in
the popularity order (the baseline)</figcaption></figure>"""


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
    if task == "multiclass":
        index = {c: i for i, c in enumerate(meta.classes or [])}
        y = np.array([index[v.item() if hasattr(v, "item") else v] for v in y_test])
    else:
        y = np.asarray(y_test, dtype=float)
    curves, plots = _curves(task, y, np.asarray(test_scores, dtype=float), meta.classes)
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
        "feature_importance": importance,
        "curves": curves,
        "assessment": meta.assessment,
    }
    (folder / "card.json").write_text(json.dumps(card, indent=2, default=str))
    from framework.training.candidates import METRIC_COLUMNS

    metric_cols = METRIC_COLUMNS[task]
    per_class = ""
    if task == "multiclass":
        test = meta.metrics["test"]
        rows = [
            {
                "class": c,
                **{k: test.get(f"{k}[{c}]") for k in ("precision", "recall", "f1")},
                "rows": int(test.get(f"support[{c}]", 0)),
            }
            for c in meta.classes or []
        ]
        per_class = "<h2>Per class (test, winner)</h2>" + _table(
            rows, ["class", "precision", "recall", "f1", "rows"]
        )
    candidates = [
        {"candidate": c["name"], **c["validation"], "fit seconds": c["fit_seconds"]}
        for c in meta.candidates
    ]
    test_rows = [
        {"model": f"{meta.winner} (winner)", **meta.metrics["test"]},
        {"model": "baseline", **meta.baseline["test"]},
    ]
    data = meta.dataset
    images = "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{b}"><figcaption>{html.escape(t)}</figcaption></figure>'
        for t, b in plots
    )
    if importance:
        images += f'<figure><img alt="Feature importance" src="data:image/png;base64,{_importance_plot(importance)}"><figcaption>Feature importance</figcaption></figure>'
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Model card: {html.escape(meta.problem)} {html.escape(meta.version)}</title>
{STYLE}</head><body>
<h1>{html.escape(meta.problem)} {html.escape(meta.version)}</h1>
<p>{html.escape(meta.description)}</p>
<p>Task: {task}. Label: {html.escape(meta.label_description)}. Feature service: {html.escape(meta.feature_service)}
({len(meta.features)} features). Winner: <b>{html.escape(meta.winner)}</b>, chosen on validation {html.escape(meta.metric)};
success threshold {meta.success_threshold}: <b>{"met" if meta.success else "not met"}</b> on test.</p>
<h2>Test</h2>{_table(test_rows, ["model", *metric_cols])}
{per_class}{_task_section(meta, forecast_rows)}
<h2>Candidates (validation)</h2>{_table(candidates, ["candidate", *metric_cols, "fit seconds"])}
<h2>Plots</h2>{images}
{_enough_data(meta)}
<h2>Data</h2><p>Dataset {html.escape(data["hash"])}: {data["rows"]:,} rows, {data["entities"]:,} entities,
observations from {html.escape(data["time_range"][0])} to {html.escape(data["time_range"][1])}.
{html.escape(json.dumps(data.get("label_balance") or {"label_mean": data.get("label_mean")}))}</p>
{_table(_split_rows(meta.split), ["split", "from", "to", "rows", "observation times", "days"])}
<p>Libraries: {html.escape(json.dumps(meta.libraries))}</p>
</body></html>"""
    (folder / "card.html").write_text(page)
    return card
