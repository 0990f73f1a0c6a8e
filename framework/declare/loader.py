"""Loading a repo's declarations: its Python files, imported fresh, and a snapshot of
the declarations that need no Feast object.

``repo_files(root)`` lists the files a repo declares in, by Feast's rule (every ``.py``
under the root but ``__init__.py``, less ``.feastignore``'s patterns and the usual
caches), without importing Feast. ``importing(root)`` imports them fresh; an error in
one is a single line naming its file and line.

Listing the jobs or the experiments means importing every file of the repo, and with
them Feast (a source is a Feast object): seconds, for a command that prints a table.
``cached(repo, name, load)`` keeps the checked result of ``load()`` as JSON beside
the repo's data, keyed by the bytes of every repo file and the framework's version:
while no file changes, the next ``schedule list`` or ``experiment list`` reads it
instead of importing the repo. A value that JSON cannot hold (a job whose command
is a Python function) is not kept; neither is anything when the folder is read-only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from framework.errors import FeatureRepoError

__all__ = ["cached", "fingerprint", "importing", "repo_files"]

_FORMAT = 1  # bump when the encoding changes
_IGNORED: tuple[str, ...] = (
    ".git",
    ".feastignore",
    ".venv",
    "**/.ipynb_checkpoints",
    "**/.pytest_cache",
    "**/__pycache__",
)

T = TypeVar("T")


def _feastignore(root: Path) -> list[str]:
    path = root / ".feastignore"
    if not path.is_file():
        return []
    patterns = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [p for p in patterns if p]


def repo_files(root: Path) -> list[Path]:
    """The repo's Python files, sorted (what ``feast.repo_operations.get_repo_files``
    returns; ``tests/declare/test_repo.py`` compares the two)."""
    ignored: set[Path] = set()
    for pattern in {*_feastignore(root), *_IGNORED}:
        for match in root.glob(pattern):
            if match.is_file():
                ignored.add(match.resolve())
            else:
                ignored |= {p.resolve() for p in match.glob("**/*.py") if p.is_file()}
    found = {p.resolve() for p in root.glob("**/*.py") if p.is_file() and p.name != "__init__.py"}
    return sorted(found - ignored)


def fingerprint(root: Path) -> str:
    """A digest of every repo file's path and bytes, and of the framework's version."""
    from framework import __version__

    digest = hashlib.sha256(f"{_FORMAT}:{__version__}".encode())
    for path in repo_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def importing(repo: Path) -> Iterator[None]:
    """Import the repo's modules fresh, with the repo as working directory and on
    sys.path; a declaration that fails to import is one ``FeatureRepoError`` line."""
    names = {p.stem for p in repo_files(repo)}
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]
    cwd = os.getcwd()
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    try:
        with _declaration_errors(repo):
            yield
    finally:
        os.chdir(cwd)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(repo))


@contextlib.contextmanager
def _declaration_errors(repo: Path) -> Iterator[None]:
    """A declaration that fails to import becomes one line naming the file and line of
    the repo where it failed, and what failed (the CLI shows it without a traceback)."""
    try:
        yield
    except FeatureRepoError as exc:
        where = _repo_frame(exc, repo)
        if where and not str(exc).startswith(where):
            raise FeatureRepoError(f"{where}: {exc}") from exc
        raise
    except Exception as exc:
        where = _repo_frame(exc, repo) or str(repo)
        raise FeatureRepoError(
            f"{where}: {type(exc).__name__}: {exc}. Fix the declaration there and run again."
        ) from exc


def _repo_frame(exc: BaseException, repo: Path) -> str | None:
    """``file.py:line`` of the last traceback frame inside the repo's own files."""
    import traceback

    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.is_relative_to(repo):
            found = f"{path.relative_to(repo)}:{frame.lineno}"
    return found


class _Unkept(Exception):
    """A value JSON cannot hold: the snapshot is not written."""


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, timedelta):
        return {"timedelta": value.total_seconds()}
    if isinstance(value, tuple | list):
        return {"tuple": [_encode(v) for v in value]}
    raise _Unkept(type(value).__name__)


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "timedelta" in value:
            return timedelta(seconds=value["timedelta"])
        return tuple(_decode(v) for v in value["tuple"])
    return value


def _dump(objects: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {f.name: _encode(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
        for obj in objects.values()
    ]


def cached(
    root: Path, folder: Path, name: str, cls: type[T], load: Callable[[], dict[str, T]]
) -> dict[str, T]:
    """``load()`` (declared objects of the dataclass ``cls``, by name, in order), or the
    snapshot of its last result while the repo's files are unchanged."""
    path = folder / ".declared" / f"{name}.json"
    key = fingerprint(root)
    try:
        stored = json.loads(path.read_text())
        if stored["key"] == key:
            made = [cls(**{k: _decode(v) for k, v in row.items()}) for row in stored["objects"]]
            return {getattr(obj, "name"): obj for obj in made}  # noqa: B009 - any dataclass
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no snapshot, another version's, or a damaged one: load the repo
    objects = load()
    try:
        text = json.dumps({"key": key, "objects": _dump(objects)})
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        os.replace(partial, path)  # readers see the old snapshot or the new one
    except (_Unkept, OSError):
        pass
    return objects
