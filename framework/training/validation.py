"""Validate a training set with Great Expectations (1.x) before any training.

The suite is generated from the declarations, not written by hand:

- every feature has the declared type; windowed counts and sums are never null
  and never negative; for the same aggregate, 7d <= 30d <= 90d (shorter windows
  never hold more than longer ones);
- the label is never null (and 0/1 for a binary problem);
- categorical features stay within the categories a problem declares
  (``Problem(categories={"plan": [...]})``), when it declares them.

``validate`` returns a ``ValidationResult`` (status PASS / FAIL, one line per
failing expectation with its column and sample values, and a profile of the
data kept as reference statistics); the caller decides to raise (``.raise_for_failure()``).
GX runs in an ephemeral context with its progress bars off.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from framework.errors import ValidationError
from framework.tasks import task_of
from framework.training.dataset import LABEL, TrainingSet

if TYPE_CHECKING:
    from framework.models.metadata import ModelMeta

__all__ = ["ValidationResult", "profile", "validate", "validate_features"]


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str
    unexpected: int
    sample: list[Any]

    def __str__(self) -> str:
        return f"{self.expectation} on {self.column}: {self.unexpected} unexpected, e.g. {self.sample[:5]}"


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of a suite: PASS or FAIL, the failures, and the data's profile."""

    problem: str
    expectations: int
    failures: list[Failure] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "FAIL" if self.failures else "PASS"

    def report(self) -> str:
        head = f"Validation of {self.problem!r}: {self.status} ({self.expectations} expectations"
        head += f", {len(self.failures)} failed)" if self.failures else ")"
        return "\n".join([head, *(f"  - {f}" for f in self.failures)])

    def raise_for_failure(self) -> None:
        if self.failures:
            raise ValidationError(self.report())


# An expectation is kept as (GX class name, kwargs) until GX runs: building the suite
# then costs no `import great_expectations` (about 2 s) when the fast check settles it.
Expectation = tuple[str, dict[str, Any]]


def _expectations(ts: TrainingSet, categories: Mapping[str, Sequence[Any]]) -> list[Expectation]:
    out = _feature_expectations(ts.frame, ts.features, ts.spec, categories)
    out.append(("ExpectColumnValuesToNotBeNull", {"column": LABEL}))
    values = task_of(ts.spec["task"]).label_values
    if values is not None:
        out.append(("ExpectColumnValuesToBeInSet", {"column": LABEL, "value_set": list(values)}))
    return out


def _feature_expectations(
    frame: pd.DataFrame,
    features: list[str],
    spec: dict[str, Any],
    categories: Mapping[str, Sequence[Any]],
) -> list[Expectation]:
    """The suite's expectations on the features (the part a scoring input must pass too)."""
    out: list[Expectation] = []
    dtypes = spec.get("feature_dtypes", {})
    zero_fill = set(spec.get("zero_fill", []))  # from the declarations, not from names
    for name in features:
        declared = dtypes.get(name, str(frame[name].dtype))
        out.append(
            (
                "ExpectColumnValuesToBeInTypeList",
                {"column": name, "type_list": _type_names(declared)},
            )
        )
        if name in zero_fill:
            out.append(("ExpectColumnValuesToNotBeNull", {"column": name}))
            out.append(("ExpectColumnValuesToBeBetween", {"column": name, "min_value": 0}))
    for group in spec.get("window_groups", []):
        for short, long in itertools.pairwise(group):
            out.append(
                (
                    "ExpectColumnPairValuesAToBeGreaterThanB",
                    {
                        "column_A": long,
                        "column_B": short,
                        "or_equal": True,
                        "ignore_row_if": "either_value_is_missing",
                    },
                )
            )
    for name, allowed in categories.items():
        if name in frame.columns:
            out.append(
                ("ExpectColumnValuesToBeInSet", {"column": name, "value_set": list(allowed)})
            )
    return out


def _type_names(dtype: str) -> list[str]:
    """The type names GX accepts for a pandas dtype: numpy names, extension dtype class
    names (Int32Dtype, BooleanDtype) and str for object columns of strings."""
    names = {dtype, dtype.lower()}
    resolved = pd.api.types.pandas_dtype(dtype)
    if isinstance(resolved, pd.api.extensions.ExtensionDtype):
        names.add(type(resolved).__name__)
    if dtype == "object":
        names.add("str")
    if dtype == "boolean":
        names.add("bool")
    return sorted(names)


def profile(frame: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    """Per column: null rate and either numeric summaries or category frequencies."""
    out: dict[str, Any] = {}
    for name in columns:
        col = frame[name]
        entry: dict[str, Any] = {"dtype": str(col.dtype), "null_rate": float(col.isna().mean())}
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            values = col.dropna().astype(float)
            if len(values):
                q = np.quantile(values, [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0])
                entry.update(
                    mean=float(values.mean()),
                    std=float(values.std()),
                    quantiles=[float(v) for v in q],
                )
        else:
            freq = col.astype("object").value_counts(normalize=True, dropna=True)
            entry["categories"] = {str(k): float(v) for k, v in freq.head(50).items()}
        out[name] = entry
    return out


def validate(
    ts: TrainingSet, categories: Mapping[str, Sequence[Any]] | None = None
) -> ValidationResult:
    """Run the generated suite on a training set."""
    expectations = _expectations(ts, categories or {})
    return _run(ts.problem, ts.frame, expectations, "training_set", [*ts.features, LABEL])


def validate_features(problem: str, frame: pd.DataFrame, meta: ModelMeta) -> ValidationResult:
    """Run a model's suite, without its label expectations, on the features it is about to
    score (batch prediction): the types, the non-null and non-negative windowed counts,
    the window order and the declared categories it was trained and validated with."""
    missing = [f for f in meta.features if f not in frame.columns]
    if missing:
        raise ValidationError(f"Validation of {problem!r}: feature(s) {missing} are missing.")
    spec = {"feature_dtypes": meta.feature_dtypes, **meta.validation}
    expectations = _feature_expectations(frame, meta.features, spec, meta.categories)
    if all(_surely_met(frame, e, meta.feature_dtypes) for e in expectations):
        return ValidationResult(problem, len(expectations), [], {})
    return _run(problem, frame, expectations, "scoring_input", meta.features)


def _surely_met(frame: pd.DataFrame, expectation: Expectation, dtypes: dict[str, str]) -> bool:
    """True only when ``expectation`` certainly holds on ``frame``, by a vectorized check
    (GX takes about 2.5 s per 100k rows of this suite); False means: let GX judge and
    report. Tested against GX on clean and corrupted frames (tests/test_batch.py)."""
    kind, kw = expectation
    if kw.get("mostly", 1) != 1 or kw.get("row_condition"):
        return False
    if kind == "ExpectColumnPairValuesAToBeGreaterThanB":
        if not kw.get("or_equal") or kw.get("ignore_row_if") != "either_value_is_missing":
            return False
        a, b = frame[kw["column_A"]], frame[kw["column_B"]]
        if not (pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)):
            return False
        both = a.notna() & b.notna()
        return bool((a[both] >= b[both]).all())
    column = frame[kw["column"]]
    present = column.dropna()
    if kind == "ExpectColumnValuesToNotBeNull":
        return not column.isna().any()
    if kind == "ExpectColumnValuesToBeBetween":
        if kw.get("max_value") is not None or kw.get("min_value") is None or kw.get("strict_min"):
            return False
        return pd.api.types.is_numeric_dtype(column) and bool((present >= kw["min_value"]).all())
    if kind == "ExpectColumnValuesToBeInSet":
        return bool(present.isin(list(kw["value_set"])).all())
    if kind == "ExpectColumnValuesToBeInTypeList":
        declared = dtypes.get(kw["column"])
        if str(column.dtype) != declared or declared not in kw["type_list"]:
            return False
        return declared != "object" or bool(present.map(type).eq(str).all())
    return False


def _run(
    problem: str,
    frame: pd.DataFrame,
    expectations: list[Expectation],
    what: str,
    columns: list[str],
) -> ValidationResult:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("lifecycle").add_dataframe_asset(problem)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": frame}
    )
    suite = gx.ExpectationSuite(name=f"{problem}_{what}")
    for kind, kwargs in expectations:
        suite.add_expectation(getattr(gx.expectations, kind)(**kwargs))
    result = batch.validate(suite)
    failures = []
    for r in result.results:
        config = r.expectation_config
        if r.success or config is None:
            continue
        kwargs = config.kwargs
        column = kwargs.get("column") or f"{kwargs.get('column_A')} >= {kwargs.get('column_B')}"
        details = r.result or {}
        sample = details.get("partial_unexpected_list") or [details.get("observed_value")]
        failures.append(
            Failure(
                config.type,
                column,
                int(details.get("unexpected_count") or 0),
                list(sample),
            )
        )
    return ValidationResult(
        problem=problem,
        expectations=len(result.results),
        failures=failures,
        profile=profile(frame, columns),
    )
