"""Task kinds: one object per kind of problem (binary, multiclass, regression, forecast,
ranking) that owns what differs between them; see ``framework.tasks.base.Task``.

A problem names its kind (``Problem(task="binary", ...)``) and every stage asks
``problem.kind`` (or ``task_of(name)`` for a stored model's task). A new kind is a
``Task`` subclass in a module of its own, made known with ``register_task``.
"""

from __future__ import annotations

from framework.errors import FeatureRepoError
from framework.tasks.base import Task
from framework.tasks.binary import BinaryTask
from framework.tasks.forecast import ForecastTask
from framework.tasks.multiclass import MulticlassTask
from framework.tasks.ranking import RankingTask
from framework.tasks.regression import RegressionTask

__all__ = ["TASKS", "Task", "register_task", "task_of"]

TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Make ``task`` known by its name (a second kind of the same name replaces it)."""
    if not task.name or not task.metrics or not task.label_types:
        raise FeatureRepoError(
            f"A task kind needs a name, its metrics and the labels it takes; got {task!r}."
        )
    TASKS[task.name] = task
    return task


def task_of(name: str | Task) -> Task:
    """The task kind called ``name`` (a kind is returned as it is)."""
    if isinstance(name, Task):  # a kind given as an object is made known by its name
        return TASKS.get(name.name) or register_task(name)
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        known = [repr(k) for k in TASKS]
        choices = " or ".join([", ".join(known[:-1]), known[-1]] if len(known) > 1 else known)
        raise FeatureRepoError(
            f"The 'task' of a problem must be {choices}. Got {name!r} instead."
        ) from None


for _kind in (BinaryTask(), MulticlassTask(), RegressionTask(), ForecastTask(), RankingTask()):
    register_task(_kind)
