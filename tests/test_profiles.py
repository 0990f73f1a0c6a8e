"""The production profile reruns only the tests marked ``stores``; the guard makes sure
no unmarked test touches a store (see ``tests/conftest.py``)."""

from __future__ import annotations

import subprocess
import sys
import uuid

from tests.helpers import ROOT

PROBE = """
import psycopg
import pytest


def test_unmarked_opens_postgres():
    psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)


@pytest.mark.stores
def test_marked_opens_postgres():
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)


def test_unmarked_makes_an_engine():
    import sqlalchemy

    sqlalchemy.create_engine("sqlite://")


def test_unmarked_pure():
    assert 1 + 1 == 2
"""


def test_an_unmarked_test_that_opens_a_store_fails(tmp_path):
    probe = ROOT / "tests" / f"test_probe_{uuid.uuid4().hex[:8]}.py"
    probe.write_text(PROBE)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pytest", str(probe), "-q", "-p", "no:cacheprovider"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        probe.unlink()
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "2 failed, 2 passed" in text, text
    assert "test_unmarked_opens_postgres opens PostgreSQL but is not marked stores" in text
    assert "test_unmarked_makes_an_engine opens a database engine but is not marked" in text
