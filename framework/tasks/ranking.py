"""Ranking: which items to show a user first? Its rows are the items shown in each list
(``observations = "lists"``: one impression each, ``Problem.group`` names the list), it
is judged per list (NDCG, MAP and CTR at ``top_k``) against the popularity order, and
served by ``POST /rank``. LambdaRank learns from the lists; a pointwise classifier learns
label > 0.

With the impressions' ``position`` declared, ``lightgbm_position`` learns the clicks'
position bias (unbiased LambdaMART); with their ``propensity`` too, every order is also
judged by the CTR at ``top_k`` it would have earned on the logged lists (a counterfactual
estimate, ``framework.tasks.counterfactual``: ``ctr_cf`` with its interval, and its lift
over the popularity order), which the promotion gate asks for."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np
import pandas as pd

import framework.tasks.estimators as estimators
from framework.common import html
from framework.common.columns import LABEL, TIMESTAMP
from framework.errors import DataError, FeatureRepoError
from framework.tasks.base import Task
from framework.tasks.binary import positive_facts, refuse_few_positives
from framework.tasks.counterfactual_report import counterfactual_lines, counterfactual_metrics
from framework.tasks.lists import TIE_SEED, group_sizes, ranking_metrics, search_ranker

__all__ = ["RANKING_METRICS", "RankingTask"]

# at the problem's top_k, over each list (request): NDCG, mean average precision and the
# offline click-through rate of the top k (positives among them / k)
# and ``ctr_cf``: the counterfactual CTR at top_k (needs logged positions and propensities)
RANKING_METRICS = ("ndcg", "map", "ctr", "ctr_cf")
POSITION_CANDIDATE = "lightgbm_position"


def _grades(y: np.ndarray) -> np.ndarray:
    """LambdaRank's integer relevance grades (0..30)."""
    return np.clip(np.asarray(y, dtype="float64"), 0, 30).astype(np.int64)


class RankingTask(Task):
    name = "ranking"
    noun = "ranking"
    metrics = RANKING_METRICS
    # the baseline orders by the popularity feature; lightgbm is LambdaRank (listwise,
    # by request), logistic_regression a pointwise classifier of the label
    candidates = ("baseline", "lightgbm", POSITION_CANDIDATE, "logistic_regression")
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
        for name in ("position", "propensity"):
            value = getattr(problem, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise FeatureRepoError(
                    f"Problem {problem.name!r}: {name}= names a spine column; got {value!r}."
                )
        if problem.propensity and not problem.position:
            raise FeatureRepoError(
                f"Problem {problem.name!r}: propensity= needs position= too (the position "
                "each impression was shown at, e.g. position='position')."
            )
        if POSITION_CANDIDATE in problem.candidates and not problem.position:
            raise FeatureRepoError(
                f"Problem {problem.name!r}: candidate {POSITION_CANDIDATE!r} learns from the "
                "impressions' positions: declare position='<the column>'."
            )
        if problem.metric == "ctr_cf" and not problem.propensity:
            raise FeatureRepoError(
                f"Problem {problem.name!r}: metric='ctr_cf' is estimated from logged "
                "propensities: declare position= and propensity= (see exploration=)."
            )
        explore = problem.exploration
        if isinstance(explore, bool) or not isinstance(explore, int | float):
            raise FeatureRepoError(f"Problem {problem.name!r}: exploration must be a share.")
        if not 0 <= explore <= 0.5:
            raise FeatureRepoError(
                f"Problem {problem.name!r}: exploration={explore!r} is the share of /rank's "
                "lists shuffled: between 0 (off) and 0.5; a few percent is typical."
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
            "position": problem.position,
            "propensity": problem.propensity,
            "exploration": float(problem.exploration),
        }

    def default_candidates(self, problem: Any) -> tuple[str, ...]:
        """The position-aware learner only where positions are logged."""
        if problem.position:
            return self.candidates
        return tuple(c for c in self.candidates if c != POSITION_CANDIDATE)

    def row_columns(self, problem: Any) -> list[str]:
        return [str(c) for c in (problem.group, problem.position, problem.propensity) if c]

    def sort_columns(self, problem: Any) -> list[str]:
        return [TIMESTAMP, str(problem.group)]  # each list contiguous

    def annotate(self, x: pd.DataFrame, part: pd.DataFrame, problem: Any) -> None:
        """Each row's list, beside the model's inputs (cheap to copy)."""
        ids = part[str(problem.group)].to_numpy()
        x.attrs["groups"] = pd.factorize(ids)[0].astype(np.int64)
        if problem.position:
            position = pd.to_numeric(part[str(problem.position)], errors="coerce")
            if position.isna().any() or (position < 1).any():
                raise DataError(
                    f"Problem {problem.name!r}: {int(position.isna().sum()):,} impressions "
                    f"have no {problem.position!r} and {int((position < 1).sum()):,} one below "
                    "1; every impression needs its 1-based position in its list."
                )
            x.attrs["positions"] = position.to_numpy(dtype=np.int64)
        if problem.propensity:
            x.attrs["propensities"] = pd.to_numeric(
                part[str(problem.propensity)], errors="coerce"
            ).to_numpy(dtype="float64")

    def evaluation_context(
        self, problem: Any, xs: dict[str, pd.DataFrame], ys: dict[str, np.ndarray], part: str
    ) -> dict[str, Any]:
        return _context(problem, xs[part])

    def estimator(self, name: str, seed: int = 0) -> Any:
        if name == "lightgbm":
            return estimators.lightgbm("ranker", seed)
        if name == POSITION_CANDIDATE:
            from framework.common.threads import thread_count
            from framework.tasks.position_ranker import PositionAwareRanker

            return PositionAwareRanker(random_state=seed, n_jobs=thread_count())
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
        if name == POSITION_CANDIDATE:
            return pipe.fit(
                x,
                _grades(y),
                model__group=group_sizes(groups),
                model__position=x.attrs["positions"],
            )
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
        y = np.asarray(y, dtype=float)
        metrics = ranking_metrics(y, np.asarray(score), groups, k)
        return {**metrics, **counterfactual_metrics(y, score, groups, k, context)}

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

    def text_rows(self, result: Any) -> list[str]:
        return ["  " + line for line in counterfactual_lines(result.test, result.problem.top_k)]

    def card_section(self, meta: Any, rows: pd.DataFrame | None) -> str:
        """The counterfactual CTR (or why there is none), and the positive rate at each
        rank of the top k on test, in the model's order and in the popularity order
        (``rows``: group, label, score, popularity)."""
        k = int(rows.attrs.get("k", 10)) if rows is not None else 10
        lines = counterfactual_lines(meta.metrics.get("test", {}), k)
        estimate = "<h2>Counterfactual CTR (test)</h2>" + "".join(
            f"<p>{escape(line)}</p>" for line in lines
        )
        if rows is None:
            return estimate
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
        return (
            estimate
            + "<h2>Ranking (test)</h2>"
            + html.figure("Positive rate by rank", html.png(fig), caption)
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
        """Judged per list, as the challenger was (with its logged positions and
        propensities when declared)."""
        x = window.copy()
        self.annotate(x, window, problem)
        return _context(problem, x)

    def promotion_refusal(self, meta: Any) -> str | None:
        """A ranking is promoted on a counterfactual CTR lift over the popularity order
        whose 95% interval is clear of zero; without logged propensities the offline
        metrics are biased by the logging policy and do not suffice."""
        test = meta.metrics.get("test", {})
        value = test.get("ctr_cf")
        if value is None or not np.isfinite(value) or "ctr_cf_lift_low" not in test:
            return (
                f"{meta.problem} {meta.version} has no counterfactual CTR estimate (no "
                "logged propensities): its offline metrics are biased by the logging "
                "policy's order. Log each impression's position and propensity and declare "
                "position=, propensity= and exploration= on the problem"
            )
        if not test["ctr_cf_lift_low"] > 0:
            return (
                f"{meta.problem} {meta.version}'s counterfactual CTR lift over the popularity "
                f"order is {test['ctr_cf_lift']:+.4f} (95% CI {test['ctr_cf_lift_low']:+.4f} to "
                f"{test['ctr_cf_lift_high']:+.4f}): not clear of zero"
            )
        return None

    def gate_lift(
        self, y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, context: dict
    ) -> Any:
        """The challenger's counterfactual CTR lift over the champion, paired per list."""
        from framework.tasks.counterfactual import compare_policies, target_ranks

        position, propensity = context.get("positions"), context.get("propensities")
        if position is None or propensity is None:
            return None
        groups = np.asarray(context["groups"])
        valid = np.isfinite(propensity) & (propensity > 0) & (propensity <= 1)
        keep = ~np.isin(groups, np.unique(groups[~valid]))
        if not keep.any():
            return None
        g = groups[keep]
        return compare_policies(
            (np.asarray(y, dtype=float)[keep] > 0).astype("float64"),
            np.asarray(position)[keep],
            propensity[keep],
            target_ranks(np.asarray(challenger, dtype=float)[keep], g),
            target_ranks(np.asarray(champion, dtype=float)[keep], g),
            g,
            int(context["k"]),
            "pbm",
        )


def _context(problem: Any, x: pd.DataFrame) -> dict[str, Any]:
    """A part's lists and k, with the logged positions and propensities and the
    popularity order's scores when the problem declares them."""
    out: dict[str, Any] = {
        "groups": x.attrs["groups"],
        "k": problem.top_k,
        "exploration": float(problem.exploration),
    }
    for name in ("positions", "propensities"):
        if name in x.attrs:
            out[name] = x.attrs[name]
    if "propensities" in out and problem.popularity in x:
        values = pd.to_numeric(x[str(problem.popularity)], errors="coerce")
        out["baseline"] = np.nan_to_num(values.to_numpy(dtype="float64"), nan=0.0)
    return out
