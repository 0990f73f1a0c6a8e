"""Drift statistics against scipy and hand computation; no false alarms; real shifts found."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from framework.errors import DataError
from framework.monitor.drift_stats import drift, feature_drift, ks_test, psi


def test_psi_by_hand():
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected, rel=1e-12)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    # an empty bin is floored at 1e-4, not infinite
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_matches_scipy_also_with_ties(seed):
    rng = np.random.default_rng(seed)
    for a, b in [
        (rng.normal(size=3_000), rng.normal(0.05, 1, size=20_000)),
        (rng.poisson(3, 2_000).astype(float), rng.poisson(3.2, 9_000).astype(float)),
    ]:
        d, p = ks_test(np.sort(a), b)
        expected = stats.ks_2samp(a, b, method="asymp")
        assert d == pytest.approx(expected.statistic, abs=1e-12)
        assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_numeric_feature_bins_and_rates():
    ref = pd.Series(np.arange(1_000, dtype=float))
    cur = pd.Series(np.r_[np.arange(900, dtype=float), [5_000.0] * 50, [np.nan] * 50])
    f = feature_drift("x", ref, cur)
    assert f.test == "ks" and f.kind == "numeric"
    assert len(f.reference_shares) == 12  # below the minimum, 10 deciles, above the maximum
    assert f.reference_shares == pytest.approx([0.0] + [0.1] * 10 + [0.0])
    assert f.current_shares[-1] == pytest.approx(50 / 950)  # the values above the maximum
    assert f.missing_rate == pytest.approx(0.05)
    assert f.out_of_range_rate == pytest.approx(50 / 950)
    assert f.js_distance == pytest.approx(
        jensenshannon(f.reference_shares, f.current_shares, base=2)
    )


def test_categorical_feature_against_chi2_contingency_and_unseen_rate():
    ref = pd.Series(["a"] * 600 + ["b"] * 300 + ["c"] * 100)
    cur = pd.Series(["a"] * 500 + ["b"] * 300 + ["c"] * 150 + ["z"] * 50 + [None] * 10)
    f = feature_drift("plan", ref, cur)
    table = np.array([[600, 300, 100, 0], [500, 300, 150, 50]])
    stat, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert f.test == "chi2" and f.p_value == pytest.approx(p) and f.statistic == pytest.approx(stat)
    assert f.out_of_range_rate == pytest.approx(50 / 1000)
    assert f.missing_rate == pytest.approx(10 / 1010)
    assert f.bins == ["a", "b", "c", "(unseen)"]


def _population(n: int, rng, google_rate: float = 2.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "views_google": rng.poisson(google_rate, n).astype("int32"),
            "views_facebook": rng.poisson(1.5, n).astype("int32"),
            "amount": rng.gamma(2.0, 40.0, n),
            "age": pd.array(rng.integers(18, 80, n), dtype="Int64"),
            "plan": rng.choice(["free", "basic", "pro"], n, p=[0.6, 0.3, 0.1]).astype(object),
            "score": rng.beta(2, 5, n),
        }
    )


FEATURES = ["views_google", "views_facebook", "amount", "age", "plan"]


def test_no_false_alarm_on_fresh_samples_of_the_training_distribution():
    reference = _population(20_000, np.random.default_rng(100))
    for seed in range(20):
        current = _population(50_000, np.random.default_rng(seed))
        report = drift(reference, current, FEATURES)
        assert not report.drifted and report.action == "none", report.to_text()
        assert all(f.psi < 0.01 for f in report.features)


def test_a_shifted_feature_is_found_and_only_it():
    rng = np.random.default_rng(7)
    reference = _population(20_000, rng)
    current = _population(50_000, rng, google_rate=4.0)  # marketing moved traffic to google
    report = drift(reference, current, FEATURES, retrain_when=2)
    drifted = [f.name for f in report.features if f.drifted]
    assert drifted == ["views_google"]
    assert report.action == "investigate" and report.drifted
    current["score"] = current["score"] ** 0.5  # the scores moved too
    report = drift(reference, current, FEATURES)
    assert report.prediction_drift.drifted and report.action == "retrain"
    out = report.to_json()
    assert {"features", "prediction_drift", "drifted", "action"} <= set(out)
    assert set(out["features"][0]) >= {"name", "psi", "p_value", "test", "drifted"}


def test_bad_current_data_is_a_clear_error():
    reference = _population(1_000, np.random.default_rng(1))
    with pytest.raises(DataError, match="empty"):
        drift(reference, reference.head(0), FEATURES)
    with pytest.raises(DataError, match=r"lacks feature\(s\) \['plan'\]"):
        drift(reference, reference.drop(columns=["plan"]), FEATURES)
    wrong = reference.assign(amount="lots")
    with pytest.raises(DataError, match="'amount' is numeric in the reference"):
        drift(reference, wrong, FEATURES)


def test_a_shift_out_of_a_constant_reference_is_seen_by_psi():
    ref = pd.Series(np.full(1_000, 2.0))  # e.g. weekly cutoffs: always the same weekday
    for value in (0.0, 5.0):
        f = feature_drift("day_of_week", ref, pd.Series(np.full(500, value)))
        assert f.psi > 1 and f.out_of_range_rate == 1.0 and f.drifted


def test_the_declared_policy_recommends_retraining_on_a_performance_drop_or_new_labels():
    from framework.declare.problems import Monitoring
    from framework.monitor.drift import apply_policy

    reference = _population(2_000, np.random.default_rng(3))
    quiet = drift(reference, _population(2_000, np.random.default_rng(4)), FEATURES)
    assert quiet.action == "none"
    realized = {"realized": {"n": 500, "pr_auc": 0.70}, "test": {"pr_auc": 0.80}}
    dropped = apply_policy(quiet, realized, Monitoring(performance_drop=0.05), "pr_auc", True)
    assert dropped.action == "retrain" and "worse by 0.1000" in dropped.reasons[0]
    assert not dropped.drifted  # the data did not drift; the performance did
    assert apply_policy(quiet, realized, Monitoring(performance_drop=0.2), "pr_auc", True) is quiet
    labels = apply_policy(
        quiet, realized, Monitoring(performance_drop=None, new_labels=400), "pr_auc", True
    )
    assert labels.action == "retrain" and "500 predictions have labels" in labels.reasons[0]
    mae = {"realized": {"n": 50, "mae": 70.0}, "test": {"mae": 55.0}}
    assert apply_policy(
        quiet, mae, Monitoring(performance_drop=5.0, min_rows=50), "mae", False
    ).action == ("retrain")
    # 50 labels, below the default minimum of 100: reported with its size, not acted on
    few = apply_policy(quiet, mae, Monitoring(performance_drop=5.0), "mae", False)
    assert few.action == "none" and "only 50 labeled predictions" in few.reasons[-1]
    assert apply_policy(quiet, None, Monitoring(), "mae", False) is quiet


def test_drift_on_too_few_rows_is_reported_with_its_size_and_not_acted_on():
    """14 rows once recommended retraining; below the declared minimum it says why not."""
    rng = np.random.default_rng(9)
    reference = _population(20_000, rng)
    current = _population(14, rng, google_rate=12.0)
    current["score"] = 0.99
    acted = drift(reference, current, FEATURES)
    assert acted.action == "retrain"  # the tests do fire on these 14 rows
    report = drift(reference, current, FEATURES, min_rows=100)
    assert report.action == "none" and report.rows == 14
    assert "only 14 current rows" in report.reasons[0] and "min_rows" in report.reasons[0]
    assert all(r.startswith("not acted on") for r in report.reasons[1:])
    assert "only 14 current rows" in report.to_text()
    enough = drift(reference, _population(500, rng, google_rate=12.0), FEATURES, min_rows=100)
    assert enough.action != "none"


def test_calendar_features_are_reported_but_not_counted():
    """Traffic of another month moves the calendar features by nature, not by drift."""
    rng = np.random.default_rng(8)
    reference = _population(20_000, rng)
    current = _population(20_000, rng)
    reference["event_month"] = rng.integers(1, 7, len(reference))  # trained on Jan-Jun
    current["event_month"] = 11  # served in November
    reference["event_day"] = rng.integers(1, 29, len(reference))
    current["event_day"] = rng.integers(1, 3, len(current))
    features = [*FEATURES, "event_month", "event_day"]
    counted = drift(reference, current, features, retrain_when=2)
    assert counted.action == "retrain" and counted.drifted  # without the rule: a false alarm
    report = drift(
        reference,
        current,
        features,
        retrain_when=2,
        uncounted=frozenset({"event_month", "event_day"}),
    )
    assert report.action == "none" and not report.drifted
    moved = {f.name: (f.drifted, f.counted) for f in report.features if f.name.startswith("event_")}
    assert moved == {"event_month": (True, False), "event_day": (True, False)}
    assert "2 calendar feature(s) moved" in report.to_text() and "calendar" in report.to_text()
    # a real shift beside them is still found
    shifted = _population(20_000, rng, google_rate=4.0)
    shifted["event_month"], shifted["event_day"] = 11, 1
    report = drift(reference, shifted, features, uncounted=frozenset({"event_month", "event_day"}))
    assert [f.name for f in report.features if f.drifted and f.counted] == ["views_google"]
    assert report.action == "investigate"


def test_the_example_problems_calendar_features_come_from_date_expansions(applied_repo):
    from framework.monitor.drift import calendar_features

    names = calendar_features(applied_repo, applied_repo.problem("churn"))
    assert names == {
        "event_year",
        "event_month",
        "event_day",
        "event_day_of_week",
        "event_is_weekend",
        "event_days_since_holiday",
        "event_days_until_holiday",
    }
