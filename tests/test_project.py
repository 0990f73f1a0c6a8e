"""The project's promises about itself: Quickstart, CI, exported names."""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _quickstart_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    demo, tests = _quickstart_lines()
    assert demo.endswith("lifecycle demo")
    assert tests.endswith(".venv/bin/pytest && .venv/bin/pytest --profile production")
    assert tests in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize(
    "module",
    [
        "framework",
        "framework.errors",
        "framework.windows",
        "framework.window_tables",
        "framework.retrieval",
        "framework.materialize",
        "framework.apply",
        "framework.dates",
        "framework.pit",
        "framework.events",
        "framework.problems",
        "framework.labels",
        "framework.dataset",
        "framework.validation",
        "framework.train",
        "framework.registry",
        "framework.card",
        "framework.modeling",
        "framework.online_write",
        "framework.window_index",
        "framework.serving",
        "framework.prediction_log",
        "framework.batch",
        "framework.scoring",
    ],
)
def test_exported_members(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names {name!r}, which does not exist"
