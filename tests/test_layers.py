"""The layering contract: each stage package imports only from the stages before it.

Data flows one way through the lifecycle; the folders under ``framework/`` say so
and this test holds them to it. Every ``import`` counts, also those inside
functions (a lazy import is still a dependency); ``if TYPE_CHECKING:`` blocks
count too. Within a stage any module may use any other, but imports must not form a
cycle: at module level, nor through an import inside a function (a lazy import hides a
cycle from Python, not from the reader). Imports only for type checking do not count
toward cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "framework"

# Bottom to top. ``errors`` and ``common`` are the floor every stage stands on.
LAYERS = (
    "errors",
    "common",
    "tasks",
    "declare",
    "collect",
    "prepare",
    "features",
    "models",
    "training",
    "deploy",
    "monitor",
    "schedule",
    "cli",
)


def _module(path: Path) -> str:
    parts = ("framework", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts).removesuffix(".__init__")


def _walk(tree: ast.AST, top_level_only: bool, typing_blocks: bool) -> list[ast.AST]:
    """The statements of ``tree`` (module level only, or all), with or without the
    bodies of ``if TYPE_CHECKING:``."""
    out: list[ast.AST] = []
    stack = list(tree.body) if isinstance(tree, ast.Module) else [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            if typing_blocks:
                stack.extend(node.body)
            stack.extend(node.orelse)
            continue
        out.append(node)
        if not top_level_only or isinstance(node, ast.If | ast.Try):
            stack.extend(ast.iter_child_nodes(node))
    return out


def _imports(
    tree: ast.AST, top_level_only: bool = False, typing_blocks: bool = True
) -> list[tuple[str, int]]:
    """``framework.*`` modules named by import statements, with their line numbers."""
    found = []
    for node in _walk(tree, top_level_only, typing_blocks):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("framework"):
                found.append((node.module, node.lineno))
                # ``from framework.x import y`` may name a submodule y
                found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("framework")]
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


SOURCES = {_module(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_belongs_to_a_stage():
    loose = [m for m in SOURCES if m != "framework" and _layer(m) is None]
    assert not loose, f"modules outside the stage folders: {loose}"


def upward_imports(sources: dict[str, ast.AST]) -> list[str]:
    bad = []
    for module, tree in sources.items():
        here = _layer(module)
        if here is None:  # the root package re-exports lazily from every stage
            continue
        for target, line in _imports(tree):
            there = _layer(target)
            if there is not None and LAYERS.index(there) > LAYERS.index(here):
                bad.append(f"{module}:{line} imports {target} ({here} -> {there})")
    return sorted(set(bad))


def test_no_stage_imports_a_later_stage():
    assert upward_imports(SOURCES) == []


def module_cycles(sources: dict[str, ast.AST]) -> list[list[str]]:
    """Cycles of imports, those inside functions included (type-only imports excluded)."""
    graph = {
        m: {t for t, _ in _imports(tree, typing_blocks=False) if t in sources and t != m}
        for m, tree in sources.items()
    }
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_imports_have_no_cycle():
    assert module_cycles(SOURCES) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from framework.deploy.batch import predict_batch\n", True),  # a later stage
        ("def f():\n    from framework.cli import main\n", True),  # lazily, still counted
        ("from framework.declare.repo import FeatureRepo\n", False),  # an earlier stage
        ("from framework.features import online\n", False),  # the same stage
    ],
)
def test_the_checker_catches_an_upward_import(source, expected):
    """The contract can fail: a features module importing a later stage is reported."""
    sources = {"framework.features.x": ast.parse(source)}
    assert bool(upward_imports(sources)) is expected


def test_the_checker_catches_a_cycle():
    sources = {
        "framework.features.a": ast.parse("from framework.features.b import x\n"),
        "framework.features.b": ast.parse("import framework.features.a\n"),
        "framework.features.c": ast.parse("def f():\n    import framework.features.a\n"),
    }
    assert module_cycles(sources) == [
        ["framework.features.a", "framework.features.b", "framework.features.a"]
    ]


def test_the_checker_catches_a_cycle_through_a_function_level_import():
    """A planted cycle: b imports a only inside a function (as batch_spark once imported
    batch); a type-only import back is no cycle."""
    planted = {
        "framework.deploy.a": ast.parse("from framework.deploy.b import run\n"),
        "framework.deploy.b": ast.parse(
            "def run():\n    from framework.deploy.a import helper\n    return helper()\n"
        ),
    }
    assert module_cycles(planted) == [
        ["framework.deploy.a", "framework.deploy.b", "framework.deploy.a"]
    ]
    typed = {
        "framework.deploy.a": ast.parse("from framework.deploy.b import run\n"),
        "framework.deploy.b": ast.parse(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from framework.deploy.a import Helper\n"
        ),
    }
    assert module_cycles(typed) == []
    # the same plant in a copy of the package is reported beside its real modules
    sources = dict(SOURCES)
    sources["framework.deploy.batch_spark"] = ast.parse(
        "def f():\n    from framework.deploy.batch import predict_batch\n"
    )
    assert any(
        c[0] == "framework.deploy.batch" and "framework.deploy.batch_spark" in c
        for c in module_cycles(sources)
    )


def test_no_module_is_over_450_lines():
    """Modules that say one thing: the largest stays under 450 lines."""
    root = Path(__file__).resolve().parent.parent / "framework"
    long = {
        str(p.relative_to(root)): n
        for p in root.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 450
    }
    assert not long, long
