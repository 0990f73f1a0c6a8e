"""A/B experiments: assignment, statistics against scipy and by hand, the report's counting."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from framework.declare.experiments import Experiment, assign
from framework.errors import DataError, FeatureRepoError
from framework.monitor.experiment_report import report, srm_p_value, two_proportion_test

EXP = Experiment(
    name="offers",
    problem="churn",
    control="none",
    treatment="production",
    outcome='event_type == "conversion"',
)


def test_assignment_is_a_stable_hash_close_to_50_50_on_100k_ids():
    ids = np.arange(100_000)
    arms = assign("offers", ids)
    assert arms == assign("offers", ids)  # the same user always gets the same arm
    digest = hashlib.sha256(b"offers:42").digest()
    expected = "treatment" if int.from_bytes(digest[:8], "big") < 2**63 else "control"
    assert arms[42] == expected == EXP.arm_of(42)
    share = arms.count("treatment") / len(arms)
    assert abs(share - 0.5) < 3 * math.sqrt(0.25 / len(arms))  # within 3 standard errors
    assert srm_p_value(arms.count("control"), arms.count("treatment"), 0.5) > 0.001
    other = assign("another-salt", ids)
    agree = np.mean(np.array(arms) == np.array(other))
    assert abs(agree - 0.5) < 0.01  # a new salt re-randomizes
    uneven = assign("offers", ids, split=0.2).count("treatment") / len(ids)
    assert abs(uneven - 0.2) < 3 * math.sqrt(0.16 / len(ids))


def test_two_proportion_test_matches_scipy_and_hand_computation():
    # control 200/2000 = 10%, treatment 260/2000 = 13%
    t = two_proportion_test(200, 2000, 260, 2000)
    chi2, p, _, _ = stats.chi2_contingency([[200, 1800], [260, 1740]], correction=False)
    assert t.p_value == pytest.approx(p, rel=1e-9)
    assert t.z**2 == pytest.approx(chi2, rel=1e-9)
    pooled = 460 / 4000
    z = 0.03 / math.sqrt(pooled * (1 - pooled) * (2 / 2000))
    assert t.z == pytest.approx(z, rel=1e-12) and t.z == pytest.approx(2.9738, abs=1e-4)
    se = math.sqrt(0.1 * 0.9 / 2000 + 0.13 * 0.87 / 2000)
    assert t.lift_abs == pytest.approx(0.03)
    assert t.ci95[0] == pytest.approx(0.03 - 1.959964 * se, abs=1e-6)
    assert t.ci95[1] == pytest.approx(0.03 + 1.959964 * se, abs=1e-6)
    assert t.lift_rel == pytest.approx(0.3)
    # Katz interval of the rate ratio
    se_log = math.sqrt(1 / 260 - 1 / 2000 + 1 / 200 - 1 / 2000)
    assert t.ci95_rel[0] == pytest.approx(1.3 * math.exp(-1.959964 * se_log) - 1, abs=1e-5)
    assert t.ci95_rel[1] == pytest.approx(1.3 * math.exp(1.959964 * se_log) - 1, abs=1e-5)


def test_srm_matches_the_chi_square_by_hand():
    n_c, n_t = 5_200, 4_800
    stat = (n_c - 5_000) ** 2 / 5_000 + (n_t - 5_000) ** 2 / 5_000
    assert srm_p_value(n_c, n_t, 0.5) == pytest.approx(stats.chi2.sf(stat, 1), rel=1e-9)
    assert srm_p_value(n_c, n_t, 0.5) < 0.001


def _exposures(rows):
    frame = pd.DataFrame(rows, columns=["entity_id", "arm", "exposed_at"])
    frame["exposed_at"] = pd.to_datetime(frame["exposed_at"], utc=True, format="ISO8601")
    return frame


def _events(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "event_timestamp", "event_type"])
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True, format="ISO8601")
    return frame


def test_report_counts_outcomes_inside_each_users_window_only():
    t0 = "2025-06-01T00:00:00Z"
    exposures = _exposures(
        [
            (1, "control", t0),  # event exactly at exposure: not after it
            (2, "control", t0),  # event at exposure + 7d: counted
            (3, "control", t0),  # event 1 us after the window: not counted
            (4, "treatment", t0),  # event before exposure: not counted
            (5, "treatment", t0),  # other event type: not counted
            (6, "treatment", t0),  # two conversions: counted once
            (6, "treatment", "2025-06-02T00:00:00Z"),  # a later exposure of the same user
            (7, "treatment", "2025-06-20T00:00:00Z"),  # window still open at `now`: pending
        ]
    )
    events = _events(
        [
            (1, t0, "conversion"),
            (2, "2025-06-08T00:00:00Z", "conversion"),
            (3, "2025-06-08T00:00:00.000001Z", "conversion"),
            (4, "2025-05-31T00:00:00Z", "conversion"),
            (5, "2025-06-02T00:00:00Z", "page_view"),
            (6, "2025-06-03T00:00:00Z", "conversion"),
            (6, "2025-06-04T00:00:00Z", "conversion"),
            (7, "2025-06-21T00:00:00Z", "conversion"),
        ]
    )
    r = report(EXP, exposures, events, now=pd.Timestamp("2025-06-22T00:00:00Z"), key="user_id")
    assert r.arms["control"] == {"policy": "none", "exposures": 3, "conversions": 1, "rate": 1 / 3}
    assert r.arms["treatment"]["exposures"] == 3 and r.arms["treatment"]["conversions"] == 1
    assert r.pending == 1
    assert r.verdict.startswith("not enough data")
    keys = set(r.to_json())
    assert {"arms", "lift_abs", "lift_rel", "ci95", "p_value", "srm_p_value", "verdict"} <= keys


def _simulated(n_c: int, x_c: int, n_t: int, x_t: int):
    t0 = pd.Timestamp("2025-06-01T00:00:00Z")
    ids_c, ids_t = range(n_c), range(n_c, n_c + n_t)
    exposures = _exposures(
        [(i, "control", t0) for i in ids_c] + [(i, "treatment", t0) for i in ids_t]
    )
    converted = list(ids_c)[:x_c] + list(ids_t)[:x_t]
    events = _events([(i, t0 + pd.Timedelta(days=1), "conversion") for i in converted])
    return report(EXP, exposures, events, now=t0 + pd.Timedelta(days=30), key="user_id")


def test_verdicts():
    better = _simulated(2000, 200, 2000, 260)
    assert better.verdict.startswith("treatment is better")
    assert better.p_value == pytest.approx(two_proportion_test(200, 2000, 260, 2000).p_value)
    assert better.arms["treatment"]["rate"] == pytest.approx(0.13)
    assert _simulated(2000, 260, 2000, 200).verdict.startswith("treatment is worse")
    assert _simulated(2000, 200, 2000, 205).verdict.startswith("no significant difference")
    srm = _simulated(2300, 230, 1700, 170)
    assert srm.verdict.startswith("do not trust") and srm.srm_p_value < 0.001


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"treatment": "latest"}, "must be 'production', 'none'"),
        ({"treatment": "production", "control": "production"}, "the arms must differ"),
        ({"treatment": "v2", "split": 1.0}, "must be a share in"),
        ({"treatment": "v2", "window_days": 0}, "whole number of days"),
        ({"treatment": "v2", "name": "Bad Name"}, "lower_snake_case"),
        ({"treatment": "v2", "outcome": ""}, "outcome is a filter"),
        ({"treatment": "v2", "outcome": "conversion ="}, "not a valid expression"),
    ],
)
def test_bad_declarations(kwargs, message):
    args = {"name": "x", "problem": "churn", "outcome": 'kind == "win"', **kwargs}
    with pytest.raises(FeatureRepoError, match=message):
        Experiment(**args)


def test_the_outcome_is_a_filter_over_any_columns_and_key():
    """A source with its own key and time columns: a purchase over 50 counts."""
    t0 = pd.Timestamp("2025-06-01T00:00:00Z")
    exp = Experiment(
        name="upsell",
        problem="spend",
        control="none",
        treatment="production",
        outcome='kind == "purchase" and value > 50',
    )
    exposures = _exposures(
        [("c_1", "control", t0), ("c_2", "treatment", t0), ("c_3", "treatment", t0)]
    )
    events = pd.DataFrame(
        {
            "card_id": ["c_1", "c_2", "c_3"],
            "ts": pd.to_datetime(["2025-06-02T00:00:00Z"] * 3, utc=True),
            "kind": ["purchase", "purchase", "refund"],
            "value": [60.0, 40.0, 90.0],
        }
    )
    r = report(
        exp, exposures, events, now=t0 + pd.Timedelta(days=30), key="card_id", timestamp_field="ts"
    )
    assert r.arms["control"]["conversions"] == 1 and r.arms["treatment"]["conversions"] == 0
    with pytest.raises(DataError, match=r"lack column\(s\) \['user_id'\]"):
        report(exp, exposures, events, key="user_id", timestamp_field="ts")


def test_revenue_per_unit_with_welch_by_hand_and_a_unit_of_a_composite_key():
    """Units are users of a user x product problem; the metric is the revenue per user
    summed over purchases within the window (0 without one), judged by Welch's t-test."""
    rng = np.random.default_rng(4)
    t0 = pd.Timestamp("2025-06-01T00:00:00Z")
    exp = Experiment(
        name="offers",
        problem="pairs",
        control="none",
        treatment="production",
        outcome='kind == "purchase"',
        value="amount",
        unit="user",
    )
    users = [f"u_{i}" for i in range(400)]
    arms = dict(zip(users, assign(exp.salt_text, users), strict=True))
    exposures, rows = [], []
    for u in users:
        # two exposures of a user (two products): the user is one unit, at the first one
        exposures.append((f'["{u}","p_1"]', arms[u], t0 + pd.Timedelta(hours=1)))
        exposures.append((f'["{u}","p_2"]', arms[u], t0))
        lift = 15.0 if arms[u] == "treatment" else 0.0
        for _ in range(rng.poisson(1.0)):
            at = t0 + pd.Timedelta(days=float(rng.uniform(0, 9)))  # some after the 7d window
            rows.append((u, at, "purchase", float(rng.gamma(2.0, 10.0)) + lift))
        rows.append((u, t0 + pd.Timedelta(days=1), "view", 1000.0))  # not an outcome
    events = pd.DataFrame(rows, columns=["user", "event_timestamp", "kind", "amount"])
    r = report(
        exp,
        _exposures(exposures),
        events,
        now=t0 + pd.Timedelta(days=30),
        key=("user", "product"),
        kinds={"user": "string", "product": "string"},
    )
    # the oracle: revenue per user by hand, in (t0, t0 + 7d] (first exposure at t0)
    inside = events[
        (events.kind == "purchase")
        & (events.event_timestamp > t0)
        & (events.event_timestamp <= t0 + pd.Timedelta(days=7))
    ]
    revenue = inside.groupby("user").amount.sum().reindex(users).fillna(0.0)
    c = revenue[[arms[u] == "control" for u in users]].to_numpy()
    t = revenue[[arms[u] == "treatment" for u in users]].to_numpy()
    assert r.unit == ["user"] and r.metric == "mean_amount"
    assert r.arms["control"]["exposures"] == len(c) and r.arms["treatment"]["exposures"] == len(t)
    assert r.arms["control"]["mean"] == pytest.approx(c.mean(), rel=1e-12)
    assert r.arms["treatment"]["mean"] == pytest.approx(t.mean(), rel=1e-12)
    v_c, v_t = c.var(ddof=1) / len(c), t.var(ddof=1) / len(t)
    se = math.sqrt(v_c + v_t)
    df = (v_c + v_t) ** 2 / (v_c**2 / (len(c) - 1) + v_t**2 / (len(t) - 1))
    diff = t.mean() - c.mean()
    assert r.lift_abs == pytest.approx(diff, rel=1e-12)
    assert r.p_value == pytest.approx(2 * stats.t.sf(abs(diff / se), df), rel=1e-9)
    half = stats.t.ppf(0.975, df) * se
    assert r.ci95[0] == pytest.approx(diff - half, rel=1e-9)
    assert r.ci95[1] == pytest.approx(diff + half, rel=1e-9)
    assert r.verdict.startswith("treatment is better") and "Welch" in r.to_text()
    # with no true difference the interval covers 0 and the verdict says so
    flat = events.assign(amount=np.where(events.kind == "purchase", 10.0, events.amount))
    same = report(
        exp,
        _exposures(exposures),
        flat,
        now=t0 + pd.Timedelta(days=30),
        key=("user", "product"),
        kinds={"user": "string", "product": "string"},
    )
    assert same.p_value is not None and same.ci95[0] < same.lift_abs < same.ci95[1]


def test_a_unit_must_be_some_of_the_problem_keys():
    exp = Experiment(name="offers", problem="pairs", treatment="v2", outcome="x == 1", unit="shop")
    with pytest.raises(FeatureRepoError, match="must be some of the problem's keys"):
        exp.unit_keys(("user", "product"))
