"""Where models registered before the task kinds moved find their baselines: a pickle
names ``framework.models.naive.SeasonalNaive``; they live in ``framework.tasks.naive``."""

from framework.tasks.naive import Popularity, SeasonalNaive

__all__ = ["Popularity", "SeasonalNaive"]
