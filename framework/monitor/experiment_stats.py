"""The statistics of an A/B experiment: two proportions (the lift with its 95% interval,
the pooled z-test), means (Welch's test), ratios of sums over units (the delta method),
and the sample-ratio-mismatch check of the arms' sizes against the declared split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framework.errors import DataError

__all__ = [
    "TwoProportionTest",
    "ratio_test",
    "srm_p_value",
    "two_proportion_test",
    "welch_test",
]


@dataclass(frozen=True)
class TwoProportionTest:
    rate_control: float
    rate_treatment: float
    lift_abs: float
    ci95: tuple[float, float]
    lift_rel: float | None
    ci95_rel: tuple[float, float] | None
    z: float
    p_value: float


def two_proportion_test(
    conversions_control: int,
    exposures_control: int,
    conversions_treatment: int,
    exposures_treatment: int,
) -> TwoProportionTest:
    """Lift of treatment over control with 95% intervals and the pooled z-test p-value."""
    from scipy import stats

    x_c, n_c, x_t, n_t = (
        conversions_control,
        exposures_control,
        conversions_treatment,
        exposures_treatment,
    )
    if min(n_c, n_t) <= 0:
        raise DataError("Both arms need at least one exposure to compare rates.")
    p_c, p_t = x_c / n_c, x_t / n_t
    lift = p_t - p_c
    z975 = stats.norm.ppf(0.975)
    se = np.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    ci = (lift - z975 * se, lift + z975 * se)
    pooled = (x_c + x_t) / (n_c + n_t)
    se0 = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    z = lift / se0 if se0 > 0 else 0.0
    p_value = float(2 * stats.norm.sf(abs(z)))
    lift_rel = ci_rel = None
    if x_c > 0:
        lift_rel = p_t / p_c - 1
        if x_t > 0:
            rr = stats.contingency.relative_risk(x_t, n_t, x_c, n_c)
            low, high = rr.confidence_interval(confidence_level=0.95)
            ci_rel = (float(low) - 1, float(high) - 1)
    return TwoProportionTest(
        rate_control=p_c,
        rate_treatment=p_t,
        lift_abs=float(lift),
        ci95=(float(ci[0]), float(ci[1])),
        lift_rel=None if lift_rel is None else float(lift_rel),
        ci95_rel=ci_rel,
        z=float(z),
        p_value=p_value,
    )


def srm_p_value(exposures_control: int, exposures_treatment: int, split: float) -> float:
    """Chi-square goodness of fit of the arm sizes to the declared split."""
    from scipy import stats

    total = exposures_control + exposures_treatment
    if total == 0:
        return 1.0
    expected = [total * (1 - split), total * split]
    return float(stats.chisquare([exposures_control, exposures_treatment], expected).pvalue)


def welch_test(control: np.ndarray, treatment: np.ndarray) -> TwoProportionTest:
    """Difference of means (treatment - control) with Welch's t-test and its 95% interval;
    the relative lift is the difference over the control mean."""
    from scipy import stats

    if min(len(control), len(treatment)) < 2:
        raise DataError("Both arms need at least two units to compare means.")
    m_c, m_t = float(np.mean(control)), float(np.mean(treatment))
    if np.var(control) == 0 and np.var(treatment) == 0:
        t, p, ci = 0.0, 1.0 if m_c == m_t else 0.0, (m_t - m_c, m_t - m_c)
    else:
        res = stats.ttest_ind(treatment, control, equal_var=False)
        low, high = res.confidence_interval(confidence_level=0.95)
        t, p, ci = float(res.statistic), float(res.pvalue), (float(low), float(high))
    rel = (m_t / m_c - 1) if m_c else None
    ci_rel = (ci[0] / m_c, ci[1] / m_c) if m_c > 0 else None
    return TwoProportionTest(m_c, m_t, m_t - m_c, ci, rel, ci_rel, t, p)


def _ratio_variance(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The ratio sum(x) / sum(y) over units and its delta-method variance."""
    n = len(x)
    mx, my = float(np.mean(x)), float(np.mean(y))
    if my == 0:
        raise DataError("An arm has no exposure events (per=): its ratio is undefined.")
    ratio = mx / my
    if n < 2:
        return ratio, float("nan")
    sxx, syy = float(np.var(x, ddof=1)), float(np.var(y, ddof=1))
    sxy = float(np.cov(x, y, ddof=1)[0, 1])
    var = (sxx - 2 * ratio * sxy + ratio**2 * syy) / (n * my**2)
    return ratio, max(var, 0.0)


def ratio_test(
    x_control: np.ndarray, y_control: np.ndarray, x_treatment: np.ndarray, y_treatment: np.ndarray
) -> TwoProportionTest:
    """Treatment's ratio sum(x)/sum(y) minus control's (say clicks over impressions, one
    entry per unit), with the delta-method standard error (units independent, a unit's
    events not), a two-sided z-test and 95% intervals; the relative lift's interval
    comes from the log of the ratio of ratios."""
    from scipy import stats

    if min(len(x_control), len(x_treatment)) < 2:
        raise DataError("Both arms need at least two units to compare ratios.")
    r_c, v_c = _ratio_variance(np.asarray(x_control, float), np.asarray(y_control, float))
    r_t, v_t = _ratio_variance(np.asarray(x_treatment, float), np.asarray(y_treatment, float))
    diff = r_t - r_c
    se = float(np.sqrt(v_c + v_t))
    z975 = float(stats.norm.ppf(0.975))
    z = diff / se if se > 0 else 0.0
    p = float(2 * stats.norm.sf(abs(z))) if se > 0 else (1.0 if diff == 0 else 0.0)
    rel = ci_rel = None
    if r_c > 0:
        rel = r_t / r_c - 1
        if r_t > 0:
            log_se = float(np.sqrt(v_t / r_t**2 + v_c / r_c**2))
            centre = float(np.log(r_t / r_c))
            ci_rel = (
                float(np.exp(centre - z975 * log_se) - 1),
                float(np.exp(centre + z975 * log_se) - 1),
            )
    return TwoProportionTest(
        r_c, r_t, float(diff), (diff - z975 * se, diff + z975 * se), rel, ci_rel, float(z), p
    )
