"""Online-store values are data, not code: a value someone else wrote into the shared
store (Redis in production) is decoded by a format that cannot run code, and one that
does not decode leaves that entity's features of the view absent (counted in /metrics),
never a 5xx and never a crash."""

from __future__ import annotations

import marshal
import pickle

import pytest

from framework.features.window_state import (
    BASE_TOKEN,
    DamagedState,
    decode_frames,
    event_frames,
)
from tests.helpers import post_predict, scrape, user_ids


class _Payload:
    """Unpickled, this would write the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile(marker) -> list[bytes]:
    code = compile(f"open({str(marker)!r}, 'w')", "x", "exec")
    return [
        pickle.dumps(_Payload(str(marker))),
        len(marshal.dumps(code)).to_bytes(4, "little") + BASE_TOKEN + marshal.dumps(code),
        b"\x00" * 3,
        (10**6).to_bytes(4, "little") + BASE_TOKEN + b"[]",
        _crafted(),
    ]


def _crafted() -> bytes:
    """A value in the state's own format whose contents are not a state (strings for a
    base, one column where the view has several): decodes, then fails to evaluate."""
    import json

    header = json.dumps([["x", "y"], "q", {"b": 8}]).encode()
    data = len(header).to_bytes(4, "little") + header + (1).to_bytes(8, "little")
    return len(data).to_bytes(4, "little") + BASE_TOKEN + data


def test_hostile_values_in_the_online_store_are_refused_over_http(served, tmp_path):
    from framework.features.window_store import window_store

    repo, url = served
    marker = tmp_path / "ran"
    states = window_store(repo.store)
    view = next(s.name for s in repo.declared_window_specs if "user_id" in s.entity_keys)
    meta = states.meta(view)
    before = scrape(url).get("lifecycle_online_state_damaged_total", {}).get((), 0)
    answered = post_predict(url, user_ids(repo)[:40]).json()["predictions"]
    ids = [p["user_id"] for p in answered if p["feature_status"] == "ok"][:6]
    assert len(ids) == 6
    blobs = _hostile(marker)
    states.write_states(view, meta.gen, {str(u): b for u, b in zip(ids, blobs, strict=False)})
    answer = post_predict(url, ids)
    assert answer.status_code == 200, answer.text
    got = {p["user_id"]: p for p in answer.json()["predictions"]}
    for u in ids[: len(blobs)]:
        assert got[u]["feature_status"] in ("partial", "defaults"), got[u]
    assert got[ids[-1]]["feature_status"] == "ok"  # its state was left alone
    assert not marker.exists()  # nothing ran
    after = scrape(url)["lifecycle_online_state_damaged_total"][()]
    assert after - before == len(blobs)


@pytest.fixture(scope="module")
def state_blob(applied_repo):
    """A real state: one entity's frame of a batch of the example's events."""
    import pandas as pd
    import pyarrow as pa

    spec = next(s for s in applied_repo.declared_window_specs if "user_id" in s.entity_keys)
    events = pd.read_parquet(spec.source_path).head(200)
    frames = event_frames(spec, pa.Table.from_pandas(events, preserve_index=False), b"t" * 32)
    return max(frames.values(), key=len)


def test_damaged_bytes_raise_damaged_state_or_decode(state_blob):
    """Truncated or byte-flipped real states either decode or raise ``DamagedState``:
    nothing else escapes (no crash, no other exception). Both outcomes are reached."""
    import numpy as np

    rng = np.random.default_rng(0)
    outcomes = {"decoded": 0, "damaged": 0}
    for _ in range(3_000):
        blob = bytearray(state_blob[: rng.integers(0, len(state_blob) + 1)])
        if rng.random() < 0.3:
            blob = bytearray(state_blob)  # whole, with flips only
        for _ in range(rng.integers(0, 4)):
            if blob:
                blob[rng.integers(0, len(blob))] = rng.integers(0, 256)
        try:
            decode_frames(bytes(blob))
            outcomes["decoded"] += 1
        except DamagedState:
            outcomes["damaged"] += 1
    assert min(outcomes.values()) > 100, outcomes
    assert decode_frames(state_blob) is not None  # the intact one decodes


def test_a_tampered_stages_file_is_refused_over_http_and_health_names_the_problem(served):
    import json

    import requests

    repo, url = served
    stages = repo.models_dir / "spend" / "stages.json"
    signed = stages.read_text()
    other = json.loads(signed)
    versions = sorted((repo.models_dir / "spend").glob("v*"))
    other["production"] = versions[0].name if versions[0].name != other["production"] else "v9"
    try:
        stages.write_text(json.dumps(other))
        health = requests.get(f"{url}/health", timeout=30).json()
        assert health["problems"]["spend"]["status"] == "unavailable"
        assert "signature" in health["problems"]["spend"]["reason"]
        assert health["problems"]["churn"]["status"] == "serving"
        body = {"problem": "spend", "entities": [{"user_id": 1}]}
        answer = requests.post(f"{url}/predict", json=body, timeout=30)
        assert 400 <= answer.status_code < 500 or answer.status_code == 503, answer.text
        assert "signature" in answer.text
    finally:
        stages.write_text(signed)
    body = {"problem": "spend", "entities": [{"user_id": 1}]}
    assert requests.post(f"{url}/predict", json=body, timeout=30).status_code == 200


_EVIL = """import pathlib
pathlib.Path({marker!r}).write_text("ran")
def {name}(features_df):
    return features_df
"""


def _tamper_registry(repo, marker) -> str:
    """Write into the registry, as someone with write access to it could, an on-demand
    view of the repo's name whose stored function source writes ``marker`` when run."""
    import copy

    from feast.transformation.pandas_transformation import PandasTransformation

    declared = repo.contents.on_demand_feature_views[0]
    evil = copy.copy(declared)
    source = _EVIL.format(marker=str(marker), name="evil")
    evil.feature_transformation = PandasTransformation(udf=lambda df: df, udf_string=source)
    repo.store.registry.apply_feature_view(evil, repo.store.config.project, commit=True)
    return declared.name


def test_a_tampered_registry_runs_nothing_in_the_service(served, tmp_path):
    """The registry is data: an on-demand view's function stored there is not run (Feast
    itself would run it, shown in a process without the guard); the service answers with
    the declared function."""
    import requests

    from framework.features import online_read
    from framework.prepare.apply import register

    repo, url = served
    marker = tmp_path / "ran"
    name = _tamper_registry(repo, marker)
    assert not marker.exists()
    try:
        repo.store.refresh_registry()
        online_read._READERS.clear()  # the service reads the registry again
        answer = post_predict(url, user_ids(repo)[:3])
        assert answer.status_code == 200, answer.text
        assert not marker.exists()  # the stored function did not run in the service
        health = requests.get(f"{url}/health", timeout=30)
        assert health.status_code == 200 and not marker.exists()
        # the tampering is real: plain Feast, reading the same registry, runs it
        _plain_feast_reads(repo, name)
        assert marker.exists()
    finally:
        register(repo)  # apply writes the declared function back
        repo.store.refresh_registry()
        online_read._READERS.clear()
    marker.unlink()
    _plain_feast_reads(repo, name)  # the registry holds the declared function again
    assert not marker.exists()


def _plain_feast_reads(repo, name: str) -> None:
    """Feast without the guard, in a process of its own, rebuilds the view ``name``."""
    import subprocess
    import sys

    code = (
        "import sys; from feast import FeatureStore; "
        "s = FeatureStore(repo_path=sys.argv[1], fs_yaml_file=sys.argv[2]); "
        f"s.get_on_demand_feature_view({name!r})"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(repo.path), str(repo.fs_yaml)],
        capture_output=True,
        check=False,
        timeout=120,
    )


def test_a_swapped_model_file_is_refused_over_http_and_nothing_runs(served, tmp_path):
    import os

    import requests

    repo, url = served
    marker = tmp_path / "ran"
    version = repo.models_dir / "spend" / "stages.json"
    production = json_of(version)["production"]
    model = repo.models_dir / "spend" / production / "model.joblib"
    original = model.read_bytes()
    body = {"problem": "spend", "entities": [{"user_id": 1}]}
    try:
        model.write_bytes(pickle.dumps(_Payload(str(marker))))
        os.utime(version)  # the service looks at the stages again and reloads
        answer = requests.post(f"{url}/predict", json=body, timeout=30)
        assert 400 <= answer.status_code < 500, answer.text  # refused, named; never a 5xx
        assert "checksum" in answer.text
        health = requests.get(f"{url}/health", timeout=30).json()
        assert health["problems"]["spend"]["status"] == "unavailable"
        assert health["problems"]["churn"]["status"] == "serving"
        assert not marker.exists()
    finally:
        model.write_bytes(original)
        os.utime(version)
    assert requests.post(f"{url}/predict", json=body, timeout=30).status_code == 200


def json_of(path):
    import json

    return json.loads(path.read_text())
