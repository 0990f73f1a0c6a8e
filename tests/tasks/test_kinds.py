"""The task kinds own what differs between tasks: the rest of the package asks them.

A branch on the task kind is a comparison with a problem's or a model's ``task`` (or a
task's name), or a table keyed by task names. Outside ``framework/tasks/`` there may be
at most 5; adding a kind must not mean editing the stages. The stages do dispatch on two
shapes a kind declares (``observations``: how training rows are made; ``route``: how it
is served); a new kind picks existing shapes, so those tables stay as they are.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from framework.declare.problems import Count, NoEvents, Problem, WeeklyCutoffs
from framework.errors import FeatureRepoError
from framework.tasks import TASKS, Task, register_task, task_of

PACKAGE = Path(__file__).resolve().parents[2] / "framework"
NAMES = frozenset(TASKS)


def _names_a_task(node: ast.AST) -> bool:
    if isinstance(node, ast.Name | ast.Attribute):
        return (node.id if isinstance(node, ast.Name) else node.attr) == "task"
    if isinstance(node, ast.Constant):
        return node.value in NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_a_task(e) for e in node.elts)
    return False


def task_branches(tree: ast.AST) -> list[int]:
    """Lines of the comparisons with a task kind and of tables keyed by task names."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            _names_a_task(n) for n in (node.left, *node.comparators)
        ):
            lines.append(node.lineno)
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            if sum(k in NAMES for k in keys) >= 2:
                lines.append(node.lineno)
    return lines


def test_at_most_five_branches_on_the_task_kind_outside_the_task_modules():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "tasks":
            continue
        lines = task_branches(ast.parse(path.read_text()))
        if lines:
            found[str(path.relative_to(PACKAGE))] = lines
    assert sum(map(len, found.values())) <= 5, found


@pytest.mark.parametrize(
    ("source", "count"),
    [
        ('if problem.task == "ranking":\n    pass\n', 1),
        ('x = 1 if meta.task in ("regression", "forecast") else 0\n', 1),
        ('if kind != "binary":\n    pass\n', 1),
        ('METRICS = {"binary": 1, "multiclass": 2}\n', 1),
        ('if problem.kind.route == "rank":\n    pass\n', 0),
        ('if name == "baseline":\n    pass\n', 0),
    ],
)
def test_the_counter_sees_a_branch_on_the_task(source, count):
    assert len(task_branches(ast.parse(source))) == count


def test_every_kind_is_complete():
    for name, kind in TASKS.items():
        assert kind.name == name and kind.metrics and kind.label_types and kind.noun
        assert kind.candidates[0] == "baseline"
        assert kind.observations in ("points", "horizons", "lists")
        assert kind.route in ("predict", "rank", "horizon")
        for metric in kind.metrics:
            assert isinstance(kind.lower_is_better(metric), bool)


def test_unknown_kind_and_an_incomplete_kind_are_refused():
    with pytest.raises(FeatureRepoError, match="must be 'binary', 'multiclass'"):
        task_of("quantile")

    class Nameless(Task):
        pass

    with pytest.raises(FeatureRepoError, match="needs a name, its metrics"):
        register_task(Nameless())


def test_a_kind_decides_what_a_problem_may_declare(tmp_path):
    from feast import FileSource

    events = FileSource(name="events", path=str(tmp_path / "e.parquet"), timestamp_field="t")
    spine = WeeklyCutoffs(active_within_days=30, every_days=7, warmup_days=30)

    def problem(**kw):
        base = dict(
            name="p",
            task="binary",
            events=events,
            label=NoEvents(horizon_days=7),
            spine=spine,
            feature_service="s",
            metric="pr_auc",
            success_threshold=0.5,
        )
        return Problem(**{**base, **kw})

    assert problem().kind is TASKS["binary"]
    with pytest.raises(FeatureRepoError, match=r"is binary: its label must be NoEvents"):
        problem(label=Count(horizon_days=7))
    with pytest.raises(FeatureRepoError, match="'metric' of regression problem"):
        problem(task="regression", label=Count(horizon_days=7))
    with pytest.raises(FeatureRepoError, match="is forecast: its label must be DailyTotal"):
        problem(task="forecast", metric="mae")
    assert problem(task="regression", label=Count(horizon_days=7), metric="mae").models == (
        "baseline",
        "lightgbm",
        "ridge",
        "random_forest",
    )


@pytest.mark.parametrize("name", ["binary", "regression"])
def test_training_and_serving_scores_are_one_path(name):
    """What the loop judges (``scores``) equals what serving answers (``answer``)."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    kind = TASKS[name]
    if name == "binary":
        model = LogisticRegression().fit(x, (x.a + rng.normal(size=200) > 0).astype(int))
    else:
        model = LinearRegression().fit(x, x.a * 3 + 1)

    class Meta:
        decision_threshold = 0.4
        classes = None

    scores, labels = kind.answer(Meta, model, kind.predict(model, x))
    np.testing.assert_array_equal(scores, kind.scores(model, x))
    if name == "binary":
        np.testing.assert_array_equal(labels, (scores >= 0.4).astype(int))
    else:
        assert labels is None
