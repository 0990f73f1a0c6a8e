"""Training, the registry and the CLI of the training stage, on the small example repo."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from framework.errors import ArtifactError, DataError
from framework.models.registry import registry_of
from framework.models.scoring import to_model_frame
from framework.tasks.splitters import split_by_time
from tests.helpers import cli


@pytest.fixture(scope="module")
def trained(trained_repo):
    """The session's training runs of both problems (read-only)."""
    return trained_repo[1]


def test_split_is_ordered_in_time_and_purged():
    t = pd.date_range("2025-01-01", periods=40, freq="7D", tz="UTC")
    frame = pd.DataFrame({"event_timestamp": np.repeat(t, 3), "label": 0})
    split = split_by_time(frame, horizon_days=30)
    train, val, test = (p.event_timestamp for p in (split.train, split.validation, split.test))
    horizon = pd.Timedelta(days=30)
    assert train.max() + horizon < val.min() and val.max() + horizon < test.min()
    assert len(test) == 6 * 3  # the last 15% of 40 observation times
    # validation keeps its 15% (6 weeks) after the purge: the gap is taken before it
    assert split.validation.event_timestamp.nunique() == 6
    assert val.max() == t[29] and val.min() == t[24]  # t[30..33]: label windows reach test
    assert train.max() == t[19] and split.purged == 8 * 3  # t[20..23] and t[30..33]
    assert split.ranges()["validation"][3:] == [6, 35.0]
    with pytest.raises(DataError, match="at least 9 observation times"):
        split_by_time(frame.head(6 * 3), horizon_days=30)
    with pytest.raises(DataError, match=r"10 observation times\): after the test split's 3"):
        split_by_time(frame.head(30), horizon_days=30)
    with pytest.raises(DataError, match="keeps 0 observation times"):
        split_by_time(frame.head(30), horizon_days=30, min_times=1)
    split = split_by_time(frame.head(60), horizon_days=30)
    assert split.test.event_timestamp.nunique() == 3
    assert split.validation.event_timestamp.nunique() == 3


def test_the_split_warns_of_small_parts_a_large_purge_and_a_heavy_test():
    # 40 weekly times, 300 rows each, a 30-day horizon: 20% purged (8 of 40 times), the
    # parts are 6 weeks with 1,800 rows each
    t = pd.date_range("2025-01-01", periods=40, freq="7D", tz="UTC")
    steady = pd.DataFrame({"event_timestamp": np.repeat(t, 300), "label": 0})
    assert split_by_time(steady, horizon_days=30).warnings() == []
    # a longer horizon purges more: 40-day windows take 10 of 40 times (25%)
    purged = split_by_time(steady, horizon_days=40).warnings()
    assert len(purged) == 1 and purged[0].startswith("the purge between the parts removed 25%")
    # few rows per time: validation and test hold 6 x 20 = 120 rows (< 200)
    thin = split_by_time(steady.groupby("event_timestamp").head(20), horizon_days=30)
    said = thin.warnings()
    assert [w.split(" holds")[0] for w in said] == ["validation", "test"]
    assert "only 120 rows over 35 days" in said[0]
    # traffic that surges at the end: the last 6 weeks hold 20x the rows of the others
    counts = np.where(np.arange(40) >= 34, 6_000, 50)
    surge = pd.DataFrame({"event_timestamp": np.repeat(t, counts), "label": 0})
    heavy = split_by_time(surge, horizon_days=30)
    assert len(heavy.test) > len(heavy.train)
    assert heavy.warnings()[-1].startswith(f"test ({len(heavy.test):,} rows) outweighs train")
    # 4 daily times per part span 3 days: short, even with many rows
    d = pd.date_range("2025-01-01", periods=30, freq="1D", tz="UTC")
    daily = split_by_time(pd.DataFrame({"event_timestamp": np.repeat(d, 500)}), horizon_days=0)
    assert [w.split(" holds")[0] for w in daily.warnings()] == ["validation", "test"]
    assert "2,000 rows over 3 days" in daily.warnings()[0]


def test_winner_beats_the_baseline_on_test(trained):
    churn, spend = trained["churn"].result, trained["spend"].result
    assert churn.test["pr_auc"] > churn.baseline_test["pr_auc"] + 0.1
    assert spend.test["mae"] < spend.baseline_test["mae"]
    names = {c.name for c in churn.candidates}
    assert names == {"baseline", "lightgbm", "logistic_regression", "random_forest"}
    tuned = next(c for c in churn.candidates if c.name == "lightgbm")
    assert tuned.tuning["configurations"] == 8 and "num_leaves" in tuned.tuning["best_params"]
    assert 0 < churn.decision_threshold < 1


def test_artifact_carries_what_serving_and_monitoring_need(trained):
    artifact = trained["churn"].artifact
    meta = artifact.meta
    assert meta.feature_service == "churn_model_v1" and len(meta.features) == 31
    assert meta.dataset["hash"] == trained["churn"].training_set.hash
    assert meta.reference["features"]["user_events_count_30d"]["quantiles"]
    assert meta.libraries["lightgbm"] == "4.7.0" and meta.stage == "candidate"
    model = artifact.load_model()
    frame = trained["churn"].result.split.test
    scores = model.predict_proba(to_model_frame(frame, meta.features))[:, 1]
    np.testing.assert_allclose(scores, trained["churn"].result.test_scores)
    card = json.loads((artifact.path / "card.json").read_text())
    assert card["curves"]["roc"]["fpr"] and card["feature_importance"]
    assert "<img" in (artifact.path / "card.html").read_text()


def test_registry_stages_and_tamper_refusal(trained_copy, trained):
    registry = registry_of(trained_copy)
    version = trained["spend"].artifact.version
    registry.promote("spend", version)
    assert registry.get("spend").version == version
    assert registry.stage_of("spend", version) == "production"
    with pytest.raises(ArtifactError, match="no model v99"):
        registry.get("spend", "v99")
    with pytest.raises(ArtifactError, match="not a model version"):
        registry.get("spend", "../../etc")
    with pytest.raises(ArtifactError, match="not a problem name"):
        registry.get("../spend", "v1")
    artifact = registry.get("spend", version)
    blob = (artifact.path / "model.joblib").read_bytes()
    (artifact.path / "model.joblib").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    try:
        with pytest.raises(ArtifactError, match="does not match the checksum"):
            artifact.load_model()
    finally:
        (artifact.path / "model.joblib").write_bytes(blob)
    assert artifact.load_model() is not None


@pytest.mark.slow
def test_cli_train_json_list_promote(applied_repo):
    result = cli(applied_repo, "train", "churn", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert {"problem", "version", "task", "winner", "metrics", "baseline", "candidates"} <= set(out)
    assert {"precision", "recall", "f1", "roc_auc", "pr_auc"} <= set(out["metrics"]["test"])
    assert (
        set(out["metrics"]) == {"validation", "test"} and out["candidates"][0]["name"] == "baseline"
    )
    listed = cli(applied_repo, "models", "list", "churn")
    assert (
        listed.exit_code == 0 and out["version"] in listed.output and "candidate" in listed.output
    )
    promoted = cli(applied_repo, "models", "promote", "churn", out["version"])
    assert promoted.exit_code == 0 and "production" in promoted.output
    bad = cli(applied_repo, "models", "promote", "churn", "v404")
    assert bad.exit_code == 1 and "no model v404" in bad.output
    unknown = cli(applied_repo, "train", "nope")
    assert unknown.exit_code == 1 and "Unknown problem 'nope'" in unknown.output


def test_cli_validate_and_dataset_build(applied_repo):
    result = cli(applied_repo, "validate", "spend")
    assert result.exit_code == 0 and "PASS" in result.output
    result = cli(applied_repo, "dataset", "build", "spend")
    assert result.exit_code == 0 and "rows" in result.output


def test_unknown_feature_service_and_single_class_are_clear_errors(applied_repo):
    import dataclasses

    from framework.errors import FeatureRepoError
    from framework.training.candidates import train
    from framework.training.dataset import TrainingSet, build_training_set

    problem = applied_repo.problem("churn")
    with pytest.raises(FeatureRepoError, match="Unknown feature service 'nope'"):
        build_training_set(applied_repo, dataclasses.replace(problem, feature_service="nope"))
    ts = build_training_set(applied_repo, problem)
    single = TrainingSet(ts.problem, ts.frame.assign(label=0), ts.features, ts.spec)
    with pytest.raises(DataError, match="single class"):
        train(single, problem)
