"""Online windowed features are exact at read time, after pushes: against a brute-force oracle.

A small repo of another domain (sensor readings: int, string and composite keys;
every aggregate function; second, minute, hour, day and lifetime windows). Hypothesis
draws an event log, a materialization time T0, batches of events accepted after it
(some late, before T0 or before the base time; some at the same instant as others)
and read times at or after T0 (at events, at event + W, long after). The online
value of every feature equals the oracle's value over all events known at the read,
on SQLite and on Redis.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers import EXAMPLE_REPO, redis_yaml, set_project

pytestmark = pytest.mark.stores  # touches a store, a registry or a database (see conftest)

REPO_PY = """
from datetime import timedelta
from pathlib import Path

from feast import Entity, FileSource, ValueType

from framework import LIFETIME, Aggregate, WindowedFeatureView

site = Entity(name="site", join_keys=["site_id"], value_type=ValueType.INT64)
sensor = Entity(name="sensor", join_keys=["sensor"], value_type=ValueType.STRING)
readings = FileSource(
    name="readings", path=str(Path(__file__).parent / "data" / "readings.parquet"),
    timestamp_field="ts",
)
AGGREGATES = [
    Aggregate("readings", "count"),
    Aggregate("alarms", "count", where='kind == "alarm"'),
    Aggregate("value", "sum", column="value"),
    Aggregate("value", "mean", column="value"),
    Aggregate("value", "min", column="value"),
    Aggregate("value", "max", column="value"),
    Aggregate("level", "sum", column="level"),
    Aggregate("kinds", "count_distinct", column="kind"),
    Aggregate("kind", "last", column="kind"),
    Aggregate("kind", "max", column="kind"),
    Aggregate("value", "last", column="value", where='kind != "alarm"'),
    # alarms per other reading, leaning to 1 in 10
    Aggregate("alarm", "ratio", where='kind == "alarm"', per='kind != "alarm"', prior=(1, 10)),
]
site_readings = WindowedFeatureView(
    name="site_readings", entity=site, source=readings,
    windows=[timedelta(seconds=30), timedelta(minutes=10), timedelta(hours=1), LIFETIME],
    aggregates=AGGREGATES,
)
sensor_readings = WindowedFeatureView(
    name="sensor_readings", entity=sensor, source=readings,
    windows=[timedelta(minutes=5), timedelta(hours=2), 1],
    aggregates=AGGREGATES,
)
site_sensor = WindowedFeatureView(
    name="site_sensor", entities=[site, sensor], source=readings,
    windows=[timedelta(minutes=20), LIFETIME],
    aggregates=AGGREGATES,
)
"""

START = pd.Timestamp("2025-01-01", tz="UTC")
KINDS = ["ok", "alarm", "warn"]
SCHEMA = pa.schema(
    [
        ("site_id", pa.int64()),
        ("sensor", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("kind", pa.string()),
        ("value", pa.float64()),
        ("level", pa.int64()),
    ]
)


def _table(rows: list[tuple]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in SCHEMA]
    arrays = []
    for field, col in zip(SCHEMA, cols, strict=True):
        if field.name == "ts":
            col = [START + pd.Timedelta(seconds=s) for s in col]
        arrays.append(pa.array(list(col), type=field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _write_repo(dest: Path) -> Path:
    (dest / "data").mkdir(parents=True)
    seed = [
        (1, "a", 0, "ok", 1.5, 2),
        (2, "b", 5, "alarm", None, None),
        (1, "b", 9, "warn", -3.0, 1),
    ]
    pa.parquet.write_table(_table(seed), dest / "data" / "readings.parquet")
    text = set_project((EXAMPLE_REPO / "feature_store.yaml").read_text())
    (dest / "feature_store.yaml").write_text(text)
    (dest / "repo.py").write_text(REPO_PY)
    return dest


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def sensors(request, tmp_path_factory):
    import pyarrow.parquet  # noqa: F401 - pa.parquet

    from framework.declare.repo import FeatureRepo
    from framework.prepare.apply import apply

    path = _write_repo(tmp_path_factory.mktemp("sensors") / "repo")
    if request.param == "redis":
        request.getfixturevalue("redis_server")
        repo = FeatureRepo(path, redis_yaml(path))
    else:
        repo = FeatureRepo(path)
    apply(repo)
    return repo


# -- the oracle: plain Python over every known event, written from the definitions -----


def _oracle(events: list[tuple], keys: tuple, t: int, spec) -> dict:
    """Every feature of ``spec`` for entity ``keys`` at second ``t``; ``events`` in log
    order (ties in time: later in the list is later)."""
    key_pos = {"site_id": 0, "sensor": 1}
    mine = [
        e for e in events if tuple(e[key_pos[k]] for k in spec.entity_keys) == keys and e[2] <= t
    ]
    out = {}
    for agg in spec.aggregates:
        col = {"value": 4, "level": 5, "kind": 3}.get(agg.column or "")
        for w in spec.windows:
            rows = [e for e in mine if w == 0 or e[2] > t - w]
            if agg.function == "ratio":  # (alarms + 1) / (other readings + 10)
                alarms = sum(1 for e in rows if e[3] == "alarm")
                others = sum(1 for e in rows if e[3] is not None and e[3] != "alarm")
                out[spec.feature_name(agg, w)] = (alarms + 1) / (others + 10)
                continue
            if agg.where == 'kind == "alarm"':
                rows = [e for e in rows if e[3] == "alarm"]
            elif agg.where == 'kind != "alarm"':
                rows = [e for e in rows if e[3] != "alarm"]
            vals = [e[col] for e in rows if e[col] is not None] if col is not None else []
            fn = agg.function
            if fn == "count":
                v = len(rows)
            elif fn == "sum":
                v = sum(vals) if vals else 0
            elif fn == "mean":
                v = sum(vals) / len(vals) if vals else None
            elif fn in ("min", "max"):
                v = (min if fn == "min" else max)(vals) if vals else None
            elif fn == "count_distinct":
                v = len(set(vals))
            else:  # last: the latest in time, ties: later in the log
                latest = sorted(
                    [(e[2], i) for i, e in enumerate(rows) if e[col] is not None],
                )
                v = rows[latest[-1][1]][col] if latest else None
            out[spec.feature_name(agg, w)] = v
    return out


def _same(a, b) -> bool:
    if b is None or (isinstance(b, float) and np.isnan(b)):
        return a is None or (isinstance(a, float) and np.isnan(a)) or a is pd.NA
    if isinstance(b, float):
        return a is not None and abs(float(a) - b) <= 1e-9 * max(1.0, abs(b))
    return a == b


# -- strategies -------------------------------------------------------------------------

_event = st.tuples(
    st.integers(1, 3),
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 4 * 3600),
    st.sampled_from(KINDS),
    st.one_of(st.none(), st.integers(-50, 50).map(lambda x: x / 4)),
    st.one_of(st.none(), st.integers(-5, 5)),
)


@st.composite
def _scenario(draw):
    log = draw(st.lists(_event, min_size=1, max_size=40))
    t0 = draw(st.integers(0, 4 * 3600))
    pushes = draw(st.lists(st.lists(_event, min_size=1, max_size=6), max_size=3))
    known = log + [e for batch in pushes for e in batch]
    anchors = [e[2] for e in known]
    offsets = [0, 1, 30, 300, 600, 1200, 3600, 7200, 86_400]
    candidates = [a + o for a in anchors for o in offsets] + [t0, t0 + 10**6]
    reads = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=6))
    reads = [max(r, t0) for r in reads]
    return log, t0, pushes, reads


def _reset(repo, log: list[tuple]) -> None:
    import pyarrow.parquet as pq

    data = Path(repo.path) / "data"
    for f in (data / "readings.parquet.inbox").glob("*.parquet"):
        f.unlink()
    frame = _table(log)
    pq.write_table(frame, data / "readings.parquet")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=_scenario())
@example(  # a new entity's only frame, out of time order within its batch
    scenario=(
        [(1, "b", 0, "ok", None, None)],
        0,
        [
            [(1, "a", 0, "ok", None, None)] * 4
            + [(1, "a", 1, "ok", 2.0, 1), (1, "a", 0, "warn", None, 3)]
        ],
        [0, 1],
    )
)
def test_online_equals_the_oracle_after_pushes(sensors, scenario):
    from framework.features.materialize import write_window_states
    from framework.features.online import get_online_features
    from framework.features.push import push_events

    repo = sensors
    log, t0, pushes, reads = scenario
    _reset(repo, log)
    write_window_states(repo, (START + pd.Timedelta(seconds=t0)).to_pydatetime())
    for batch in pushes:
        result = push_events(repo, _table(batch), source="readings")
        assert result.online == "updated", result
    known = log + [e for batch in pushes for e in batch]
    specs = {s.name: s for s in repo.declared_window_specs}
    for spec in specs.values():
        key_pos = {"site_id": 0, "sensor": 1}
        entities = sorted({tuple(e[key_pos[k]] for k in spec.entity_keys) for e in known})
        entities.append(tuple(9 if k == "site_id" else "zz" for k in spec.entity_keys))
        rows = [
            {
                **dict(zip(spec.entity_keys, keys, strict=True)),
                "event_timestamp": START + pd.Timedelta(seconds=t),
            }
            for keys in entities
            for t in reads
        ]
        got = get_online_features(repo, rows, features=spec.feature_names)
        for i, row in enumerate(rows):
            keys = tuple(row[k] for k in spec.entity_keys)
            t = reads[i % len(reads)]
            want = _oracle(known, keys, t, spec)
            for name, value in want.items():
                have = got[name].iloc[i]
                if value is None and name.split("_")[-2] in ("count", "sum"):
                    value = 0
                assert _same(have, value), (spec.name, name, keys, t, have, value, t0)


def test_reads_before_the_materialization_are_refused(sensors):
    from framework.errors import DataError
    from framework.features.materialize import write_window_states
    from framework.features.online import get_online_features

    _reset(sensors, [(1, "a", 100, "ok", 1.0, 1)])
    write_window_states(sensors, (START + pd.Timedelta(seconds=500)).to_pydatetime())
    row = {"site_id": 1, "event_timestamp": START + pd.Timedelta(seconds=499)}
    with pytest.raises(DataError, match="before the last materialization"):
        get_online_features(sensors, [row], features=["site_kind_last_lifetime"])


def test_concurrent_pushes_for_one_entity_lose_nothing(sensors):
    from framework.features.materialize import write_window_states
    from framework.features.online import get_online_features
    from framework.features.push import push_events

    _reset(sensors, [(1, "a", 0, "ok", 1.0, 1)])
    write_window_states(sensors, (START + pd.Timedelta(seconds=10)).to_pydatetime())
    batches = [[(1, "a", 20 + i, "ok", float(j), 1) for i in range(5)] for j in range(16)]
    errors: list[BaseException] = []

    def send(batch):
        try:
            assert push_events(sensors, _table(batch), source="readings").online == "updated"
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    at = START + pd.Timedelta(seconds=100)
    got = get_online_features(
        sensors,
        [{"site_id": 1, "event_timestamp": at}],
        features=["site_readings_count_lifetime", "site_value_sum_10m"],
    )
    assert got["site_readings_count_lifetime"].iloc[0] == 1 + 16 * 5
    assert got["site_value_sum_10m"].iloc[0] == pytest.approx(1.0 + 5 * sum(range(16)))


def test_materialization_trims_and_replays(sensors):
    """After a materialization the state holds only events inside the longest finite
    window (plus the base); events accepted but not merged are replayed, once."""
    from framework.collect.ingest import inbox_files
    from framework.features.materialize import write_window_states
    from framework.features.online import get_online_features
    from framework.features.push import push_events
    from framework.features.window_state import decode_frames
    from framework.features.window_store import window_store

    _reset(sensors, [(1, "a", s, "ok", 1.0, 1) for s in range(0, 7200, 60)])
    t0 = START + pd.Timedelta(seconds=7200)
    write_window_states(sensors, t0.to_pydatetime())
    push_events(sensors, _table([(1, "a", 7300, "alarm", 2.0, 1)]), source="readings")
    assert len(inbox_files(sensors)) == 1
    write_window_states(sensors, (t0 + timedelta(seconds=200)).to_pydatetime())  # replays it
    store = window_store(sensors.store)
    meta, blobs = store.read({"site_readings": ["1"]})["site_readings"]
    state = decode_frames(blobs[0], store.merged("site_readings", meta.gen))
    # 1 h is the longest finite window: events after t0 + 200 s - 1 h, and the pushed one
    assert min(state.times) > (t0 + timedelta(seconds=200 - 3600)).value // 1000
    assert len(state.times) == sum(1 for s in range(0, 7200, 60) if s > 3800) + 1
    got = get_online_features(
        sensors,
        [{"site_id": 1, "event_timestamp": t0 + timedelta(seconds=400)}],
        features=["site_readings_count_lifetime", "site_alarms_count_1h"],
    )
    assert got["site_readings_count_lifetime"].iloc[0] == 121
    assert got["site_alarms_count_1h"].iloc[0] == 1
