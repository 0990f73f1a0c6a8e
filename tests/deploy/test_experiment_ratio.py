"""The click-through-rate metric of an experiment (``per=``): the delta method against
a bootstrap over units, its coverage under the null, and the counts of the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework.declare.experiments import Experiment
from framework.errors import FeatureRepoError
from framework.monitor.experiment_report import ratio_test, report


def _clustered(rng, units, rate_a=2.0, rate_b=20.0):
    """Impressions per unit and clicks with a per-unit rate (users differ): clustered."""
    shown = rng.poisson(20, units) + 1
    rate = rng.beta(rate_a, rate_b, units)
    return rng.binomial(shown, rate).astype(float), shown.astype(float)


def test_delta_method_matches_a_bootstrap_over_units_and_beats_the_binomial():
    rng = np.random.default_rng(0)
    xc, yc = _clustered(rng, 800)
    xt, yt = _clustered(rng, 800)
    test = ratio_test(xc, yc, xt, yt)
    se = (test.ci95[1] - test.ci95[0]) / (2 * 1.959964)
    diffs = []
    for _ in range(2_000):
        a = rng.integers(0, 800, 800)
        b = rng.integers(0, 800, 800)
        diffs.append(xt[b].sum() / yt[b].sum() - xc[a].sum() / yc[a].sum())
    # 1.04x with the right variance; dropping the covariance term gives 1.09x
    assert se == pytest.approx(np.std(diffs), rel=0.06)
    # treating every impression as independent understates the noise of clustered clicks
    p_c, p_t = xc.sum() / yc.sum(), xt.sum() / yt.sum()
    naive = np.sqrt(p_c * (1 - p_c) / yc.sum() + p_t * (1 - p_t) / yt.sum())
    assert se > 1.2 * naive
    assert test.rate_control == pytest.approx(p_c) and test.rate_treatment == pytest.approx(p_t)
    assert test.lift_abs == pytest.approx(p_t - p_c)


def test_the_delta_method_variance_is_its_formula_by_hand():
    """Var(sum x / sum y) over n units = (s_xx - 2 R s_xy + R^2 s_yy) / (n * mean(y)^2),
    with the sample (co)variances written out; both arms' variances add."""
    xc, yc = [1.0, 0.0, 3.0, 2.0, 5.0], [4.0, 2.0, 6.0, 3.0, 9.0]
    xt, yt = [2.0, 1.0, 0.0, 4.0, 4.0, 3.0], [5.0, 3.0, 1.0, 6.0, 5.0, 4.0]

    def variance(x, y):
        n = len(x)
        mx, my = sum(x) / n, sum(y) / n
        r = mx / my
        sxx = sum((a - mx) ** 2 for a in x) / (n - 1)
        syy = sum((b - my) ** 2 for b in y) / (n - 1)
        sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / (n - 1)
        return r, (sxx - 2 * r * sxy + r * r * syy) / (n * my * my)

    (r_c, v_c), (r_t, v_t) = variance(xc, yc), variance(xt, yt)
    test = ratio_test(np.array(xc), np.array(yc), np.array(xt), np.array(yt))
    se = (test.ci95[1] - test.ci95[0]) / (2 * 1.959963984540054)
    assert test.rate_control == pytest.approx(r_c, abs=1e-12)
    assert test.rate_treatment == pytest.approx(r_t, abs=1e-12)
    assert se == pytest.approx((v_c + v_t) ** 0.5, rel=1e-9)
    assert test.z == pytest.approx((r_t - r_c) / (v_c + v_t) ** 0.5, rel=1e-9)


def test_the_interval_covers_a_null_effect_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered, rejected = 0, 0
    runs = 400
    for _ in range(runs):
        test = ratio_test(*_clustered(rng, 300), *_clustered(rng, 300))
        covered += test.ci95[0] <= 0 <= test.ci95[1]
        rejected += test.p_value < 0.05
    assert 0.92 <= covered / runs <= 0.98
    assert 0.02 <= rejected / runs <= 0.08
    # and a true lift is found
    xc, yc = _clustered(rng, 600)
    xt, yt = _clustered(rng, 600, rate_a=2.6)
    lifted = ratio_test(xc, yc, xt, yt)
    assert lifted.p_value < 0.01 and lifted.ci95[0] > 0
    assert lifted.ci95_rel is not None and lifted.ci95_rel[0] > 0


def test_the_report_counts_outcomes_and_exposure_events_per_unit_in_the_window():
    exp = Experiment(
        name="ab",
        problem="rank",
        control="popularity",
        treatment="production",
        unit="user_id",
        outcome='kind == "click"',
        per='kind == "impression"',
        window_days=1,
    )
    assert exp.metric == "outcome_ratio"
    rng = np.random.default_rng(3)
    t0 = pd.Timestamp("2025-01-01", tz="UTC")
    users = np.arange(1, 401)
    arms = ["treatment" if u % 2 else "control" for u in users]
    exposures = pd.DataFrame(
        {
            # the logged entity of a ranking is the (user, item) pair: the unit is the user
            "entity_id": [f'[{u}, "i1"]' for u in users],
            "arm": arms,
            "exposed_at": t0,
        }
    )
    rows = []
    for u in users:
        for _ in range(int(rng.integers(0, 12))):
            kind = "click" if rng.random() < 0.2 else "impression"
            at = t0 + pd.Timedelta(hours=float(rng.uniform(-5, 30)))  # some outside the window
            rows.append({"user_id": int(u), "item": "i1", "kind": kind, "event_timestamp": at})
    events = pd.DataFrame(rows)
    got = report(
        exp,
        exposures,
        events,
        now=t0 + pd.Timedelta(days=3),
        key=("user_id", "item"),
        kinds={"user_id": "int", "item": "string"},
    )
    inside = events[
        (events.event_timestamp > t0) & (events.event_timestamp <= t0 + pd.Timedelta(days=1))
    ]
    for arm in ("control", "treatment"):
        ids = [u for u, a in zip(users, arms, strict=True) if a == arm]
        mine = inside[inside.user_id.isin(ids)]
        assert got.arms[arm]["exposures"] == len(ids)
        assert got.arms[arm]["conversions"] == int((mine.kind == "click").sum())
        assert got.arms[arm]["events"] == int((mine.kind == "impression").sum())
    assert got.metric == "outcome_ratio" and got.p_value is not None
    text = got.to_text()
    assert "delta method" in text and "ratio" in text


def test_a_ratio_experiment_is_checked_at_declaration():
    with pytest.raises(FeatureRepoError, match="not both"):
        Experiment(
            name="e",
            problem="p",
            treatment="production",
            control="none",
            outcome='k == "c"',
            per='k == "i"',
            value="amount",
        )
    with pytest.raises(FeatureRepoError, match="per="):
        Experiment(
            name="e",
            problem="p",
            treatment="production",
            control="none",
            outcome='k == "c"',
            per="",
        )
