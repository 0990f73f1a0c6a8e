"""The retraining loop: a challenger trained on the latest data against the champion.

``retrain(repo, "churn")`` trains a challenger (a new candidate version) with
the same pipeline as ``lifecycle train``, then scores the champion (the
production version) and the challenger on the most recent labeled window: the
challenger's test split, the latest observations whose labels are known, which
neither model was fitted on. The champion reads its own feature service there.
The challenger is promoted only when it beats the champion by more than the
problem's declared ``margin`` on the problem's metric; with no champion it is
promoted. The decision and both scores are recorded in the registry
(``<problem>/decisions.json``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from framework.common.jsonable import finite
from framework.declare.repo import FeatureRepo

__all__ = ["RetrainDecision", "retrain"]


@dataclass(frozen=True)
class RetrainDecision:
    problem: str
    metric: str
    window: dict[str, Any]
    champion: str | None
    champion_score: float | None
    challenger: str
    challenger_score: float
    margin: float
    promoted: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return finite(asdict(self))

    def to_text(self) -> str:
        champion = (
            f"champion {self.champion}: {self.metric} {self.champion_score:.4f}"
            if self.champion
            else "no champion"
        )
        return (
            f"{self.problem}: {champion}; challenger {self.challenger}: {self.metric} "
            f"{self.challenger_score:.4f} on {self.window['rows']:,} rows from "
            f"{self.window['start'][:10]} to {self.window['end'][:10]}\n"
            f"Decision: {'promote ' + self.challenger if self.promoted else 'keep ' + str(self.champion)}"
            f" ({self.reason})"
        )


def _point_features(
    repo: FeatureRepo, champion: Any, window: pd.DataFrame, rows: pd.DataFrame, problem: Any
) -> pd.DataFrame:
    """The champion's features at each test row's time."""
    from framework.features.historical import get_historical_features

    return get_historical_features(repo, rows, champion.meta.feature_service)


def _horizon_features(
    repo: FeatureRepo, champion: Any, window: pd.DataFrame, rows: pd.DataFrame, problem: Any
) -> pd.DataFrame:
    """A forecast's: the champion's features at each origin, joined to the window's
    horizon rows."""
    from framework.features.historical import get_historical_features
    from framework.features.horizons import HORIZON_FEATURES
    from framework.training.dataset import TIMESTAMP

    keys = [*problem.keys, TIMESTAMP]
    origins = rows.drop_duplicates(ignore_index=True)
    fetched = get_historical_features(repo, origins, champion.meta.feature_service)
    horizon_rows = window[[*keys, *HORIZON_FEATURES]].reset_index(drop=True)
    return horizon_rows.merge(fetched, on=keys, how="left")


# the champion's rows for each kind of observation (``Task.observations``)
_CHAMPION_ROWS = {
    "points": _point_features,
    "horizons": _horizon_features,
    "lists": _point_features,
}


def retrain(
    repo: FeatureRepo, problem: str, *, progress: Callable[[str], None] | None = None
) -> RetrainDecision:
    """Train a challenger, compare it with the champion, promote only a better one."""
    from framework.errors import LifecycleError
    from framework.models.registry import registry_of
    from framework.models.scoring import raw_scores
    from framework.training.dataset import LABEL, TIMESTAMP
    from framework.training.run import run_training

    say = progress or (lambda _m: None)
    declared = repo.problem(problem)
    registry = registry_of(repo)
    try:
        champion = registry.get(declared.name)
    except LifecycleError:
        champion = None
    run = run_training(repo, declared.name, progress=say)
    challenger = run.artifact
    window = run.result.split.test
    metric = declared.metric
    challenger_score = float(run.result.test[metric])
    span = {
        "rows": len(window),
        "start": window[TIMESTAMP].min().isoformat(),
        "end": window[TIMESTAMP].max().isoformat(),
    }
    champion_score = None
    paired = None
    if champion is not None:
        say(f"scoring champion {champion.version} on the same window")
        rows = window[[*declared.keys, TIMESTAMP]].reset_index(drop=True)
        kind = declared.kind
        features = _CHAMPION_ROWS[kind.observations](repo, champion, window, rows, declared)
        context = kind.gate_context(declared, window, run.result.split.train)
        model = champion.load_model()
        raw = raw_scores(champion.meta, model, features)
        scores, y = kind.gate_scores(
            champion.meta, model, raw, window[LABEL].to_numpy(), run.result.classes
        )
        threshold = champion.meta.decision_threshold or 0.5
        champion_score = float(
            kind.evaluate(y, scores, threshold, run.result.classes, **context)[metric]
        )
        paired = kind.gate_lift(y, run.result.test_scores, scores, context)
    margin = float(declared.margin)
    refusal = declared.kind.promotion_refusal(challenger.meta)
    if refusal:
        promoted, reason = False, refusal
    elif champion_score is None:
        promoted, reason = True, "there is no production model yet"
    elif paired is not None:  # a ranking with propensities: its lift must clear the margin
        promoted = paired.low > margin
        reason = (
            f"the challenger's counterfactual CTR lift over the champion is "
            f"{paired.value:+.4f} (95% CI {paired.low:+.4f} to {paired.high:+.4f}): "
            f"{'clear of' if promoted else 'not clear of'} the margin {margin:g}"
        )
    else:
        gain = (
            challenger_score - champion_score
            if declared.higher_is_better
            else champion_score - challenger_score
        )
        promoted = gain > margin
        better = "better" if gain > 0 else "not better"
        reason = (
            f"the challenger is {better} by {abs(gain):.4f}; "
            f"{'more' if promoted else 'not more'} than the margin {margin:g}"
        )
    if promoted:
        registry.promote(declared.name, challenger.version)
    decision = RetrainDecision(
        problem=declared.name,
        metric=metric,
        window=span,
        champion=champion.version if champion else None,
        champion_score=champion_score,
        challenger=challenger.version,
        challenger_score=challenger_score,
        margin=margin,
        promoted=promoted,
        reason=reason,
    )
    registry.record_decision(declared.name, decision.to_json())
    return decision
