"""Labels and spines over any data, against brute force: every event label, periodic,
event and table spines, a label table, string keys, a label source apart from the spine's.

Edges: an event exactly at t is not in the label window (t, t + H]; one exactly at
t + H is; an observation whose horizon leaves the data is dropped.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from feast import FileSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.declare.problems import (
    AnyEvent,
    Count,
    Cutoffs,
    EventSpine,
    LabelTable,
    Mean,
    NoEvents,
    Problem,
    Sum,
    TableSpine,
)
from framework.errors import FeatureRepoError
from framework.training.labels import build_observations, labels_at

T0 = pd.Timestamp("2025-05-01", tz="UTC")
H = timedelta(hours=2)
US = pd.Timedelta(microseconds=1)


def _source(tmp_path, name: str, frame: pd.DataFrame, ts: str = "ts") -> FileSource:
    path = tmp_path / f"{name}.parquet"
    frame.assign(**{ts: frame[ts].astype("datetime64[us, UTC]")}).to_parquet(path, index=False)
    return FileSource(name=name, path=str(path), timestamp_field=ts)


def _problem(events, label, spine, task):
    return Problem(
        name="p",
        task=task,
        events=events,
        label=label,
        spine=spine,
        feature_service="fs",
        metric="pr_auc" if task == "binary" else "mae",
        success_threshold=0.5,
        entity="card_id",
    )


LABELS = {
    "no_events": (NoEvents(horizon=H, where='kind == "pay"'), "binary"),
    "any_event": (AnyEvent(horizon=H, where='kind == "pay"'), "binary"),
    "count": (Count(horizon=H, where='kind == "pay"'), "regression"),
    "count_all": (Count(horizon=H), "regression"),
    "sum": (Sum("amount", horizon=H, where='kind == "pay"'), "regression"),
    "mean": (Mean("amount", horizon=H), "regression"),
}


def _oracle(kind: str, events: pd.DataFrame, card: str, t: pd.Timestamp):
    mine = events[(events.card_id == card) & (events.ts > t) & (events.ts <= t + H)]
    pays = mine[mine.kind == "pay"]
    if kind == "no_events":
        return int(len(pays) == 0)
    if kind == "any_event":
        return int(len(pays) > 0)
    if kind == "count":
        return len(pays)
    if kind == "count_all":
        return len(mine)
    if kind == "sum":
        return float(pays.amount.sum())
    values = mine.amount.dropna()
    return float(values.mean()) if len(values) else None


event_rows = st.lists(
    st.tuples(
        st.sampled_from(["c_1", "c_2", "c_10"]),
        st.sampled_from([0, 0, 30, 60, 120, 121, 240, 360, 361, 600, 720]),  # minutes
        st.sampled_from(["pay", "view"]),
        st.one_of(st.none(), st.sampled_from([1.0, 2.5, 10.0])),
    ),
    min_size=2,
    max_size=25,
)


def _events(raw) -> pd.DataFrame:
    df = pd.DataFrame(raw, columns=["card_id", "minute", "kind", "amount"])
    df["ts"] = T0 + pd.to_timedelta(df.pop("minute"), unit="m")
    return df


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=event_rows, kind=st.sampled_from(sorted(LABELS)))
def test_cutoff_labels_match_brute_force(tmp_path_factory, raw, kind):
    tmp = tmp_path_factory.mktemp("l")
    events = _events(raw)
    label, task = LABELS[kind]
    spine = Cutoffs(every=timedelta(hours=1), active_within=timedelta(hours=3), warmup=0)
    problem = _problem(_source(tmp, "ev", events), label, spine, task)
    last = events.ts.max()
    expected = {}
    t = T0.floor("h")
    while t + H <= last:
        for card in sorted(events.card_id.unique()):
            mine = events[events.card_id == card]
            if ((mine.ts > t - pd.Timedelta(hours=3)) & (mine.ts <= t)).any():
                value = _oracle(kind, events, card, t)
                if value is not None:
                    expected[(card, t)] = value
        t += pd.Timedelta(hours=1)
    try:
        got = build_observations(problem)
    except Exception as exc:  # an empty spine is refused: then brute force has none too
        assert not expected and "empty spine" in str(exc)
        return
    actual = {(r.card_id, r.event_timestamp): r.label for r in got.itertuples()}
    assert actual == pytest.approx(expected)
    assert got.card_id.map(type).eq(str).all()  # string keys stay strings


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=event_rows, kind=st.sampled_from(sorted(LABELS)))
def test_event_spine_reads_features_just_before_and_labels_from_the_event(
    tmp_path_factory, raw, kind
):
    """Observations at each view; the label from a separate source (the payments)."""
    tmp = tmp_path_factory.mktemp("e")
    events = _events(raw)
    views = events[events.kind == "view"]
    label, task = LABELS[kind]
    spine = EventSpine(source=_source(tmp, "views", views))
    problem = _problem(_source(tmp, "ev", events), label, spine, task)
    last = events.ts.max()
    expected = []
    for v in views.itertuples():
        if v.ts + H <= last:
            value = _oracle(kind, events, v.card_id, v.ts)
            if value is not None:
                expected.append((v.card_id, v.ts - US, value))
    try:
        got = build_observations(problem)
    except Exception as exc:
        assert not expected and "empty spine" in str(exc)
        return
    actual = sorted((r.card_id, r.event_timestamp, r.label) for r in got.itertuples())
    assert len(actual) == len(expected)
    for a, e in zip(actual, sorted(expected), strict=True):
        assert a[:2] == e[:2] and a[2] == pytest.approx(e[2])


def test_the_window_edges(tmp_path):
    t = T0
    events = pd.DataFrame(
        {
            "card_id": ["a", "a", "b", "b", "z"],
            "ts": [t, t + H, t, t + H + US, t + 10 * H],
            "kind": ["pay"] * 5,
            "amount": [1.0, 2.0, 3.0, 4.0, 0.0],
        }
    )
    table = pd.DataFrame({"card_id": ["a", "b"], "ts": [t, t]})
    problem = _problem(
        _source(tmp_path, "ev", events),
        Count(horizon=H),
        TableSpine(source=_source(tmp_path, "rows", table)),
        "regression",
    )
    got = build_observations(problem)
    # a: the event at t is out, the one at t + H is in; b: t + H + 1 us is out
    assert dict(zip(got.card_id, got.label, strict=True)) == {"a": 1.0, "b": 0.0}
    assert (got.event_timestamp == t).all()


def test_a_label_table_is_the_spine_and_its_labels_are_taken_as_given(tmp_path):
    events = pd.DataFrame({"card_id": ["a"], "ts": [T0], "kind": ["pay"], "amount": [1.0]})
    flags = pd.DataFrame(
        {
            "card_id": ["a", "a", "b"],  # several rows per entity
            "flagged_at": [T0, T0 + H, T0 + 2 * H],
            "fraud": [0, 1, 1],
        }
    )
    source = _source(tmp_path, "flags", flags, ts="flagged_at")
    problem = Problem(
        name="fraud",
        task="binary",
        events=_source(tmp_path, "ev", events),
        label=LabelTable(source=source, column="fraud", horizon=timedelta(days=30)),
        spine=None,
        feature_service="fs",
        metric="pr_auc",
        success_threshold=0.5,
        entity="card_id",
    )
    got = build_observations(problem)
    assert list(zip(got.card_id, got.event_timestamp, got.label, strict=True)) == [
        ("a", T0, 0.0),
        ("a", T0 + H, 1.0),
        ("b", T0 + 2 * H, 1.0),
    ]
    assert problem.horizon == timedelta(days=30)
    points = pd.DataFrame({"card_id": ["a", "b"], "event_timestamp": [T0 + H, T0]})
    known = labels_at(problem, points)
    assert known.label.iloc[0] == 1.0 and np.isnan(known.label.iloc[1])
    assert known.complete.tolist() == [True, False]
    bad = flags.assign(fraud=[0, 2, 1])
    problem = Problem(
        **{
            **problem.__dict__,
            "label": LabelTable(
                source=_source(tmp_path, "bad", bad, ts="flagged_at"), column="fraud"
            ),
        }
    )
    with pytest.raises(Exception, match=r"binary labels are 0 and 1"):
        build_observations(problem)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": Count(horizon=H)}, "must be NoEvents"),
        ({"spine": None}, "needs a spine"),
    ],
)
def test_bad_problems_are_refused(tmp_path, change, message):
    events = pd.DataFrame({"card_id": ["a"], "ts": [T0], "kind": ["pay"], "amount": [1.0]})
    args = {
        "name": "p",
        "task": "binary",
        "events": _source(tmp_path, "ev", events),
        "label": NoEvents(horizon=H),
        "spine": Cutoffs(every=1),
        "feature_service": "fs",
        "metric": "pr_auc",
        "success_threshold": 0.5,
    }
    with pytest.raises(FeatureRepoError, match=message):
        Problem(**{**args, **change})


@pytest.mark.parametrize(
    "make",
    [
        lambda: NoEvents(),
        lambda: NoEvents(horizon=H, horizon_days=1),
        lambda: Count(horizon=timedelta(milliseconds=5)),
        lambda: Cutoffs(every=0),
        lambda: Sum("", horizon=H),
    ],
)
def test_bad_labels_and_spines_are_refused(make):
    with pytest.raises(FeatureRepoError):
        make()


pair_rows = st.lists(
    st.tuples(
        st.sampled_from(["c_1", "c_2"]),
        st.sampled_from([1, 2, 30]),  # an integer key beside a text one
        st.sampled_from([0, 30, 60, 120, 121, 240, 361, 600]),  # minutes
        st.sampled_from(["pay", "view"]),
        st.one_of(st.none(), st.sampled_from([1.0, 2.5])),
    ),
    min_size=2,
    max_size=25,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=pair_rows, kind=st.sampled_from(sorted(LABELS)))
def test_composite_key_labels_match_brute_force(tmp_path_factory, raw, kind):
    """Labels of (card, merchant) pairs: an event of the same card at another merchant
    never counts; both keys come back with their types."""
    tmp = tmp_path_factory.mktemp("pair")
    events = pd.DataFrame(raw, columns=["card_id", "merchant_id", "minute", "kind", "amount"])
    events["ts"] = T0 + pd.to_timedelta(events.pop("minute"), unit="m")
    label, task = LABELS[kind]
    spine = Cutoffs(every=timedelta(hours=1), active_within=timedelta(hours=3), warmup=0)
    problem = dataclasses.replace(
        _problem(_source(tmp, "ev", events), label, spine, task),
        entity=("card_id", "merchant_id"),
    )
    assert problem.keys == ("card_id", "merchant_id")
    expected = {}
    t = T0.floor("h")
    while t + H <= events.ts.max():
        for (card, merchant), mine in events.groupby(["card_id", "merchant_id"]):
            if ((mine.ts > t - pd.Timedelta(hours=3)) & (mine.ts <= t)).any():
                value = _oracle(kind, mine, card, t)  # only this pair's events
                if value is not None:
                    expected[(card, int(merchant), t)] = value
        t += pd.Timedelta(hours=1)
    try:
        got = build_observations(problem)
    except Exception as exc:
        assert not expected and "empty spine" in str(exc)
        return
    actual = {(r.card_id, r.merchant_id, r.event_timestamp): r.label for r in got.itertuples()}
    assert actual == pytest.approx(expected)
    assert got.merchant_id.dtype == "int64" and got.card_id.map(type).eq(str).all()
    again = labels_at(problem, got[["card_id", "merchant_id", "event_timestamp"]])
    assert again["complete"].all()
    np.testing.assert_allclose(again.label.to_numpy(float), got.label.to_numpy(float))


def test_a_multiclass_label_table_over_a_composite_key(tmp_path):
    """Classes are taken as given (text), rows without a label are left out, several rows
    per pair are several observations, and labels_at finds a row by keys and time."""
    t = [T0 + pd.Timedelta(minutes=m) for m in (0, 5, 10, 15)]
    table = pd.DataFrame(
        {
            "card_id": ["c_1", "c_1", "c_2", "c_1"],
            "merchant_id": ["m_1", "m_2", "m_1", "m_1"],
            "ts": t,
            "outcome": ["ok", "fraud", None, "not_received"],
        }
    )
    src = _source(tmp_path, "reviews", table)
    problem = Problem(
        name="review",
        task="multiclass",
        events=src,
        label=LabelTable(source=src, column="outcome"),
        spine=None,
        feature_service="fs",
        metric="macro_f1",
        success_threshold=0.3,
        entity=("card_id", "merchant_id"),
    )
    got = build_observations(problem)
    assert got[["card_id", "merchant_id", "label"]].values.tolist() == [
        ["c_1", "m_1", "ok"],
        ["c_1", "m_2", "fraud"],
        ["c_1", "m_1", "not_received"],
    ]
    points = pd.DataFrame(
        {"card_id": ["c_1", "c_1"], "merchant_id": ["m_2", "m_2"], "event_timestamp": [t[1], t[2]]}
    )
    found = labels_at(problem, points)
    assert found.label.tolist()[0] == "fraud" and found.complete.tolist() == [True, False]
    with pytest.raises(FeatureRepoError, match="label must be LabelTable"):
        dataclasses.replace(problem, label=Count(horizon=H))
