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
    # set -e ignores a failure inside an && list: the line must exit on its own
    assert f"{tests} || exit 1" in (ROOT / ".ci" / "run").read_text()


MODULES = sorted(
    ".".join(("framework", *p.relative_to(ROOT / "framework").with_suffix("").parts)).removesuffix(
        ".__init__"
    )
    for p in (ROOT / "framework").rglob("*.py")
)


@pytest.mark.parametrize("module", MODULES)
def test_exported_members(module):
    """Every module lists its public names in ``__all__``, and each of them exists."""
    mod = importlib.import_module(module)
    assert hasattr(mod, "__all__"), f"{module} has no __all__"
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names {name!r}, which does not exist"


def test_the_production_profile_is_configuration_only(tmp_path, monkeypatch, postgres_url):
    """The shipped production config: environment variables select the SQL registry and
    Redis; a missing one is an error naming it."""
    import shutil

    from framework.declare.repo import FeatureRepo
    from framework.errors import ConfigError
    from tests.helpers import EXAMPLE_REPO, copy_example_repo, new_pg_schema

    repo = copy_example_repo(tmp_path / "repo", users=None)
    yaml = repo / "production.yaml"
    shutil.copy(EXAMPLE_REPO / "feature_store.production.yaml", yaml)
    monkeypatch.delenv("LIFECYCLE_REGISTRY_URL", raising=False)
    monkeypatch.delenv("REDIS_CONNECTION_STRING", raising=False)
    with pytest.raises(ConfigError, match="'LIFECYCLE_REGISTRY_URL', 'REDIS_CONNECTION_STRING'"):
        _ = FeatureRepo(repo, yaml).store
    url = "postgresql+psycopg://" + new_pg_schema("registry_").split("://", 1)[1]
    monkeypatch.setenv("LIFECYCLE_REGISTRY_URL", url)
    monkeypatch.setenv("REDIS_CONNECTION_STRING", "127.0.0.1:6379,db=15")
    config = FeatureRepo(repo, yaml).store.config
    assert config.registry.registry_type == "sql" and config.registry.path == url
    assert config.online_store.type == "redis" and config.offline_store.type == "duckdb"


def test_the_readme_is_a_front_door_and_its_links_lead_somewhere():
    """At most 250 lines; the depth is in docs/ (built strictly by CI), and every
    relative link of the README names a file that exists."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert local and all((ROOT / link).exists() for link in local), local
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages and all(f" {page}" in nav for page in pages), pages
    assert "mkdocs build --strict" in (ROOT / ".ci" / "run").read_text()
