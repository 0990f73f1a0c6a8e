"""The ``/predict`` path: from a request to scores, an answer and the rows to log.

``Predictor(...)(body)`` checks the request (size, problem, entity keys), assigns
experiment arms, reads each needed feature service from the online store once
(under the service's deadline), scores each arm's rows with its model and builds
the answer plus the prediction-log rows, which the route writes after the response
is sent. Refusals are ``framework.errors`` exceptions; their HTTP status comes
from the service's one table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from framework.common.keys import entity_text
from framework.declare.experiments import Experiment, assign
from framework.declare.problems import Problem
from framework.declare.repo import FeatureRepo
from framework.deploy.service.models import Loaded, ModelCache
from framework.deploy.service.schemas import INT64
from framework.errors import (
    DataError,
    InvalidRequest,
    LifecycleError,
    NotFound,
    StoreError,
    TooLarge,
)
from framework.models.scoring import raw_scores
from framework.tasks import task_of

__all__ = ["MAX_ENTITIES", "Pending", "Predictor", "features_of"]

MAX_ENTITIES = 1000
Pending = list[tuple[list[dict[str, Any]], pd.DataFrame, list[str]]]  # (log rows, features, names)
ReadFeatures = Callable[[list[dict[str, Any]], str], Awaitable[pd.DataFrame]]


@dataclass
class Predictor:
    """Answers one ``/predict`` request: ``await predictor(body)`` -> (answer, log rows)."""

    repo: FeatureRepo
    models: ModelCache
    read_features: ReadFeatures  # (rows, feature service) -> online features, under a deadline
    max_entities: int = MAX_ENTITIES

    async def __call__(self, body: Any) -> tuple[dict[str, Any], Pending]:
        """``body``: the app's ``PredictRequest`` (``problem``, ``entities``)."""
        problem, loaded = self._resolve(body.problem, len(body.entities))
        entities = [
            e.model_dump(exclude_none=True) if hasattr(e, "model_dump") else dict(e)
            for e in body.entities
        ]
        rows = self._entity_rows(self.repo.key_kinds(problem), entities)
        experiment = self.repo.active_experiment(problem.name)
        arms, policies = self._policies(problem, loaded, experiment, rows)
        frames = await self._features(rows, [loaded, *policies.values()])
        predictions: list[dict[str, Any]] = [{} for _ in rows]
        pending: Pending = []
        for arm, model in policies.items():
            idx = [i for i, a in enumerate(arms) if a == arm]
            used = model or loaded  # a no-model arm logs the production model's features
            full = frames[used.artifact.meta.feature_service]
            frame = full if len(idx) == len(rows) else full.iloc[idx]
            items = _answers(problem.keys, [rows[i] for i in idx], frame, model, arm)
            for i, item in zip(idx, items, strict=True):
                predictions[i] = item
            version = model.artifact.version if model else "none"
            logged = [_log_row(problem, version, experiment, arm, item) for item in items]
            for item in items:
                item.pop("label_index", None)  # logged (an integer column), not answered
            pending.append((logged, frame, used.artifact.meta.features))
        answer = {
            "problem": problem.name,
            "model_version": loaded.artifact.version,
            "predictions": predictions,
        }
        return answer, pending

    def _resolve(self, name: str, entities: int) -> tuple[Problem, Loaded]:
        if entities > self.max_entities:
            raise TooLarge("entities", f"at most {self.max_entities} entities per request")
        try:
            problem = self.repo.problem(name)
            if problem.kind.route != "predict":
                raise InvalidRequest("problem", problem.kind.route_hint(name))
            return problem, self.models.get(problem.name)
        except InvalidRequest:
            raise
        except LifecycleError as exc:
            raise NotFound("problem", str(exc)) from exc

    @staticmethod
    def _entity_rows(kinds: dict[str, str], entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entities, checked: every join key of the problem, of its declared kind."""
        for i, row in enumerate(entities):
            for key, kind in kinds.items():
                value = row.get(key)
                if kind == "int":
                    if (
                        isinstance(value, bool)
                        or not isinstance(value, int)
                        or not INT64[0] <= value <= INT64[1]
                    ):
                        raise InvalidRequest(
                            f"entities.{i}.{key}", f"{key} must be an integer (64-bit)"
                        )
                elif not isinstance(value, str) or not value:
                    raise InvalidRequest(f"entities.{i}.{key}", f"{key} must be a non-empty text")
        return entities

    def _policies(
        self,
        problem: Problem,
        loaded: Loaded,
        experiment: Experiment | None,
        rows: list[dict[str, Any]],
    ) -> tuple[list[str | None], dict[str | None, Loaded | None]]:
        """Each row's arm, and each arm's model (None: the arm answers no score)."""
        if experiment is None:
            return [None] * len(rows), {None: loaded}
        unit = experiment.unit_keys(problem.keys)
        units = [entity_text([r[k] for k in unit]) for r in rows]
        assigned = assign(experiment.salt_text, units, experiment.split)
        policies: dict[str | None, Loaded | None] = {}
        try:
            for arm in set(assigned):
                policies[arm] = self._policy(problem.name, experiment.policy(arm))
        except LifecycleError as exc:
            raise StoreError(f"Experiment {experiment.name!r} cannot run: {exc}") from exc
        return list(assigned), policies

    def _policy(self, problem: str, policy: str) -> Loaded | None:
        if policy == "none":
            return None
        if policy == "production":
            return self.models.get(problem)
        return self.models.version(problem, policy)

    async def _features(
        self, rows: list[dict[str, Any]], models: list[Loaded | None]
    ) -> dict[str, pd.DataFrame]:
        return await features_of(self.read_features, rows, models)


async def features_of(
    read_features: ReadFeatures, rows: list[dict[str, Any]], models: list[Loaded | None]
) -> dict[str, pd.DataFrame]:
    """The online features of every feature service the models read, once each."""
    frames: dict[str, pd.DataFrame] = {}
    for model in models:
        service = model.artifact.meta.feature_service if model else None
        if service is None or service in frames:
            continue
        try:
            frames[service] = await read_features(rows, service)
        except DataError as exc:  # the entity rows: the client's to fix
            raise InvalidRequest("entities", str(exc)) from exc
        except StoreError:
            raise
        except LifecycleError as exc:  # the registry (say, mid-update): ours, retry
            raise StoreError(f"The feature registry could not be read: {exc}") from exc
    return frames


def _answers(
    keys: tuple[str, ...],
    rows: list[dict[str, Any]],
    frame: pd.DataFrame,
    model: Loaded | None,
    arm: str | None,
) -> list[dict[str, Any]]:
    """The answer items of one arm's rows (in order)."""
    meta = model.artifact.meta if model else None
    answered: list[dict[str, Any]] | None = None
    if model is not None and meta is not None:
        raw = raw_scores(meta, model.model, frame)
        answered = task_of(meta.task).answer_items(meta, model.model, raw)
    status = frame["feature_status"].tolist()
    items = []
    for j, row in enumerate(rows):
        item: dict[str, Any] = {k: row[k] for k in keys}
        item["feature_status"] = status[j]
        if answered is not None:
            item.update(answered[j])
        if arm is not None:
            item["arm"] = arm
            if model is not None:
                item["model_version"] = model.artifact.version
        items.append(item)
    return items


def _log_row(
    problem: Problem,
    version: str,
    experiment: Experiment | None,
    arm: str | None,
    item: dict[str, Any],
) -> dict[str, Any]:
    return {
        "problem": problem.name,
        "model_version": version,
        "entity_key": ",".join(problem.keys),
        "entity_id": entity_text([item[k] for k in problem.keys]),
        "feature_status": item["feature_status"],
        "score": item.get("score"),
        "label": item.get("label_index", item.get("label")),
        "experiment": experiment.name if experiment else None,
        "arm": arm,
    }
