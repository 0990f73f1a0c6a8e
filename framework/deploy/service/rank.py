"""The ``/rank`` path: a user's candidate items, in the order of a ranking problem's model.

``Ranker(...)(body)`` checks the request (a ranking problem, the user's query keys,
each candidate's item keys), picks the experiment arm of the user when one runs,
reads the feature service's values for every (user, candidate) row in one batched
read per feature view (a key shared by the rows, the user's, is read once), scores
them and answers the top ``k`` with their scores and ranks. The policy
``popularity`` (an experiment's arm) orders by the problem's popularity feature
instead of a model, and ``none`` keeps the order given. The shown items are logged (one prediction-log row each, with
the arm), which is what an experiment's report counts as exposures.

A problem that declares ``exploration`` (a share) has that share of its answers shuffled
uniformly (the same top ``k``, in random order), and every answer gives each shown item
its ``propensity``: the probability this policy had of putting it at its rank given the
items shown, ``(1 - share) * [the policy's own rank] + share / shown``. The product logs
it with the impression; the counterfactual estimates of later models read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from framework.common.keys import entity_text
from framework.declare.experiments import assign
from framework.declare.problems import Problem
from framework.declare.repo import FeatureRepo
from framework.deploy.service.models import Loaded, ModelCache
from framework.deploy.service.predict import Pending, Predictor, ReadFeatures, features_of
from framework.errors import InvalidRequest, LifecycleError, NotFound, StoreError, TooLarge
from framework.models.scoring import score

__all__ = ["MAX_CANDIDATES", "Ranker"]

MAX_CANDIDATES = 1000


@dataclass
class Ranker:
    """Answers one ``/rank`` request: ``await ranker(body)`` -> (answer, log rows)."""

    repo: FeatureRepo
    models: ModelCache
    read_features: ReadFeatures
    max_candidates: int = MAX_CANDIDATES
    # the exploration's coin and shuffles (a seeded generator in tests)
    _random: np.random.Generator = field(default_factory=np.random.default_rng)

    async def __call__(self, body: Any) -> tuple[dict[str, Any], Pending]:
        problem = self._problem(body.problem)
        candidates = [_plain(c) for c in body.candidates]
        if len(candidates) > self.max_candidates:
            raise TooLarge("candidates", f"at most {self.max_candidates} candidates per request")
        user = _plain(body.query)
        when = user.pop("event_timestamp", None)
        kinds = self.repo.key_kinds(problem)
        Predictor._entity_rows({k: kinds[k] for k in problem.query_keys}, [user])
        Predictor._entity_rows({k: kinds[k] for k in problem.item_keys}, candidates)
        k = int(body.k if getattr(body, "k", None) is not None else problem.top_k)
        rows = [
            {
                **{key: user[key] for key in problem.query_keys},
                **{key: c[key] for key in problem.item_keys},
                **({"event_timestamp": when} if when is not None else {}),
            }
            for c in candidates
        ]
        experiment = self.repo.active_experiment(problem.name)
        arm: str | None = None
        policy = "production"
        if experiment is not None:
            unit = experiment.unit_keys(problem.keys)
            if any(key not in problem.query_keys for key in unit):
                raise StoreError(
                    f"Experiment {experiment.name!r} on ranking {problem.name!r} must split "
                    f"by the query's keys {list(problem.query_keys)} (unit=...), not {list(unit)}."
                )
            arm = assign(
                experiment.salt_text, [entity_text([user[u] for u in unit])], experiment.split
            )[0]
            policy = experiment.policy(arm)
        loaded = self.models.get(problem.name)  # the production model: its feature service
        model = self._model(problem.name, policy, loaded)
        used = model or loaded
        frame = await features_of(self.read_features, rows, [used])
        features = frame[used.artifact.meta.feature_service]
        if policy == "none":  # no model: the candidates in the order given
            scores = -np.arange(len(rows), dtype="float64")
        elif model is None:  # the popularity order: the baseline of the ranking
            values = pd.to_numeric(features[str(problem.popularity)], errors="coerce")
            scores = np.nan_to_num(values.to_numpy(dtype="float64"), nan=0.0)
        else:
            scores = np.asarray(score(model.artifact.meta, model.model, features)[0], dtype=float)
        order = np.argsort(-scores, kind="stable")[:k]  # ties: the order given
        share = float(problem.exploration)
        explored = share > 0 and bool(self._random.random() < share)
        propensity = (1 - share) + share / max(len(order), 1)
        if explored:
            shuffled = self._random.permutation(len(order))
            own = np.arange(len(order))
            # the policy's own rank keeps its chance; any other has only the shuffle's
            chance = np.where(shuffled == own, propensity, share / len(order))
            order = order[shuffled]
        else:
            chance = np.full(len(order), propensity)
        version = model.artifact.version if model else policy
        ranked = []
        for rank, i in enumerate(order, start=1):
            item = {key: candidates[i][key] for key in problem.item_keys}
            item["rank"] = rank
            if policy != "none":
                item["score"] = float(scores[i])
            if share > 0:
                item["propensity"] = float(chance[rank - 1])
            ranked.append(item)
        status = features["feature_status"].tolist()
        logged = [
            {
                "problem": problem.name,
                "model_version": version,
                "entity_key": ",".join(problem.keys),
                "entity_id": entity_text([rows[i][key] for key in problem.keys]),
                "feature_status": status[i],
                "score": None if policy == "none" else float(scores[i]),
                "label": None,
                "experiment": experiment.name if experiment else None,
                "arm": arm,
            }
            for i in order
        ]
        shown = features.iloc[order]
        answer: dict[str, Any] = {
            "problem": problem.name,
            "model_version": version,
            "ranked": ranked,
        }
        if arm is not None:
            answer["arm"] = arm
        if share > 0:
            answer["explored"] = explored
        return answer, [(logged, shown, used.artifact.meta.features)]

    def _problem(self, name: str) -> Problem:
        try:
            problem = self.repo.problem(name)
        except LifecycleError as exc:
            raise NotFound("problem", str(exc)) from exc
        if problem.kind.route != "rank":
            raise InvalidRequest(
                "problem",
                f"{name!r} is a {problem.task} problem, not a ranking: "
                + problem.kind.route_hint(name),
            )
        return problem

    def _model(self, problem: str, policy: str, production: Loaded) -> Loaded | None:
        if policy == "popularity":
            return None
        if policy in ("production", "none"):  # none: the given order, production's features
            return None if policy == "none" else production
        try:
            return self.models.version(problem, policy)
        except LifecycleError as exc:
            raise StoreError(f"The experiment's model {policy} cannot be loaded: {exc}") from exc


def _plain(value: Any) -> dict[str, Any]:
    if hasattr(value, "model_dump"):
        return dict(value.model_dump(exclude_none=True))
    return dict(value)
