"""A ranking whose impressions log their position and propensity (the news domain with
a popularity order that explores 20% of its pages): the position-aware candidate, the
counterfactual CTR on the card, the promotion gate and its recorded override, the retrain
gate paired per list, and /rank's exploration through HTTP with exact propensities."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import requests

from framework.errors import FeatureRepoError, PromotionRefused
from tests.helpers import serve_app
from tests.ranking_repo import write_ranking_repo

# touches a store, a registry or a database (see conftest); trains models: slow
pytestmark = [pytest.mark.stores, pytest.mark.slow]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """The logged news repo, applied and trained (v1: a candidate, not promoted)."""
    from framework.declare.repo import FeatureRepo
    from framework.prepare.apply import apply
    from framework.training.run import run_training

    path = write_ranking_repo(tmp_path_factory.mktemp("logged") / "repo", explore=0.2)
    repo = FeatureRepo(path)
    apply(repo)
    run = run_training(repo, "front_page")
    return repo, run


def test_training_compares_the_position_aware_learner_by_counterfactual_ctr(logged):
    from framework.tasks.counterfactual_report import counterfactual_metrics

    _, run = logged
    names = [c.name for c in run.result.candidates]
    assert names == ["baseline", "lightgbm", "lightgbm_position", "logistic_regression"]
    test = run.result.test
    assert test["ctr_cf_low"] < test["ctr_cf"] < test["ctr_cf_high"]
    assert 0 < test["ctr_ips_support"] <= 1 and test["ctr_cf_lists"] > 100
    assert test["ctr_ips_low"] < test["ctr_ips"] < test["ctr_ips_high"]
    # the logging policy's own CTR@5 on test, counted plainly
    part = run.result.split.test
    top = part[part["position"] <= 5]
    per_list = top.groupby("page_view")["label"].apply(lambda s: (s > 0).mean())
    assert test["ctr_logged"] == pytest.approx(per_list.mean(), abs=1e-12)
    # the popularity order against itself: a lift of exactly zero
    ctx = {
        "positions": part["position"].to_numpy(),
        "propensities": part["propensity"].to_numpy(),
        "baseline": part["article_clicks_count_14d"].to_numpy(dtype=float),
    }
    groups = pd.factorize(part["page_view"])[0]
    same = counterfactual_metrics(
        part["label"].to_numpy(), ctx["baseline"], groups, 5, {**ctx, "k": 5}
    )
    assert same["ctr_cf_lift"] == 0 and same["ctr_cf_lift_low"] == 0
    card = (run.artifact.path / "card.html").read_text()
    assert "Counterfactual CTR@5" in card and "Lift over the popularity order" in card


def test_the_gate_refuses_a_lift_not_clear_of_zero_and_records_an_override(logged):
    from framework.models.registry import registry_of
    from framework.tasks import task_of

    repo, run = logged
    meta = run.artifact.meta
    task = task_of("ranking")
    registry = registry_of(repo)
    # the same model with a lift clear of zero, and with one that is not
    clear = {**meta.metrics["test"], "ctr_cf_lift": 0.02, "ctr_cf_lift_low": 0.001}
    assert task.promotion_refusal(meta.with_(metrics={"test": clear})) is None
    murky = {**clear, "ctr_cf_lift_low": -0.001}
    assert "not clear of zero" in task.promotion_refusal(meta.with_(metrics={"test": murky}))
    none = {k: v for k, v in clear.items() if not k.startswith("ctr_cf")}
    refusal = task.promotion_refusal(meta.with_(metrics={"test": none}))
    assert "biased by the logging policy" in refusal and "propensity=" in refusal
    if task.promotion_refusal(meta) is None:  # this run's own evidence decides
        registry.promote("front_page", run.artifact.version)
        return
    with pytest.raises(PromotionRefused, match="--override"):
        registry.promote("front_page", run.artifact.version)
    assert registry.stages("front_page").get("production") is None
    registry.promote("front_page", run.artifact.version, override="reviewed by hand")
    stages = registry.stages("front_page")
    assert stages["production"] == run.artifact.version
    assert stages["override"]["reason"] == "reviewed by hand"
    assert "not clear of zero" in stages["override"]["refused"]


def test_the_cli_promotes_only_with_a_reason(logged, tmp_path):
    from click.testing import CliRunner

    from framework.cli import main
    from framework.tasks import task_of

    repo, run = logged
    if task_of("ranking").promotion_refusal(run.artifact.meta) is None:
        pytest.skip("this run's lift is clear of zero: nothing to refuse")
    args = ["--repo", str(repo.path), "models", "promote", "front_page", run.artifact.version]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code != 0 and "--override" in refused.output
    done = CliRunner().invoke(main, [*args, "--override", "an A/B test will decide"])
    assert done.exit_code == 0, done.output
    assert "override recorded: an A/B test will decide" in done.output


def test_retrain_pairs_the_challenger_with_the_champion_per_list(logged):
    from framework.models.registry import registry_of
    from framework.monitor.retrain import retrain

    repo, run = logged
    registry = registry_of(repo)
    registry.promote("front_page", run.artifact.version, override="the champion to beat")
    decision = retrain(repo, "front_page")
    # the same data and seed: the challenger orders every list as the champion does
    assert decision.challenger_score == pytest.approx(decision.champion_score)
    assert not decision.promoted
    # refused against popularity, or (when that lift is clear) against the champion
    assert (
        "not clear of zero" in decision.reason
        or "lift over the champion is +0.0000" in decision.reason
    ), decision.reason


def test_rank_explores_the_declared_share_with_exact_propensities(logged):
    from framework.deploy.service import create_app
    from framework.features.materialize import materialize
    from framework.models.registry import registry_of

    repo, run = logged
    if registry_of(repo).stages("front_page").get("production") is None:
        registry_of(repo).promote("front_page", run.artifact.version, override="serving test")
    end = pd.read_parquet(repo.data_dir / "reads.parquet")["ts"].max()
    materialize(repo, end=end.to_pydatetime())
    server, thread, url = serve_app(create_app(repo))
    share, k = repo.problem("front_page").exploration, 5
    explored = 0
    try:
        with requests.Session() as http:
            for reader in range(1, 301):
                body = {
                    "problem": "front_page",
                    "query": {"reader_id": reader, "event_timestamp": int(end.timestamp())},
                    "candidates": [{"article_id": f"art_{i:03d}"} for i in range(20)],
                    "k": k,
                }
                got = http.post(f"{url}/rank", json=body, timeout=30).json()
                ranked = got["ranked"]
                assert [r["rank"] for r in ranked] == list(range(1, k + 1))
                # the policy's own rank of each shown item: by score, descending
                own = np.argsort(np.argsort([-r["score"] for r in ranked], kind="stable"))
                want = np.where(own == np.arange(k), (1 - share) + share / k, share / k)
                assert [r["propensity"] for r in ranked] == pytest.approx(want, abs=1e-12)
                if got["explored"]:
                    explored += 1
                else:
                    assert (own == np.arange(k)).all()  # not explored: the policy's order
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    # 300 lists at 10%: 30 expected (sd 5.2); none or half would be a bug
    assert 10 <= explored <= 55, explored


def test_exploration_is_declared_with_its_columns():
    from tests.ranking_repo import REPO_PY

    assert "exploration" not in REPO_PY  # off by default
    from datetime import timedelta

    from feast import FileSource

    from framework.declare.problems import AnyEvent, EventSpine, Problem

    src = FileSource(name="s", path="/tmp/s.parquet", timestamp_field="ts")
    base = dict(
        name="p",
        task="ranking",
        events=src,
        label=AnyEvent(horizon=timedelta(hours=1), where='kind == "click"'),
        spine=EventSpine(where='kind == "impression"'),
        feature_service="fs",
        entity=("u", "i"),
        group="g",
        item="i",
        popularity="pop",
        metric="ndcg",
        success_threshold=0.0,
    )
    for bad, match in (
        ({"propensity": "propensity"}, "needs position"),
        ({"exploration": 0.9}, "between 0"),
        ({"metric": "ctr_cf"}, "propensit"),
        ({"candidates": ("lightgbm_position",)}, "position="),
    ):
        with pytest.raises(FeatureRepoError, match=match):
            Problem(**{**base, **bad})
    ok = Problem(**base, position="pos", propensity="prop", exploration=0.05)
    assert "lightgbm_position" in ok.models
    assert "lightgbm_position" not in Problem(**base).models
    assert json.dumps(ok.spec())  # plain data
