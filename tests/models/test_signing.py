"""Signed models: write access to data/models alone cannot make the service load a model."""

from __future__ import annotations

import json
import os
import pickle
import stat

import pytest
from sklearn.dummy import DummyClassifier

from framework.errors import ArtifactError, ConfigError
from framework.models import signing
from framework.models.metadata import ModelMeta
from framework.models.registry import Registry, _sha256


def _meta() -> ModelMeta:
    return ModelMeta(
        problem="fraud",
        task="binary",
        entity="card_id",
        feature_service="fraud_v1",
        features=["amount"],
        feature_dtypes={"amount": "float64"},
        metric="pr_auc",
        success_threshold=0.5,
        decision_threshold=0.5,
        success=True,
        winner="baseline",
        metrics={"validation": {"pr_auc": 0.6}, "test": {"pr_auc": float("nan")}},
        baseline={"test": {"pr_auc": 0.1}},
        candidates=[],
        split={},
        dataset={},
        validation={},
        categories={},
        reference={},
        label={},
        label_description="",
        spine={},
        events="",
        tuning_budget=1,
    )


@pytest.fixture
def artifact(tmp_path):
    model = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
    return Registry(tmp_path / "models").register(model, _meta())


class _Boom:
    """A pickle that would run code when loaded: it writes a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_registered_model_is_signed_and_loads(artifact):
    data = json.loads((artifact.path / "model.json").read_text())
    assert len(data["signature"]) == 64 and artifact.meta.signature == data["signature"]
    assert artifact.load_model().predict([[0.5]]).shape == (1,)


def test_a_replaced_pickle_with_a_recomputed_checksum_is_never_unpickled(artifact, tmp_path):
    marker = tmp_path / "ran"
    file = artifact.path / "model.joblib"
    file.write_bytes(pickle.dumps(_Boom(str(marker))))
    meta_file = artifact.path / "model.json"
    data = json.loads(meta_file.read_text())
    data["sha256"] = _sha256(file)  # what an attacker with write access would do
    meta_file.write_text(json.dumps(data))
    again = Registry(artifact.path.parent.parent).get("fraud", artifact.version)
    with pytest.raises(ArtifactError, match="does not carry a valid signature"):
        again.load_model()
    assert not marker.exists()  # the pickle was never loaded


def test_a_pickle_swapped_between_the_check_and_the_load_is_never_unpickled(
    artifact, tmp_path, monkeypatch
):
    """The race: the file is checked, then swapped, then loaded. A hook swaps it the
    moment the checksum is computed; the model loaded must be the bytes checked."""
    import hashlib

    from framework.models import registry

    marker = tmp_path / "ran"
    file = artifact.path / "model.joblib"
    evil = pickle.dumps(_Boom(str(marker)))

    class Swapping:
        def __init__(self, *args):
            self._digest = hashlib.sha256(*args)

        def update(self, data):
            self._digest.update(data)

        def hexdigest(self):
            file.write_bytes(evil)  # the swap, right after the check
            return self._digest.hexdigest()

    monkeypatch.setattr(registry, "hashlib", type("H", (), {"sha256": Swapping}))
    model = artifact.load_model()
    assert model.predict([[0.5]]).shape == (1,)  # the checked model
    assert file.read_bytes() == evil and not marker.exists()  # swapped, never unpickled


def test_a_changed_model_json_is_refused(artifact):
    meta_file = artifact.path / "model.json"
    data = json.loads(meta_file.read_text())
    data["decision_threshold"] = 0.01  # every entity flagged
    meta_file.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="valid signature"):
        Registry(artifact.path.parent.parent).get("fraud", artifact.version).load_model()


@pytest.mark.parametrize("change", ["remove", "other key"])
def test_unsigned_or_foreign_signatures_are_refused(artifact, monkeypatch, change):
    meta_file = artifact.path / "model.json"
    data = json.loads(meta_file.read_text())
    if change == "remove":
        del data["signature"]
        meta_file.write_text(json.dumps(data))
        message = "is not signed"
    else:
        monkeypatch.setenv("LIFECYCLE_MODEL_KEY", "another deployment")
        message = "signed with another key"
    with pytest.raises(ArtifactError, match=message):
        Registry(artifact.path.parent.parent).get("fraud", artifact.version).load_model()


def test_a_model_json_changed_after_it_was_read_is_refused(artifact):
    meta_file = artifact.path / "model.json"
    data = json.loads(meta_file.read_text())
    data["winner"] = "lightgbm"
    data["signature"] = signing.sign(data)  # validly signed, but not what was read
    meta_file.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="changed since it was read"):
        artifact.load_model()


def test_without_a_key_one_is_made_outside_data_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("LIFECYCLE_MODEL_KEY", raising=False)
    monkeypatch.delenv("LIFECYCLE_MODEL_KEY_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    first = signing.model_key()
    path = tmp_path / "config" / "lifecycle" / "model.key"
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64 and signing.model_key() == first  # made once, then reused


def test_a_named_key_file_that_is_missing_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("LIFECYCLE_MODEL_KEY", raising=False)
    monkeypatch.setenv("LIFECYCLE_MODEL_KEY_FILE", str(tmp_path / "nope.key"))
    with pytest.raises(ConfigError, match="does not exist"):
        signing.model_key()
    (tmp_path / "nope.key").write_text("a key kept in a secret store\n")
    assert signing.model_key() == b"a key kept in a secret store"


def _two_versions(tmp_path):
    registry = Registry(tmp_path / "models")
    for _ in range(2):
        model = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
        registry.register(model, _meta())
    return registry


def test_the_stages_are_signed_with_what_production_serves(tmp_path):
    import shutil

    registry = _two_versions(tmp_path)
    registry.promote("fraud", "v1")
    stages_file = registry.root / "fraud" / "stages.json"
    signed = json.loads(stages_file.read_text())
    assert signed["production"] == "v1" and signed["serial"] == 1
    assert signed["sha256"] == registry.get("fraud", "v1").meta.sha256
    assert registry.get("fraud").version == "v1"
    # an edited stages file (production switched by hand) is refused
    stages_file.write_text(json.dumps({**signed, "production": "v2"}))
    with pytest.raises(ArtifactError, match="does not carry a valid signature"):
        registry.get("fraud")
    assert registry.stage_of("fraud", "v1") == "refused"
    # so is an unsigned one, and one signed for another problem
    stages_file.write_text(json.dumps({"production": "v1"}))
    with pytest.raises(ArtifactError, match="is not signed"):
        registry.get("fraud")
    registry.promote("fraud", "v2")  # a promotion replaces a refused file
    assert registry.get("fraud").version == "v2" and registry.stage_of("fraud", "v2") == (
        "production"
    )
    other = registry.root / "other"
    other.mkdir()
    shutil.copy(stages_file, other / "stages.json")
    with pytest.raises(ArtifactError, match="signed for problem 'fraud': a copied file"):
        registry.stages("other")


def test_a_version_copied_into_another_folder_is_refused(tmp_path):
    import shutil

    registry = _two_versions(tmp_path)
    v1, v2 = registry.root / "fraud" / "v1", registry.root / "fraud" / "v2"
    shutil.rmtree(v2)
    shutil.copytree(v1, v2)  # a signed v1 put where v2 was
    with pytest.raises(ArtifactError, match="holds fraud v1, not fraud v2: a copied or renamed"):
        registry.get("fraud", "v2")


def test_an_older_stages_file_put_back_is_refused_also_after_a_restart(tmp_path, monkeypatch):
    """A validly signed but older stages file (a replay) is refused: by a running
    service, and by a new process on a host that has seen the newer promotion."""
    from framework.deploy.service.models import ModelCache

    monkeypatch.setenv("LIFECYCLE_STATE_DIR", str(tmp_path / "state"))
    registry = _two_versions(tmp_path)
    registry.promote("fraud", "v1")
    stages_file = registry.root / "fraud" / "stages.json"
    older = stages_file.read_bytes()
    registry.promote("fraud", "v2")
    cache = ModelCache(registry)
    assert cache.get("fraud").artifact.version == "v2"
    stages_file.write_bytes(older)  # validly signed, but older: a replay
    os.utime(stages_file, ns=(1, 1))  # a new mtime: the cache looks again
    with pytest.raises(ArtifactError, match="is promotion 1, but this host has seen promotion 2"):
        cache.get("fraud")
    restarted = Registry(registry.root)  # a new process, same host
    with pytest.raises(ArtifactError, match="an older stages file was put back"):
        restarted.get("fraud")
    # another host (another state folder) has not seen promotion 2: it cannot tell
    monkeypatch.setenv("LIFECYCLE_STATE_DIR", str(tmp_path / "elsewhere"))
    assert Registry(registry.root).get("fraud").version == "v1"
    monkeypatch.setenv("LIFECYCLE_STATE_DIR", str(tmp_path / "state"))
    registry.promote("fraud", "v1")  # a real promotion after the replay: serial 3
    assert json.loads(stages_file.read_text())["serial"] == 3
    assert cache.get("fraud").artifact.version == "v1"
