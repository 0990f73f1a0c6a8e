"""Ranking: which items to show a user first? Its rows are the items shown in each list
(``observations = "lists"``: one impression each, ``Problem.group`` names the list), it
is judged per list (NDCG, MAP and CTR at ``top_k``) against the popularity order, and
served by ``POST /rank``. LambdaRank learns from the lists; a pointwise classifier learns
label > 0."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import framework.tasks.estimators as estimators
from framework.common import html
from framework.common.columns import LABEL, TIMESTAMP
from framework.errors import FeatureRepoError
from framework.tasks.base import Task
from framework.tasks.binary import positive_facts, refuse_few_positives
from framework.tasks.lists import TIE_SEED, group_sizes, ranking_metrics, search_ranker

__all__ = ["RANKING_METRICS", "RankingTask"]

# at the problem's top_k, over each list (request): NDCG, mean average precision and the
# offline click-through rate of the top k (positives among them / k)
RANKING_METRICS = ("ndcg", "map", "ctr")


def _grades(y: np.ndarray) -> np.ndarray:
    """LambdaRank's integer relevance grades (0..30)."""
    return np.clip(np.asarray(y, dtype="float64"), 0, 30).astype(np.int64)


class RankingTask(Task):
    name = "ranking"
    noun = "ranking"
    metrics = RANKING_METRICS
    # the baseline orders by the popularity feature; lightgbm is LambdaRank (listwise,
    # by request), logistic_regression a pointwise classifier of the label
    candidates = ("baseline", "lightgbm", "logistic_regression")
    label_types = ("AnyEvent", "Count", "LabelTable")
    spine_types = ("EventSpine", "TableSpine")
    observations = "lists"
    route = "rank"

    def check(self, problem: Any) -> None:
        example = "group='list_id', item='item_id', popularity='item_clicks_count_28d'"
        for name in ("group", "item", "popularity"):
            value = getattr(problem, name)
            if not value or not isinstance(value, str | tuple):
                raise FeatureRepoError(
                    f"Problem {problem.name!r} is a ranking and needs {name}=...: the spine "
                    "column naming each list (group), the keys of the ranked item (item) and "
                    "the feature whose order is the popularity baseline (popularity); e.g. "
                    f"{example}."
                )
        top_k = problem.top_k
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise FeatureRepoError(f"Problem {problem.name!r}: top_k must be an integer >= 1.")
        if problem.entity is not None:
            missing = [k for k in problem.item_keys if k not in problem.keys]
            if missing or len(problem.item_keys) >= len(problem.keys):
                raise FeatureRepoError(
                    f"Problem {problem.name!r}: item={list(problem.item_keys)} must be some, "
                    f"not all, of the keys {list(problem.keys)} (the others are the query's: "
                    "the user)."
                )

    def spec(self, problem: Any) -> dict[str, Any]:
        return {
            "group": problem.group,
            "item": list(problem.item_keys),
            "top_k": problem.top_k,
            "popularity": problem.popularity,
        }

    def row_columns(self, problem: Any) -> list[str]:
        return [str(problem.group)]

    def sort_columns(self, problem: Any) -> list[str]:
        return [TIMESTAMP, str(problem.group)]  # each list contiguous

    def annotate(self, x: pd.DataFrame, part: pd.DataFrame, problem: Any) -> None:
        """Each row's list, beside the model's inputs (cheap to copy)."""
        ids = part[str(problem.group)].to_numpy()
        x.attrs["groups"] = pd.factorize(ids)[0].astype(np.int64)

    def evaluation_context(
        self, problem: Any, xs: dict[str, pd.DataFrame], ys: dict[str, np.ndarray], part: str
    ) -> dict[str, Any]:
        return {"groups": xs[part].attrs["groups"], "k": problem.top_k}

    def estimator(self, name: str, seed: int = 0) -> Any:
        if name == "lightgbm":
            return estimators.lightgbm("ranker", seed)
        return estimators.classifier(name, seed)

    def pipeline(self, name: str, x: pd.DataFrame, seed: int, problem: Any) -> Any:
        if name != "baseline":
            return super().pipeline(name, x, seed, problem)
        from sklearn.pipeline import Pipeline

        from framework.tasks.naive import Popularity

        return Pipeline([("model", Popularity(problem.popularity or ""))])

    def fit(
        self, pipe: Any, name: str, problem: Any, x: pd.DataFrame, y: np.ndarray, groups: Any
    ) -> Any:
        """A ranker by list (``groups``: the list of each row, contiguous), a pointwise
        classifier on label > 0."""
        if name == "baseline":
            return pipe.fit(x, y)
        if name == "lightgbm":
            return pipe.fit(x, _grades(y), model__group=group_sizes(groups))
        return pipe.fit(x, (np.asarray(y, dtype="float64") > 0).astype(np.int64))

    def tune(
        self, problem: Any, x: pd.DataFrame, y: np.ndarray, seed: int, groups: Any
    ) -> tuple[dict[str, Any], float]:
        return search_ranker(
            self.estimator("lightgbm", seed),
            estimators.LGBM_SPACE,
            estimators.preprocessor(x),
            x,
            _grades(y),
            groups,
            problem.top_k,
            problem.tuning_budget,
            seed,
        )

    def predict(self, model: Any, x: Any, **kwargs: Any) -> np.ndarray:
        """A pointwise classifier's probability, or a ranker's score."""
        if hasattr(model, "predict_proba"):
            return np.asarray(model.predict_proba(x, **kwargs))[:, 1]
        return np.asarray(model.predict(x, **kwargs))

    def evaluate(
        self,
        y: np.ndarray,
        score: np.ndarray,
        threshold: float = 0.5,
        classes: list[Any] | None = None,
        **context: Any,
    ) -> dict[str, float]:
        groups = context.get("groups")
        if groups is None:
            raise ValueError("a ranking is evaluated per list: pass groups=")
        k = int(context.get("k", 10))
        return ranking_metrics(np.asarray(y, dtype=float), np.asarray(score), groups, k)

    def test_rows(self, result: Any, problem: Any) -> pd.DataFrame | None:
        test = result.split.test
        rows = pd.DataFrame(
            {
                "group": test[str(problem.group)].to_numpy(),
                "label": test[LABEL].to_numpy(),
                "score": result.test_scores,
                "popularity": test[str(problem.popularity)].to_numpy(),
            }
        )
        rows.attrs["k"] = problem.top_k
        return rows

    def label_facts(self, every: pd.Series, parts: dict[str, pd.Series]) -> dict[str, Any]:
        return positive_facts(every, parts)

    def check_label_facts(self, problem: Any, label: dict[str, Any]) -> None:
        refuse_few_positives(problem, label)

    def card_section(self, meta: Any, rows: pd.DataFrame | None) -> str:
        """The positive rate at each rank of the top k on test, in the model's order and in
        the popularity order (``rows``: group, label, score, popularity)."""
        if rows is None:
            return ""
        plt = html.pyplot()
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
        ax.set(title="Positive rate by rank (test)", xlabel="rank in the order")
        ax.set(ylabel="positive rate")
        ax.set_xticks(range(1, k + 1))
        ax.legend(fontsize=8)
        caption = (
            f"The share of positives at each rank of the top {k} of the test lists, in the "
            "model's order and in the popularity order (the baseline)"
        )
        return "<h2>Ranking (test)</h2>" + html.figure(
            "Positive rate by rank", html.png(fig), caption
        )

    def route_hint(self, name: str) -> str:
        return (
            f"{name!r} is a ranking: POST /rank orders a query's candidates "
            '({"problem": ..., "query": {...}, "candidates": [...], "k": 10}).'
        )

    def list_ids(self, problem: Any, points: pd.DataFrame, at: pd.Series) -> np.ndarray:
        """A list: one query (user) at one request time."""
        query = points[list(problem.query_keys)].astype(str).agg("|".join, axis=1)
        return pd.factorize(query + "@" + at.astype(str).to_numpy())[0]

    def realized_metrics(
        self,
        y: np.ndarray,
        score: np.ndarray,
        predicted: np.ndarray,
        lists: np.ndarray | None = None,
        k: int = 10,
    ) -> dict[str, Any]:
        if lists is None:
            return {}
        return ranking_metrics(y.astype(float), score, lists, k)

    def gate_context(self, problem: Any, window: pd.DataFrame, train: pd.DataFrame) -> dict:
        """Judged per list, as the challenger was."""
        return {
            "groups": pd.factorize(window[str(problem.group)].to_numpy())[0],
            "k": problem.top_k,
        }
