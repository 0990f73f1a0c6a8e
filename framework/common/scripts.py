"""Python files run by path: a repo's demo script and its example data generators live
beside the repo (``examples/``), not in the package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from framework.errors import ConfigError

__all__ = ["find_example", "load_script"]


def find_example(name: str, repo_path: Path) -> Path:
    """``examples/<name>`` beside the repo, or in the current folder."""
    candidates = [repo_path.resolve().parent / "examples" / name, Path.cwd() / "examples" / name]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(
        f"No {name}: looked for {[str(p) for p in candidates]}. Run from the project's "
        "folder, or pass the file's path."
    )


def load_script(path: str | Path, name: str | None = None) -> ModuleType:
    """The module of the Python file ``path`` (loaded once per process and name)."""
    path = Path(path).resolve()
    name = name or f"lifecycle_script_{path.stem}"
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == path:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path} cannot be loaded as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
