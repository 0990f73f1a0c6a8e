"""Monitor: has the data a model sees moved away from the data it was trained on?

``drift(reference, current, features)`` compares each feature of ``current``
with the model version's reference sample (kept beside the model at training):

- numeric features: the population stability index (PSI) over the reference's
  deciles, and the two-sample Kolmogorov-Smirnov test (the statistic computed
  exactly, the p-value as ``scipy.stats.ks_2samp(method="asymp")`` gives it);
- categorical features (text, booleans): PSI over the reference's categories
  plus one bucket for unseen ones, and the chi-square test of homogeneity
  (``scipy.stats.chi2_contingency``);
- for both, the Jensen-Shannon distance (base 2) of the binned distributions
  (``scipy.spatial.distance.jensenshannon``), the missing-value rate, and the
  rate of values outside the reference's range (numeric) or unseen (categorical).

A feature has drifted when its distribution moved by at least the declared PSI
*and* the test is significant at the declared p-value: with a million rows a
test finds differences too small to matter, and a PSI alone can move by chance
on small samples. Defaults: PSI 0.2, p-value 0.01 (``Monitoring`` on the problem).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from framework.common.jsonable import finite
from framework.errors import DataError

__all__ = ["DriftReport", "FeatureDrift", "drift", "ks_test", "psi"]

EPSILON = 1e-4  # floor of a bin's share, so that an empty bin does not make PSI infinite
DECILES = np.linspace(0, 1, 11)[1:-1]


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.clip(np.asarray(reference, dtype=float), EPSILON, None)
    c = np.clip(np.asarray(current, dtype=float), EPSILON, None)
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def _js(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(reference, current, base=2))


def ks_test(reference_sorted: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic (exact) and p-value (asymptotic, as scipy's ``asymp``)."""
    from scipy.stats import distributions

    n, m = len(reference_sorted), len(current)
    if n == 0 or m == 0:
        return float("nan"), float("nan")
    current_sorted = np.sort(current)
    # Both empirical CDFs are right-continuous steps, so the largest gap is at a sample
    # value; each sample's CDF there is its last index among equal values, + 1. That
    # evaluates the current sample's CDF without searching the million values again.
    ends_c = np.flatnonzero(np.r_[current_sorted[1:] != current_sorted[:-1], True])
    values_c = current_sorted[ends_c]
    gap_c = np.abs(np.searchsorted(reference_sorted, values_c, side="right") / n - (ends_c + 1) / m)
    ends_r = np.flatnonzero(np.r_[reference_sorted[1:] != reference_sorted[:-1], True])
    values_r = reference_sorted[ends_r]
    gap_r = np.abs((ends_r + 1) / n - np.searchsorted(current_sorted, values_r, side="right") / m)
    d = float(max(gap_c.max(), gap_r.max()))
    en = n * m / (n + m)
    return d, float(np.clip(distributions.kstwo.sf(d, np.round(en)), 0, 1))


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str  # numeric | categorical
    test: str  # ks | chi2
    psi: float
    p_value: float
    statistic: float
    js_distance: float
    missing_rate: float
    reference_missing_rate: float
    out_of_range_rate: float  # numeric: outside the reference's [min, max]; categorical: unseen
    drifted: bool
    counted: bool = True  # False: a calendar feature, reported but not counted toward drift
    bins: list[str] = field(default_factory=list)
    reference_shares: list[float] = field(default_factory=list)
    current_shares: list[float] = field(default_factory=list)


def _numeric(
    name: str, ref: np.ndarray, cur: np.ndarray, psi_max: float, alpha: float
) -> FeatureDrift:
    ref_nn, cur_nn = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if len(ref_nn) == 0 or len(cur_nn) == 0:
        raise DataError(f"Feature {name!r} has no values in the reference or the current data.")
    ref_sorted = np.sort(ref_nn, kind="stable")
    # Bins [e_i, e_i+1) from the reference's minimum and deciles, plus one bin below the
    # minimum and one above the maximum: a shift out of the reference's range always
    # shows, even for a feature the reference holds constant.
    low, high = ref_sorted[0], ref_sorted[-1]
    edges = np.unique(np.r_[low, np.quantile(ref_sorted, DECILES), np.nextafter(high, np.inf)])
    r_bins = np.bincount(np.searchsorted(edges, ref_sorted, side="right"), minlength=len(edges) + 1)
    c_bins = np.bincount(np.searchsorted(edges, cur_nn, side="right"), minlength=len(edges) + 1)
    r_share, c_share = r_bins / r_bins.sum(), c_bins / c_bins.sum()
    d, p = ks_test(ref_sorted, cur_nn)
    value = psi(r_share, c_share)
    outside = float(np.mean((cur_nn < low) | (cur_nn > high)))
    labels = (
        [f"< {low:g}"]
        + [f"[{a:g}, {b:g})" for a, b in pairwise(edges[:-1])]
        + [f"[{edges[-2]:g}, {high:g}]", f"> {high:g}"]
    )
    return FeatureDrift(
        name=name,
        kind="numeric",
        test="ks",
        psi=value,
        p_value=p,
        statistic=d,
        js_distance=_js(r_share, c_share),
        missing_rate=float(np.isnan(cur).mean()),
        reference_missing_rate=float(np.isnan(ref).mean()),
        out_of_range_rate=outside,
        drifted=bool(value >= psi_max and p < alpha),
        bins=labels,
        reference_shares=r_share.tolist(),
        current_shares=c_share.tolist(),
    )


def _categorical(
    name: str, ref: pd.Series, cur: pd.Series, psi_max: float, alpha: float
) -> FeatureDrift:
    from scipy.stats import chi2_contingency

    ref_counts = ref.dropna().astype(str).value_counts()
    cur_counts = cur.dropna().astype(str).value_counts()
    if ref_counts.empty or cur_counts.empty:
        raise DataError(f"Feature {name!r} has no values in the reference or the current data.")
    cats = list(ref_counts.index)
    unseen = int(cur_counts[~cur_counts.index.isin(cats)].sum())
    r = np.append(ref_counts.to_numpy(dtype=float), 0.0)
    c = np.append(cur_counts.reindex(cats, fill_value=0).to_numpy(dtype=float), unseen)
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] > 1:
        stat, p, _, _ = chi2_contingency(table, correction=False)
    else:
        stat, p = 0.0, 1.0
    r_share, c_share = r / r.sum(), c / c.sum()
    value = psi(r_share, c_share)
    return FeatureDrift(
        name=name,
        kind="categorical",
        test="chi2",
        psi=value,
        p_value=float(p),
        statistic=float(stat),
        js_distance=_js(r_share, c_share),
        missing_rate=float(cur.isna().mean()),
        reference_missing_rate=float(ref.isna().mean()),
        out_of_range_rate=unseen / max(c.sum(), 1),
        drifted=bool(value >= psi_max and p < alpha),
        bins=[*cats, "(unseen)"],
        reference_shares=r_share.tolist(),
        current_shares=c_share.tolist(),
    )


def _kind(col: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
        return "categorical"
    return "numeric"


def _floats(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def feature_drift(
    name: str, reference: pd.Series, current: pd.Series, psi_max: float = 0.2, alpha: float = 0.01
) -> FeatureDrift:
    """The drift of one feature (see the module docstring)."""
    if _kind(reference) == "numeric":
        if _kind(current) != "numeric":
            raise DataError(
                f"Feature {name!r} is numeric in the reference but holds {current.dtype} "
                "in the current data; give numbers."
            )
        return _numeric(name, _floats(reference), _floats(current), psi_max, alpha)
    return _categorical(name, reference.astype(object), current.astype(object), psi_max, alpha)


@dataclass(frozen=True)
class DriftReport:
    """What ``lifecycle monitor`` prints; ``to_json`` gives the --json keys."""

    problem: str
    model_version: str
    rows: int
    features: list[FeatureDrift]
    prediction_drift: FeatureDrift | None
    target_drift: FeatureDrift | None
    drifted: bool
    action: str  # none | investigate | retrain
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = [
            {
                k: v
                for k, v in asdict(f).items()
                if k not in ("bins", "reference_shares", "current_shares")
            }
            for f in self.features
        ]
        return finite(out)

    def to_text(self) -> str:
        lines = [
            f"Drift of {self.problem} {self.model_version}: {self.rows:,} current rows against "
            "the training reference",
            f"  {'feature':<38} {'test':<5} {'psi':>7} {'p-value':>9} {'js':>6} {'missing':>8} "
            f"{'outside':>8}  drifted",
        ]
        rows = [*self.features]
        if self.prediction_drift:
            rows.append(self.prediction_drift)
        if self.target_drift:
            rows.append(self.target_drift)
        for f in rows:
            lines.append(
                f"  {f.name:<38} {f.test:<5} {f.psi:>7.3f} {f.p_value:>9.2g} {f.js_distance:>6.3f} "
                f"{f.missing_rate:>8.1%} {f.out_of_range_rate:>8.1%}  "
                + ("YES" if f.drifted and f.counted else "calendar" if f.drifted else "no")
            )
        lines.append(
            f"Action: {self.action}" + (f" ({'; '.join(self.reasons)})" if self.reasons else "")
        )
        return "\n".join(lines)


def drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    *,
    problem: str = "",
    model_version: str = "",
    psi_max: float = 0.2,
    alpha: float = 0.01,
    retrain_when: int = 3,
    score_column: str = "score",
    label_column: str = "label",
    uncounted: frozenset[str] = frozenset(),
    min_rows: int = 1,
) -> DriftReport:
    """Drift of every feature, of the scores and (when present) of the label.

    Action: ``retrain`` when the scores drifted or at least ``retrain_when``
    features did; ``investigate`` when any feature or the label drifted; else ``none``.
    Features in ``uncounted`` (calendar features: their distribution follows the
    calendar of the traffic) are reported but count toward neither. With fewer than
    ``min_rows`` current rows the tests are reported but not acted on (action ``none``,
    the sample size named in the reasons).
    """
    if len(current) == 0:
        raise DataError("The current data is empty: there is nothing to compare.")
    missing = [f for f in features if f not in current.columns]
    if missing:
        raise DataError(
            f"The current data lacks feature(s) {missing}; it needs every feature of the model "
            f"({len(features)}), and has {list(current.columns)[:10]}..."
        )
    with ThreadPoolExecutor(max_workers=2) as pool:  # numpy's sorts release the GIL
        results = list(
            pool.map(lambda f: feature_drift(f, reference[f], current[f], psi_max, alpha), features)
        )
    prediction = target = None
    if score_column in reference and score_column in current:
        prediction = feature_drift(
            "prediction (score)", reference[score_column], current[score_column], psi_max, alpha
        )
    if (
        label_column in reference
        and label_column in current
        and current[label_column].notna().any()
    ):
        ref_label, cur_label = reference[label_column], current[label_column].dropna()
        if ref_label.nunique() <= 2:  # a class label: compare the classes (chi-square)
            ref_label = ref_label.astype(float).astype(int).astype(str)
            cur_label = cur_label.astype(float).astype(int).astype(str)
        target = feature_drift("target (label)", ref_label, cur_label, psi_max, alpha)
    results = [dataclasses.replace(f, counted=False) if f.name in uncounted else f for f in results]
    drifted_features = [f.name for f in results if f.drifted and f.counted]
    calendar = [f.name for f in results if f.drifted and not f.counted]
    reasons = []
    if prediction is not None and prediction.drifted:
        reasons.append("the score distribution moved")
    if drifted_features:
        reasons.append(
            f"{len(drifted_features)} feature(s) drifted: {', '.join(drifted_features[:5])}"
        )
    if target is not None and target.drifted:
        reasons.append("the label distribution moved")
    if calendar:
        reasons.append(
            f"{len(calendar)} calendar feature(s) moved with the calendar of the traffic, not "
            f"counted: {', '.join(calendar[:5])}"
        )
    if (prediction is not None and prediction.drifted) or len(drifted_features) >= retrain_when:
        action = "retrain"
    elif drifted_features or (target is not None and target.drifted):
        action = "investigate"
    else:
        action = "none"
    if len(current) < min_rows:
        if action != "none":
            reasons = [f"not acted on: {r}" for r in reasons]
        reasons.insert(
            0,
            f"only {len(current):,} current rows, fewer than the declared minimum of "
            f"{min_rows:,} (Monitoring.min_rows): the tests are noise at this size, no action; "
            "widen the window (--from/--to)",
        )
        action = "none"
    return DriftReport(
        problem=problem,
        model_version=model_version,
        rows=len(current),
        features=results,
        prediction_drift=prediction,
        target_drift=target,
        drifted=action != "none",
        action=action,
        reasons=reasons,
    )
