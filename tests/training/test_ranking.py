"""Rankings: the metrics against brute force, the declaration's checks, the labels of
an impression spine, and training on a second domain (a news site's article lists)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from feast import FileSource
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.declare.problems import AnyEvent, Cutoffs, EventSpine, Problem
from framework.errors import FeatureRepoError
from framework.tasks.lists import group_sizes, ranking_metrics
from tests.ranking_repo import generate, write_ranking_repo

pytestmark = pytest.mark.stores  # touches a store, a registry or a database (see conftest)


def _brute_force(y, score, groups, k):
    """Per list, plain loops: sort by score (descending), DCG with gain 2^y - 1 and
    discount log2(rank + 1), AP over min(k, positives), CTR over min(k, size)."""
    ndcg, ap, ctr = [], [], []
    for g in dict.fromkeys(groups):
        idx = [i for i in range(len(y)) if groups[i] == g]
        ranked = sorted(idx, key=lambda i: -score[i])
        labels = [y[i] for i in ranked]
        ideal = sorted(labels, reverse=True)

        def dcg(values):
            return sum((2**v - 1) / np.log2(r + 2) for r, v in enumerate(values[:k]))

        hits = [1 if v > 0 else 0 for v in labels]
        ctr.append(sum(hits[:k]) / min(k, len(labels)))
        if sum(hits) == 0:
            continue
        ndcg.append(dcg(labels) / dcg(ideal))
        found, precisions = 0, []
        for r, h in enumerate(hits[:k]):
            if h:
                found += 1
                precisions.append(found / (r + 1))
        ap.append(sum(precisions) / min(k, sum(hits)))
    return {
        "ndcg": np.mean(ndcg) if ndcg else np.nan,
        "map": np.mean(ap) if ap else np.nan,
        "ctr": np.mean(ctr),
    }


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    lists=st.integers(1, 12),
    k=st.sampled_from([1, 3, 5, 10]),
    graded=st.booleans(),
)
def test_metrics_match_brute_force(seed, lists, k, graded):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 15, lists)
    groups = np.repeat([f"r{i}" for i in range(lists)], sizes)
    y = rng.integers(0, 4 if graded else 2, len(groups)) * (rng.random(len(groups)) < 0.4)
    score = rng.normal(size=len(groups))  # no ties: the order is the scores'
    got = ranking_metrics(y, score, groups, k)
    want = _brute_force(list(y), list(score), list(groups), k)
    for name in ("ndcg", "map", "ctr"):
        if np.isnan(want[name]):
            assert np.isnan(got[name])
        else:
            assert got[name] == pytest.approx(want[name], abs=1e-12), name
    # the rows of a list need not be contiguous, nor lists in any order
    order = rng.permutation(len(groups))
    again = ranking_metrics(y[order], score[order], groups[order], k)
    for name in ("ndcg", "map", "ctr"):
        assert again[name] == pytest.approx(got[name], nan_ok=True)


def test_perfect_and_reversed_orders_bound_the_metrics():
    groups = np.repeat(np.arange(50), 10)
    y = np.tile([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], 50)
    best = ranking_metrics(y, -np.arange(500.0), groups, 2)
    worst = ranking_metrics(y, np.arange(500.0), groups, 2)
    assert best["ndcg"] == pytest.approx(1) and best["map"] == pytest.approx(1)
    assert best["ctr"] == pytest.approx(1)
    assert worst["ndcg"] == 0 and worst["map"] == 0 and worst["ctr"] == 0


def test_ties_are_not_broken_by_the_logged_order():
    """Equal scores must not inherit the order of the rows (the logging policy's, with
    its position bias): the positive first in every list gets the chance level."""
    groups = np.repeat(np.arange(2_000), 10)
    y = np.tile([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 2_000)
    flat = ranking_metrics(y, np.zeros(len(y)), groups, 5)
    assert flat["ctr"] == pytest.approx(0.1, abs=0.01)  # chance: 1 positive in 10, 5 shown
    assert flat["ndcg"] < 0.6


def test_group_sizes_need_contiguous_lists():
    assert group_sizes(np.array([3, 3, 1, 1, 1, 7])).tolist() == [2, 3, 1]
    with pytest.raises(ValueError, match="contiguous"):
        group_sizes(np.array([1, 2, 1]))


def _declare(**kw):
    source = FileSource(name="s", path="/tmp/x.parquet", timestamp_field="ts")
    args = {
        "name": "r",
        "task": "ranking",
        "events": source,
        "label": AnyEvent(horizon=timedelta(minutes=30), where='kind == "click"'),
        "spine": EventSpine(where='kind == "impression"'),
        "feature_service": "fs",
        "metric": "ndcg",
        "success_threshold": 0.5,
        "entity": ("reader_id", "article_id"),
        "group": "page_view",
        "item": "article_id",
        "popularity": "article_clicks_count_14d",
    }
    return Problem(**{**args, **kw})


def test_a_ranking_declaration_is_checked():
    problem = _declare()
    assert problem.item_keys == ("article_id",) and problem.query_keys == ("reader_id",)
    assert problem.models == ("baseline", "lightgbm", "logistic_regression")
    for missing in ("group", "item", "popularity"):
        with pytest.raises(FeatureRepoError, match=f"needs {missing}="):
            _declare(**{missing: None})
    with pytest.raises(FeatureRepoError, match="some, not all"):
        _declare(item=("reader_id", "article_id"))
    with pytest.raises(FeatureRepoError, match="some, not all"):
        _declare(item="page")
    with pytest.raises(FeatureRepoError, match="EventSpine"):
        _declare(spine=Cutoffs(every=1))
    with pytest.raises(FeatureRepoError, match="ndcg"):
        _declare(metric="pr_auc")
    with pytest.raises(FeatureRepoError, match="belong to a ranking"):
        _declare(task="binary", metric="pr_auc")
    with pytest.raises(FeatureRepoError, match="top_k"):
        _declare(top_k=0)


@pytest.fixture(scope="module")
def news(tmp_path_factory):
    from framework.declare.repo import FeatureRepo
    from framework.prepare.apply import apply

    repo = FeatureRepo(write_ranking_repo(tmp_path_factory.mktemp("news") / "repo"))
    apply(repo)
    return repo


def test_impression_labels_and_lists_match_brute_force(news):
    """One row per impression, in its page view, labelled 1 when the same reader clicks
    the same article within 30 minutes after it; features are read 1 µs before it."""
    from framework.training.labels import build_observations

    events = pd.read_parquet(news.data_dir / "reads.parquet")
    observed = build_observations(news.problem("front_page"))
    shown = events[events.kind == "impression"]
    clicks = events[events.kind == "click"]
    assert len(observed) == len(shown) - int(
        (shown.ts > events.ts.max() - pd.Timedelta(minutes=30)).sum()
    )
    sample = observed.sample(400, random_state=0)
    for row in sample.itertuples():
        t = row.event_timestamp + pd.Timedelta(microseconds=1)
        hit = clicks[
            (clicks.reader_id == row.reader_id)
            & (clicks.article_id == row.article_id)
            & (clicks.ts > t)
            & (clicks.ts <= t + pd.Timedelta(minutes=30))
        ]
        assert row.label == (1 if len(hit) else 0)
        page = shown[(shown.page_view == row.page_view) & (shown.article_id == row.article_id)]
        assert len(page) == 1 and page.ts.iloc[0] == t and page.reader_id.iloc[0] == row.reader_id
    assert observed.label.sum() > 100  # the positives were reached, not only the zeros


def test_a_ranking_trains_by_list_and_beats_popularity(news):
    """LambdaRank (grouped by page view) and the pointwise classifier against the
    popularity order; readers return to stories they clicked, which popularity cannot
    see and the reader x article history can."""
    from framework.training.candidates import train
    from framework.training.dataset import build_training_set

    ts = build_training_set(news, "front_page")
    problem = news.problem("front_page")
    assert "page_view" in ts.frame.columns and "page_view" not in ts.features
    result = train(ts, problem)
    split = result.split
    parts = [set(getattr(split, p)["page_view"]) for p in ("train", "validation", "test")]
    assert not (parts[0] & parts[1]) and not (parts[1] & parts[2]) and not (parts[0] & parts[2])
    sizes = pd.concat([split.train, split.validation, split.test]).groupby("page_view").size()
    assert (sizes == ts.frame.groupby("page_view").size().reindex(sizes.index)).all()
    names = [c.name for c in result.candidates]
    assert names == ["baseline", "lightgbm", "logistic_regression"]
    assert result.baseline_test["lists"] == split.test["page_view"].nunique()
    assert result.test["ndcg"] > result.baseline_test["ndcg"] + 0.01
    assert result.test["map"] > result.baseline_test["map"]
    text = result.to_text()
    assert "ndcg" in text and "ctr" in text
    # the baseline is the popularity feature's order: its metrics are that order's
    base = ranking_metrics(
        split.test["label"].to_numpy(),
        split.test["article_clicks_count_14d"].to_numpy(dtype=float),
        split.test["page_view"].to_numpy(),
        problem.top_k,
    )
    assert result.baseline_test["ndcg"] == pytest.approx(base["ndcg"])


def test_a_popularity_feature_the_service_lacks_is_refused(news, tmp_path):
    import dataclasses

    from framework.training.dataset import build_training_set

    problem = dataclasses.replace(news.problem("front_page"), popularity="no_such_feature")
    with pytest.raises(FeatureRepoError, match="not a feature of its feature service"):
        build_training_set(news, problem)


def test_the_generator_has_position_bias_and_repeat_readers():
    frame = generate(days=10, seed=2)
    shown = frame[frame.kind == "impression"].groupby("position").size()
    clicked = frame[frame.kind == "click"].groupby("position").size()
    rate = (clicked / shown).to_numpy()
    assert rate[0] > 2 * rate[-1]
