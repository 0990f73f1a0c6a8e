"""A second domain for rankings: a news site's article lists (readers x articles).

Each page view (``page_view``) shows a reader 8 articles (drawn by a popularity that drifts from the
articles' true quality) in positions 1..8; the reader clicks an article with a
probability that falls with the position, rises with the article's quality and is
four times higher for an article the reader clicked before (readers come back to
their stories). The truth is known, so a test can check that a ranking model finds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

REPO_PY = """
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FileSource, ValueType

from framework import AnyEvent, Aggregate, EventSpine, Problem, WindowedFeatureView

reader = Entity(name="reader", join_keys=["reader_id"], value_type=ValueType.INT64)
article = Entity(name="article", join_keys=["article_id"], value_type=ValueType.STRING)
DATA = Path(__file__).parent / "data"
reads = FileSource(name="reads", path=str(DATA / "reads.parquet"), timestamp_field="ts")

article_engagement = WindowedFeatureView(
    name="article_engagement",
    entity=article,
    source=reads,
    windows=[timedelta(days=3), 14],
    aggregates=[
        Aggregate("shown", "count", where='kind == "impression"'),
        Aggregate("clicks", "count", where='kind == "click"'),
    ],
)
reader_article = WindowedFeatureView(
    name="reader_article",
    entities=[reader, article],
    source=reads,
    windows=[30],
    aggregates=[Aggregate("clicks", "count", where='kind == "click"')],
)
reader_activity = WindowedFeatureView(
    name="reader_activity",
    entity=reader,
    source=reads,
    windows=[14],
    aggregates=[Aggregate("clicks", "count", where='kind == "click"')],
)
article_lists = FeatureService(
    name="article_lists", features=[article_engagement, reader_article, reader_activity]
)

front_page = Problem(
    name="front_page",
    task="ranking",
    events=reads,
    label=AnyEvent(horizon=timedelta(minutes=30), where='kind == "click"'),
    spine=EventSpine(where='kind == "impression"'),
    feature_service="article_lists",
    group="page_view",
    item="article_id",
    popularity="article_clicks_count_14d",
    metric="ndcg",
    top_k=5,
    success_threshold=0.0,
    tuning_budget=2,
)
"""


# with logged propensities the problem declares them (and explores 10% of /rank's lists)
LOGGED_AT = '    group="page_view",\n'
LOGGED = (
    LOGGED_AT + '    position="position",\n    propensity="propensity",\n    exploration=0.1,\n'
)


def generate(
    readers: int = 300,
    articles: int = 40,
    days: int = 40,
    per_day: int = 60,
    seed: int = 0,
    explore: float | None = None,
) -> pd.DataFrame:
    """The reads. ``explore``: None draws and orders each page by popularity at random (no
    propensities logged); a share instead orders the drawn page by popularity and shuffles
    that share of pages uniformly, logging each impression's ``propensity``."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(0, 1, articles)
    shown_weight = np.exp(0.5 * quality + rng.normal(0, 1, articles))  # popularity != quality
    shown_weight /= shown_weight.sum()
    bias = 1 / np.log2(np.arange(8) + 2.0)
    clicked: set[tuple[int, int]] = set()
    t0 = pd.Timestamp("2025-03-01", tz="UTC").value // 1000
    rows = []
    n = days * per_day
    times = np.sort(rng.integers(0, days * 86_400_000_000, n)) + t0
    for r, t in enumerate(times):
        user = int(rng.integers(1, readers + 1))
        shown = rng.choice(articles, 8, replace=False, p=shown_weight)
        propensity = np.full(8, np.nan)
        if explore is not None:
            shown = shown[np.argsort(-shown_weight[shown], kind="stable")]
            if rng.random() < explore:
                shown = rng.permutation(shown)
            best = shown_weight[shown] == np.sort(shown_weight[shown])[::-1]
            propensity = (1 - explore) * best + explore / 8
        for pos, a in enumerate(shown):
            rows.append(
                (user, f"art_{a:03d}", int(t), "impression", f"pv{r}", pos + 1, propensity[pos])
            )
            p = bias[pos] * 0.35 / (1 + np.exp(-(quality[a] - 1.0)))
            if (user, a) in clicked:
                p = min(1.0, 4 * p)
            if rng.random() < p:
                clicked.add((user, a))
                dt = int(rng.integers(1_000_000, 600_000_000))
                rows.append(
                    (user, f"art_{a:03d}", int(t) + dt, "click", f"pv{r}", pos + 1, propensity[pos])
                )
    columns = ["reader_id", "article_id", "ts", "kind", "page_view", "position", "propensity"]
    frame = pd.DataFrame(rows, columns=columns)
    if explore is None:
        frame = frame.drop(columns="propensity")
    frame["ts"] = pd.to_datetime(frame["ts"], unit="us", utc=True).astype("datetime64[us, UTC]")
    return frame.sort_values("ts", kind="stable", ignore_index=True)


def write_ranking_repo(dest: Path, **kw) -> Path:
    """The repo (feature_store.yaml of the test profile, repo.py) with generated data."""
    from tests.helpers import EXAMPLE_REPO, production, set_project, set_registry

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "data").mkdir(exist_ok=True)
    path = dest / "data" / "reads.parquet"
    generate(**kw).to_parquet(path, index=False)
    name = "feature_store.production.yaml" if production() else "feature_store.yaml"
    text = (EXAMPLE_REPO / name).read_text()
    text = set_registry(set_project(text)) if production() else set_project(text, "news")
    (dest / "feature_store.yaml").write_text(text)
    logged = kw.get("explore") is not None
    (dest / "repo.py").write_text(REPO_PY.replace(LOGGED_AT, LOGGED) if logged else REPO_PY)
    return dest
