"""The model registry (embedded default: files under ``<repo>/data/models``).

Each trained model is a version ``v<N>`` of its problem::

    data/models/<problem>/v<N>/model.joblib   the fitted pipeline (preprocessing + model)
    data/models/<problem>/v<N>/model.json     everything else: feature service and features,
                                              label spec, dataset hash, metrics of every
                                              candidate, decision threshold, reference
                                              statistics, library versions, sha256 of the artifact
    data/models/<problem>/stages.json         which version is in production

A new version is a ``candidate``; ``promote`` makes one ``production``. Loading
checks the signature of ``model.json`` (HMAC under a key kept outside ``data/``,
see :mod:`framework.models.signing`) and the artifact's sha256 recorded there
before unpickling anything: a changed or foreign file is refused, also one
replaced together with a recomputed checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.errors import ArtifactError
from framework.models.metadata import ModelMeta
from framework.models.signing import SIGNATURE_FIELD, same_content, sign, verify

if TYPE_CHECKING:
    import pandas as pd

if TYPE_CHECKING:
    from framework.declare.repo import FeatureRepo

__all__ = ["ModelArtifact", "Registry", "registry_of"]

_VERSION = re.compile(r"^v([1-9][0-9]*)$")
_PROBLEM = re.compile(r"^[a-z][a-z0-9_]*$")
LIBRARIES = (
    "feast",
    "lightgbm",
    "scikit-learn",
    "pandas",
    "numpy",
    "great-expectations",
    "lifecycle-framework",
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


@dataclass(frozen=True)
class ModelArtifact:
    """A registered model version: its metadata, and the fitted pipeline on demand."""

    path: Path
    meta: ModelMeta
    serial: int | None = None  # the promotion's serial, when read as the production one

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def problem(self) -> str:
        return self.meta.problem

    def verified_meta(self) -> ModelMeta:
        """``model.json`` as on disk, after checking its signature; it must be the metadata
        this artifact was read with (a file changed since is refused too)."""
        file = self.path / "model.json"
        what = f"{self.problem} {self.version} ({file})"
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{what} cannot be read: {exc}") from exc
        verify(data, what)
        if not same_content(ModelMeta.from_json(data, str(file)).to_json(), self.meta.to_json()):
            raise ArtifactError(f"{what} changed since it was read; load the artifact again.")
        return self.meta

    def load_reference(self) -> pd.DataFrame:
        """The training reference sample (features, label, score), checked by sha256."""
        import pandas as pd

        info = self.meta.reference
        if "file" not in info:
            raise ArtifactError(
                f"{self.problem} {self.version} has no reference statistics (it was trained "
                "before monitoring existed); retrain it with `lifecycle train "
                f"{self.problem}` to monitor it."
            )
        self.verified_meta()  # the checksum below is the one signed
        path = self.path / info["file"]
        if not path.is_file() or _sha256(path) != info["sha256"]:
            raise ArtifactError(f"The reference sample {path} is missing or was changed.")
        return pd.read_parquet(path)

    def load_model(self) -> Any:
        """The fitted pipeline, after checking the signature of ``model.json`` and the
        pickle's sha256 recorded there: nothing is unpickled before both hold. The file
        is read once; the bytes checked are the bytes loaded (a file swapped after the
        check is never read)."""
        import io

        import joblib

        meta = self.verified_meta()
        file = self.path / "model.joblib"
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"{file} cannot be read: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != meta.sha256:
            raise ArtifactError(
                f"{file} does not match the checksum recorded for {self.problem} {self.version} "
                f"(recorded {self.meta.sha256}, found {actual}): refusing to load a changed "
                "or foreign file. Retrain, or restore the original artifact."
            )
        return joblib.load(io.BytesIO(data))


def _promotions_file(root: Path, problem: str) -> Path:
    """Where this host keeps the latest promotion serial it has seen of ``problem`` in the
    registry at ``root``: outside ``data/`` (``LIFECYCLE_STATE_DIR``, else
    ``$XDG_STATE_HOME/lifecycle``, else ``~/.local/state/lifecycle``), so that an older
    signed ``stages.json`` put back in the folder is refused also after a restart."""
    base = os.environ.get("LIFECYCLE_STATE_DIR") or str(
        Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "lifecycle"
    )
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(base) / "promotions" / digest / problem


def _seen_serial(root: Path, problem: str) -> int:
    try:
        return int(_promotions_file(root, problem).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _record_serial(root: Path, problem: str, serial: int) -> None:
    """Raise the high-water mark (best effort: an unwritable state folder keeps none)."""
    path = _promotions_file(root, problem)
    try:
        if serial <= _seen_serial(root, problem):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(str(serial))
        os.replace(partial, path)
    except OSError:
        pass


def registry_of(repo: FeatureRepo) -> Registry:
    """The registry of ``repo`` (at its catalog's models folder)."""
    return Registry(repo.models_dir)


class Registry:
    """Model versions of every problem under one folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _problem_dir(self, problem: str) -> Path:
        if not _PROBLEM.match(problem or ""):
            raise ArtifactError(f"{problem!r} is not a problem name (lower_snake_case).")
        return self.root / problem

    def _version_dir(self, problem: str, version: str) -> Path:
        if not _VERSION.match(version or ""):
            raise ArtifactError(
                f"{version!r} is not a model version; versions look like v1, v2, ..."
            )
        return self._problem_dir(problem) / version

    def versions(self, problem: str) -> list[str]:
        folder = self._problem_dir(problem)
        found = [
            p.name
            for p in folder.glob("v*")
            if _VERSION.match(p.name) and (p / "model.json").exists()
        ]
        return sorted(found, key=lambda v: int(v[1:]))

    def problems(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _PROBLEM.match(p.name))

    def record_decision(self, problem: str, decision: dict[str, Any]) -> None:
        """Append a champion/challenger decision to ``<problem>/decisions.json``."""
        path = self._problem_dir(problem) / "decisions.json"
        history = json.loads(path.read_text()) if path.exists() else []
        history.append({**decision, "decided_at": datetime.now(UTC).isoformat()})
        _write_json(path, history)

    def decisions(self, problem: str) -> list[dict[str, Any]]:
        path = self._problem_dir(problem) / "decisions.json"
        return json.loads(path.read_text()) if path.exists() else []

    def stages(self, problem: str) -> dict[str, Any]:
        """``stages.json``, checked: it is signed with what production serves (problem,
        version, the model's and the dataset's hashes, a serial that grows with each
        promotion), so an edited, copied or unsigned file is refused ({} when none)."""
        path = self._problem_dir(problem) / "stages.json"
        if not path.exists():
            return {}
        what = f"The stages of {problem} ({path})"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{what} cannot be read: {exc}") from exc
        try:
            verify(data, what)
        except ArtifactError as exc:
            raise ArtifactError(
                f"{exc} Promote a version again (`lifecycle models promote {problem} VERSION`)."
            ) from None
        if data.get("problem") != problem:
            raise ArtifactError(
                f"{what} was signed for problem {data.get('problem')!r}: a copied file; "
                f"refusing it. Promote a version of {problem} again."
            )
        serial, seen = int(data.get("serial", 0)), _seen_serial(self.root, problem)
        if serial < seen:
            raise ArtifactError(
                f"{what} is promotion {serial}, but this host has seen promotion {seen}: an "
                f"older stages file was put back. Refusing it; promote a version of {problem} "
                "again."
            )
        _record_serial(self.root, problem, serial)
        return dict(data)

    def get(self, problem: str, version: str | None = None) -> ModelArtifact:
        """A version, or the production one when ``version`` is None (the one the signed
        stages name, with the model file they were signed with)."""
        stages = None
        if version is None:
            stages = self.stages(problem)
            version = stages.get("production")
            if version is None:
                raise ArtifactError(
                    f"Problem {problem!r} has no production model; promote one with "
                    f"`lifecycle models promote {problem} VERSION`."
                )
        path = self._version_dir(problem, version)
        meta_file = path / "model.json"
        if not meta_file.exists():
            known = self.versions(problem) if self._problem_dir(problem).exists() else []
            raise ArtifactError(f"Problem {problem!r} has no model {version}; it has {known}.")
        meta = ModelMeta.from_json(json.loads(meta_file.read_text()), str(meta_file))
        if (meta.problem, meta.version) != (problem, version):
            raise ArtifactError(
                f"{meta_file} holds {meta.problem} {meta.version}, not {problem} {version}: a "
                "copied or renamed version; refusing it."
            )
        if stages is not None and stages.get("sha256") != meta.sha256:
            raise ArtifactError(
                f"The stages of {problem} name {version} with another model file than "
                f"{meta_file} records: refusing it. Promote {version} again."
            )
        return ModelArtifact(path, meta, None if stages is None else int(stages["serial"]))

    def register(self, model: Any, meta: ModelMeta, reference: Any = None) -> ModelArtifact:
        """Save a new candidate version (the next number) and return it.

        ``reference`` (a pandas frame: a sample of the training rows with their
        label and score) is kept as ``reference.parquet`` for drift monitoring."""
        import joblib

        problem = meta.problem
        folder = self._problem_dir(problem)
        folder.mkdir(parents=True, exist_ok=True)
        existing = [int(v[1:]) for v in self.versions(problem)]
        number = max(existing, default=0) + 1
        while True:  # claim the folder atomically: mkdir fails if another run took it
            path = folder / f"v{number}"
            try:
                path.mkdir()
                break
            except FileExistsError:
                number += 1
        joblib.dump(model, path / "model.joblib")
        info = dict(meta.reference)
        if reference is not None:
            reference.to_parquet(path / "reference.parquet", index=False)
            info.update(
                file="reference.parquet",
                rows=len(reference),
                sha256=_sha256(path / "reference.parquet"),
            )
        full = meta.with_(
            version=f"v{number}",
            stage="candidate",
            created_at=datetime.now(UTC).isoformat(),
            sha256=_sha256(path / "model.joblib"),
            libraries=library_versions(),
            reference=info,
            signature="",
        )
        data = json.loads(json.dumps(full.to_json(), default=str))  # exactly as stored
        data[SIGNATURE_FIELD] = sign(data)
        _write_json(path / "model.json", data)
        return ModelArtifact(path, ModelMeta.from_json(data))

    def promote(self, problem: str, version: str, *, override: str | None = None) -> ModelArtifact:
        """Make ``version`` the production model (the previous one becomes archived).

        A kind with a promotion gate (a ranking: a counterfactual CTR lift clear of zero)
        refuses a model its evidence does not support, unless ``override`` gives the
        reason to promote it anyway; the override is recorded in the signed stages file."""
        from framework.errors import PromotionRefused
        from framework.tasks import task_of

        artifact = self.get(problem, version)
        artifact.load_model()  # refuse to promote a changed artifact
        refusal = task_of(artifact.meta.task).promotion_refusal(artifact.meta)
        if refusal and not (override and override.strip()):
            raise PromotionRefused(
                f"Not promoted: {refusal}. To promote it anyway, give the reason: "
                f'`lifecycle models promote {problem} {version} --override "why"`.'
            )
        try:
            stages = self.stages(problem)
        except ArtifactError:
            stages = {}  # an unsigned or damaged file: this promotion replaces it
        previous = stages.get("production")
        history = list(stages.get("history", []))
        if previous and previous != version:
            history.append(previous)
        serial = max(int(stages.get("serial", 0)), _seen_serial(self.root, problem)) + 1
        data: dict[str, Any] = {
            "problem": problem,
            "production": version,
            "promoted_at": datetime.now(UTC).isoformat(),
            "serial": serial,
            "sha256": artifact.meta.sha256,
            "dataset": artifact.meta.dataset.get("hash"),
            "history": history,
        }
        if refusal:
            data["override"] = {"version": version, "reason": str(override), "refused": refusal}
        data[SIGNATURE_FIELD] = sign(data)
        _write_json(self._problem_dir(problem) / "stages.json", data)
        _record_serial(self.root, problem, serial)
        return artifact

    def stage_of(self, problem: str, version: str) -> str:
        try:
            stages = self.stages(problem)
        except ArtifactError:
            return "refused"  # stages.json unsigned or changed: nothing is production
        if stages.get("production") == version:
            return "production"
        return "archived" if version in stages.get("history", []) else "candidate"
