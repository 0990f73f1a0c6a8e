"""Training sets (hash stability, contents) and their Great Expectations suite."""

from __future__ import annotations

import pandas as pd
import pytest

from framework.errors import DataError, FeatureRepoError, ValidationError
from framework.training.dataset import (
    TrainingSet,
    build_training_set,
    check_no_leakage,
    load_training_set,
)
from framework.training.validation import validate


@pytest.fixture(scope="module")
def churn_set(applied_repo):
    return build_training_set(applied_repo, "churn")


def test_building_twice_gives_the_same_hash(applied_repo, churn_set, tmp_path):
    again = build_training_set(applied_repo, "churn")
    assert again.hash == churn_set.hash
    path = churn_set.save(tmp_path)
    loaded = load_training_set(path)
    assert loaded.hash == churn_set.hash and loaded.features == churn_set.features
    summary = churn_set.summary()
    assert summary["rows"] == len(churn_set.frame) and set(summary["label_balance"]) == {"0", "1"}


def test_windowed_checks_follow_the_declarations_not_the_names(churn_set):
    assert "user_amount_sum_90d" in churn_set.spec["zero_fill"]
    group = ["user_events_count_7d", "user_events_count_30d", "user_events_count_90d"]
    assert group in churn_set.spec["window_groups"]
    # A profile feature that merely looks windowed (nulls allowed) is not held to those checks.
    frame = churn_set.frame.assign(age_30d=churn_set.frame.age)
    dtypes = {**churn_set.spec["feature_dtypes"], "age_30d": "Int64"}
    spec = {**churn_set.spec, "feature_dtypes": dtypes}
    result = validate(TrainingSet(churn_set.problem, frame, [*churn_set.features, "age_30d"], spec))
    assert frame.age_30d.isna().any() and result.status == "PASS", result.report()


def test_a_changed_saved_dataset_is_refused(churn_set, tmp_path):
    path = churn_set.save(tmp_path)
    frame = pd.read_parquet(path / "data.parquet")
    frame.loc[0, "label"] = 1 - frame.loc[0, "label"]
    frame.to_parquet(path / "data.parquet", index=False)
    with pytest.raises(DataError, match="does not match its recorded hash"):
        load_training_set(path)


def test_rows_are_labels_joined_with_point_in_time_features(applied_repo, churn_set):
    from framework.features.historical import get_historical_features
    from framework.training.labels import build_observations

    obs = build_observations(applied_repo.problem("churn"))
    assert len(churn_set.frame) == len(obs)
    assert (churn_set.frame.label.to_numpy() == obs.label.to_numpy()).all()
    sample = obs.sample(50, random_state=1).reset_index(drop=True)
    direct = get_historical_features(applied_repo, sample.drop(columns="label"), "churn_model_v1")
    merged = sample.merge(churn_set.frame, on=["user_id", "event_timestamp"], suffixes=("", "_ts"))
    pd.testing.assert_series_equal(
        merged.user_events_count_30d, direct.user_events_count_30d, check_names=False
    )


def test_clean_set_passes(churn_set):
    result = validate(churn_set)
    assert result.status == "PASS" and result.expectations > 50
    assert result.profile["plan"]["categories"] and 0 <= result.profile["age"]["null_rate"] < 0.2


def _broken(ts: TrainingSet, change) -> TrainingSet:
    frame = ts.frame.copy()
    change(frame)
    return TrainingSet(ts.problem, frame, ts.features, ts.spec)


@pytest.mark.parametrize(
    ("change", "expectation", "column"),
    [
        (
            lambda f: f.__setitem__(
                "user_purchases_count_7d", f.user_purchases_count_7d.where(f.index != 2, -1)
            ),
            "expect_column_values_to_be_between",
            "user_purchases_count_7d",
        ),
        (
            lambda f: f.__setitem__(
                "user_amount_sum_90d", f.user_amount_sum_90d.where(f.index != 5)
            ),
            "expect_column_values_to_not_be_null",
            "user_amount_sum_90d",
        ),
        (
            lambda f: f.__setitem__(
                "user_events_count_30d", f.user_events_count_30d.where(f.index != 1, 10_000)
            ),
            "expect_column_pair_values_a_to_be_greater_than_b",
            "user_events_count_90d >= user_events_count_30d",
        ),
        (
            lambda f: f.__setitem__("plan", f.plan.where(f.index != 4, "platinum")),
            "expect_column_values_to_be_in_set",
            "plan",
        ),
        (
            lambda f: f.__setitem__("label", f.label.where(f.index != 0, 2)),
            "expect_column_values_to_be_in_set",
            "label",
        ),
    ],
)
def test_injected_faults_fail_with_column_and_sample(churn_set, change, expectation, column):
    result = validate(_broken(churn_set, change), categories={"plan": ["free", "basic", "pro"]})
    assert result.status == "FAIL"
    found = [f for f in result.failures if f.expectation == expectation and f.column == column]
    assert len(found) == 1 and found[0].unexpected == 1 and found[0].sample
    with pytest.raises(ValidationError, match=column.split(" ")[0]):
        result.raise_for_failure()


def test_features_that_could_see_the_label_are_refused(applied_repo):
    from feast import Field, OnDemandFeatureView, RequestSource
    from feast.types import Int64, UnixTimestamp

    from framework.features.resolve import ViewFeatures, resolve_features

    problem = applied_repo.problem("churn")
    views = resolve_features(applied_repo, "churn_model_v1")
    check_no_leakage(problem, views)  # the example service is fine
    renamed = ViewFeatures(views[0].view, ["label"], {"label": "Int32"}, frozenset())
    with pytest.raises(FeatureRepoError, match=r"named \['label'\]"):
        check_no_leakage(problem, [*views, renamed])
    request = RequestSource(
        name="r",
        schema=[
            Field(name="event_timestamp", dtype=UnixTimestamp),
            Field(name="label", dtype=Int64),
        ],
    )
    peek = OnDemandFeatureView(
        name="peek",
        sources=[request],
        schema=[Field(name="label_copy", dtype=Int64)],
        mode="pandas",
        udf=lambda df: df[["label"]].rename(columns={"label": "label_copy"}),
        udf_string="",
    )
    with pytest.raises(FeatureRepoError, match=r"reads request field\(s\) \['label'\]"):
        check_no_leakage(
            problem,
            [*views, ViewFeatures(peek, ["label_copy"], {"label_copy": "Int64"}, frozenset())],
        )
