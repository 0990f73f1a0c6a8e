"""Do we have enough data? Facts against plain counts, refusals with numbers, and the
learning curve's verdict on synthetic problems whose answer is known by construction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FileSource

from framework.declare.problems import NoEvents, Problem, Sum, WeeklyCutoffs
from framework.errors import DataError
from framework.models.registry import registry_of
from framework.tasks.splitters import split_by_time
from framework.training.assess import describe_data, learning_curve
from framework.training.dataset import TrainingSet
from tests.helpers import cli

T0 = pd.Timestamp("2025-01-06", tz="UTC")


def _problem(tmp_path, task="binary", **kw) -> Problem:
    path = tmp_path / "events.parquet"
    pd.DataFrame({"k": [1], "event_timestamp": [T0]}).to_parquet(path)
    source = FileSource(name="ev", path=str(path), timestamp_field="event_timestamp")
    binary = task == "binary"
    args = {
        "name": "p",
        "task": task,
        "events": source,
        "label": NoEvents(horizon_days=7) if binary else Sum("x", horizon_days=7),
        "spine": WeeklyCutoffs(active_within_days=7, every_days=7, warmup_days=7),
        "feature_service": "fs",
        "metric": "pr_auc" if binary else "mae",
        "success_threshold": 0.5,
        "entity": "k",
    }
    return Problem(**{**args, **kw})


def _set(rule, *, times=40, per_time=60, features=4, seed=0, task="binary") -> TrainingSet:
    """``per_time`` entities observed weekly; ``rule(x, week)`` gives the label."""
    rng = np.random.default_rng(seed)
    n = times * per_time
    week = np.repeat(np.arange(times), per_time)
    x = rng.normal(size=(n, features))
    frame = pd.DataFrame({f"x{i}": x[:, i] for i in range(features)})
    frame.insert(0, "event_timestamp", T0 + pd.to_timedelta(week * 7, unit="D"))
    frame.insert(0, "k", np.tile(np.arange(per_time), times))
    frame["clicks_7d"] = np.where(rng.random(n) < 0.03, rng.integers(1, 5, n), 0).astype(float)
    frame["half"] = np.where(rng.random(n) < 0.5, np.nan, rng.normal(size=n))
    frame["label"] = rule(x, week, rng)
    names = [c for c in frame.columns if c not in ("k", "event_timestamp", "label")]
    spec = {"entity": "k", "task": task, "zero_fill": ["clicks_7d"]}
    return TrainingSet("p", frame, names, spec)


def _threshold(x, week, rng):
    return (x[:, 0] + 0.3 * rng.normal(size=len(x)) > 1.0).astype(int)


def test_facts_match_plain_counts(tmp_path):
    problem = _problem(tmp_path)
    ts = _set(_threshold)
    facts = describe_data(ts, problem)
    frame = ts.frame
    assert facts.observations["rows"] == len(frame) == 2400
    assert facts.observations["entities"] == 60 and facts.observations["observation_times"] == 40
    assert facts.observations["span_days"] == 39 * 7
    assert facts.observations["span_in_horizons"] == 39.0 and facts.observations["warmup_days"] == 7
    for part, (start, end, rows, _times, _days) in facts.split["parts"].items():
        inside = frame[
            (frame.event_timestamp >= pd.Timestamp(start))
            & (frame.event_timestamp <= pd.Timestamp(end))
        ]
        counted = facts.label["parts"][part]
        assert counted["rows"] == rows == len(inside)
        assert counted["positives"] == sum(int(v) for v in inside.label)
    assert facts.label["positives"] == int(frame.label.sum())
    kept = sum(v["rows"] for v in facts.label["parts"].values())
    assert facts.split["purged"] == len(frame) - kept
    by_name = {f["feature"]: f for f in facts.features}
    values = list(frame.half)
    assert by_name["half"]["missing"] == pytest.approx(sum(v != v for v in values) / 2400)
    assert by_name["half"]["coverage"] == pytest.approx(1 - by_name["half"]["missing"])
    clicks = list(frame.clicks_7d)  # zero-filled: a zero is "no events", not coverage
    assert by_name["clicks_7d"]["coverage"] == pytest.approx(sum(v > 0 for v in clicks) / 2400)
    assert by_name["clicks_7d"]["missing"] == 0
    assert any("present in fewer than 5% of rows: clicks_7d" in w for w in facts.warnings)


def test_regression_facts_and_constant_label(tmp_path):
    problem = _problem(tmp_path, task="regression")
    ts = _set(lambda x, w, r: np.maximum(x[:, 0], 0) * 10, task="regression")
    label = describe_data(ts, problem).label
    y = ts.frame.label
    assert label["zero_share"] == pytest.approx((y == 0).mean())
    assert label["median"] == pytest.approx(y.median())
    with pytest.raises(DataError, match=r"label is constant \(0\) over 2,400 rows"):
        describe_data(TrainingSet("p", ts.frame.assign(label=0.0), ts.features, ts.spec), problem)


def test_too_few_positives_and_too_short_a_span_are_refused_with_numbers(tmp_path):
    ts = _set(_threshold)
    split = split_by_time(ts.frame, 7)
    test_positives = int(split.test.label.sum())
    with pytest.raises(DataError, match=rf"too few positive labels.*test {test_positives}\b"):
        describe_data(ts, _problem(tmp_path, min_positives=test_positives + 1))
    describe_data(ts, _problem(tmp_path, min_positives=min(test_positives, 10)))  # enough
    short = TrainingSet(
        "p", ts.frame[ts.frame.event_timestamp < T0 + pd.Timedelta(days=35)], ts.features, ts.spec
    )
    with pytest.raises(DataError, match=r"needs at least 9 observation times.*has 5"):
        describe_data(short, _problem(tmp_path))


def _curve(tmp_path, rule, model, **kw):
    problem = _problem(tmp_path, candidates=(model,))
    ts = _set(rule, **kw)
    split = split_by_time(ts.frame, 7)
    return learning_curve(split, ts, problem, model)


def test_an_easy_signal_is_flat(tmp_path):
    """One clean threshold on one feature: a linear model has it from 1/8 of the data."""
    curve = _curve(tmp_path, _threshold, "logistic_regression")
    assert [p["fraction"] for p in curve.points] == [0.125, 0.25, 0.5, 1.0]
    # 40 weekly times: test 6, validation 6, a week purged before each: 26 train times,
    # of which the last ceil(26 / 8), ceil(26 / 4), 26 / 2 and all
    assert [p["times"] for p in curve.points] == [4, 7, 13, 26]
    assert [p["rows"] for p in curve.points] == [240, 420, 780, 1560]
    assert curve.points[0]["value"] > 0.8 and curve.baseline < 0.3
    assert curve.verdict.startswith("flat"), curve.verdict
    assert curve.gain_over_baseline == pytest.approx(curve.points[-1]["value"] - curve.baseline)


def test_a_signal_that_needs_data_is_still_improving(tmp_path):
    """An interaction of two of 30 features, few rows per week: trees need every week."""

    def rule(x, week, rng):
        return ((x[:, 0] * x[:, 1] > 0.3) ^ (rng.random(len(x)) < 0.05)).astype(int)

    curve = _curve(tmp_path, rule, "lightgbm", features=30, per_time=20)
    values = [p["value"] for p in curve.points]
    assert values[-1] > values[0] + 0.2
    assert curve.verdict.startswith("still improving"), (values, curve.verdict)
    assert curve.expected_gain_doubled > curve.gain_over_baseline


def test_an_old_history_that_differs_makes_it_worse(tmp_path):
    """The relation flips at week 19: the last quarter of the training period (weeks
    19-25) and validation follow the new one, older weeks teach the opposite."""

    def rule(x, week, rng):
        sign = np.where(week < 19, -1, 1)
        return (sign * x[:, 0] + 0.3 * rng.normal(size=len(x)) > 1.0).astype(int)

    curve = _curve(tmp_path, rule, "logistic_regression")
    assert curve.verdict.startswith("getting worse"), (
        [p["value"] for p in curve.points],
        curve.verdict,
    )


def test_cli_assess_writes_a_report_listed_at_ui(trained_copy):
    from framework.deploy.ui import index_page

    result = cli(trained_copy, "assess", "churn", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    curve = out["learning_curve"]
    registry = registry_of(trained_copy)
    latest = registry.get("churn", registry.versions("churn")[-1]).meta
    assert len(curve["points"]) == 4 and curve["model"] == latest.winner
    assert curve["configuration"] == f"{latest.winner} as chosen by {latest.version}"
    in_parts = sum(p["positives"] for p in out["label"]["parts"].values())
    assert out["label"]["positives"] >= in_parts > 0
    assert out["report"].endswith("report.html")
    page = Path(out["report"]).read_text()
    assert "Learning curve" in page and "data:image/png;base64," in page
    assert "-assess-all" in index_page(trained_copy)
    text = cli(trained_copy, "assess", "spend")
    assert text.exit_code == 0 and "learning curve:" in text.output and "verdict" in text.output


def test_training_refuses_too_few_positives_before_fitting(applied_repo):
    import dataclasses

    from framework.training.assess import describe_data as facts_of
    from framework.training.dataset import build_training_set

    problem = dataclasses.replace(applied_repo.problem("churn"), min_positives=10_000)
    with pytest.raises(DataError, match="too few positive labels"):
        facts_of(build_training_set(applied_repo, problem), problem)


def test_the_card_shows_the_learning_curve(trained_repo):
    _, runs = trained_repo
    for run in runs.values():
        meta = run.artifact.meta
        curve = meta.assessment["learning_curve"]
        assert [p["fraction"] for p in curve["points"]] == [0.125, 0.25, 0.5, 1.0]
        assert curve["model"] in {c["name"] for c in meta.candidates} - {"baseline"}
        page = (run.artifact.path / "card.html").read_text()
        assert "Do we have enough data?" in page and curve["verdict"].split(":")[0] in page
