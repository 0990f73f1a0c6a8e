"""Forecast: how many each day, up to a horizon ahead (units sold per product and day)?
Its rows are forecast origins x target days (``observations = "horizons"``), split by
when each label becomes known, judged by MAE, RMSE and MASE per horizon bucket against
the seasonal-naive forecast, and written to the database a horizon ahead."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from framework.common import html
from framework.common.columns import HORIZON, LABEL, TIMESTAMP
from framework.tasks.metrics import HORIZON_BUCKETS, forecast_metrics, forecast_scale
from framework.tasks.regression import RegressionTask
from framework.tasks.splitters import Split, split_rows_by_time

__all__ = ["FORECAST_METRICS", "ForecastTask"]

FORECAST_METRICS = ("mae", "rmse", "mase")
US_PER_DAY = 86_400_000_000


class ForecastTask(RegressionTask):
    name = "forecast"
    noun = "forecast"
    metrics = FORECAST_METRICS
    # the baseline of a forecast is seasonal naive: the same weekday a week (or more) before
    candidates = ("baseline", "lightgbm", "ridge")
    label_types = ("DailyTotal",)
    spine_types = ("Cutoffs", "WeeklyCutoffs")
    observations = "horizons"
    route = "horizon"

    def label_stop_us(self, problem: Any) -> int:
        """An origin is kept while its first target day (day(t) + 1) has ended."""
        return 2 * US_PER_DAY

    def split(self, frame: pd.DataFrame, problem: Any) -> Split:
        """By each row's target day: its label is known when that day ends."""
        days = frame[TIMESTAMP].dt.floor("D") + pd.to_timedelta(frame[HORIZON] + 1, unit="D")
        return split_rows_by_time(frame, days, min_times=problem.min_split_times)

    def evaluation_context(
        self, problem: Any, xs: dict[str, pd.DataFrame], ys: dict[str, np.ndarray], part: str
    ) -> dict[str, Any]:
        """The part's horizons and the MASE scale of the training rows."""
        return {
            "horizons": xs[part][HORIZON].to_numpy(),
            "scale": forecast_scale(xs["train"], ys["train"]),
        }

    def pipeline(self, name: str, x: pd.DataFrame, seed: int, problem: Any) -> Any:
        if name != "baseline":
            return super().pipeline(name, x, seed, problem)
        from sklearn.pipeline import Pipeline

        from framework.tasks.naive import SeasonalNaive

        return Pipeline([("model", SeasonalNaive())])  # reads its column as given

    def evaluate(
        self,
        y: np.ndarray,
        score: np.ndarray,
        threshold: float = 0.5,
        classes: list[Any] | None = None,
        **context: Any,
    ) -> dict[str, float]:
        return forecast_metrics(
            np.asarray(y, dtype=float),
            np.asarray(score, dtype=float),
            context.get("horizons"),
            context.get("scale"),
        )

    def text_rows(self, result: Any) -> list[str]:
        lines = [f"  {'test by horizon':<22}{'rows':>10}{'mae':>10}{'mase':>10}{'naive mae':>10}"]
        test, base = result.test, result.baseline_test
        for a, b in HORIZON_BUCKETS:
            key = f"[{a}-{b}]"
            if f"mae{key}" in test:
                lines.append(
                    f"  {f'{a}-{b} days':<22}{test[f'rows{key}']:>10,.0f}"
                    f"{test[f'mae{key}']:>10.4f}{test[f'mase{key}']:>10.4f}"
                    f"{base[f'mae{key}']:>10.4f}"
                )
        return lines

    def test_rows(self, result: Any, problem: Any) -> pd.DataFrame | None:
        columns = [*problem.keys, TIMESTAMP, HORIZON, LABEL]
        return result.split.test[columns].assign(forecast=result.test_scores)

    def card_section(self, meta: Any, rows: pd.DataFrame | None) -> str:
        """Test metrics per horizon bucket, and actual vs forecast of the entities with the
        largest totals from their first test origin (``rows``: keys, event_timestamp,
        horizon_days, label, forecast)."""
        if rows is None:
            return ""
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
        columns = ["horizon (days)", "rows", "MAE", "MASE"]
        columns += ["seasonal naive MAE", "seasonal naive MASE"]
        caption = (
            "Actual vs forecast from the first test origin, the entities with the largest totals"
        )
        return (
            "<h2>Forecast by horizon (test)</h2>"
            + html.table(table, columns)
            + html.figure("Actual vs forecast", _forecast_plot(meta.keys, rows), caption)
        )

    def route_hint(self, name: str) -> str:
        return (
            f"{name!r} is a forecast: its daily forecasts are written by "
            f"`lifecycle predict {name} --at T --horizon 365d` (table forecasts)."
        )

    def gate_context(self, problem: Any, window: pd.DataFrame, train: pd.DataFrame) -> dict:
        values = pd.to_numeric(train["naive_week"], errors="coerce").astype("Float64")
        naive = pd.DataFrame({"naive_week": values.to_numpy(dtype="float64", na_value=np.nan)})
        return {
            "horizons": window[HORIZON].to_numpy(),
            "scale": forecast_scale(naive, train[LABEL].to_numpy(dtype=float)),
        }


def _forecast_plot(keys: list[str], rows: pd.DataFrame) -> str:
    plt = html.pyplot()
    top = rows.groupby(keys)[LABEL].sum().sort_values(ascending=False).head(4).index
    fig, axes = plt.subplots(1, len(top), figsize=(3.4 * len(top), 2.8), squeeze=False)
    for ax, key in zip(axes[0], top, strict=False):
        key = key if isinstance(key, tuple) else (key,)
        mine = rows[(rows[keys] == pd.Series(key, index=keys)).all(axis=1)]
        latest = mine[mine[TIMESTAMP] == mine[TIMESTAMP].min()]
        day = latest[TIMESTAMP].dt.floor("D") + pd.to_timedelta(latest[HORIZON], unit="D")
        ax.plot(day, latest[LABEL], "o", markersize=3, label="actual")
        ax.plot(day, latest["forecast"], "-", label="forecast")
        ax.set_title(", ".join(map(str, key)), fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    axes[0][0].legend(fontsize=7)
    return html.png(fig)
