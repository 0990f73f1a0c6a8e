import duckdb
import pytest

from framework.declare.expressions import filter_columns, filter_to_sql
from framework.errors import FeatureRepoError

ROWS = [
    ("page_view", "google", None),
    ("page_view", "facebook", None),
    ("purchase", "google", 12.5),
    ("purchase", "email", 70.0),
    ("page_view", None, None),
]


def _select(expr: str) -> list[int]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INT, event_type VARCHAR, source VARCHAR, amount DOUBLE)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [(i, *r) for i, r in enumerate(ROWS)])
    sql = filter_to_sql(expr, ["event_type", "source", "amount"])
    return [r[0] for r in con.execute(f"SELECT i FROM t WHERE {sql} ORDER BY i").fetchall()]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('event_type == "page_view" and source == "google"', [0]),
        ('event_type == "page_view" or source == "email"', [0, 1, 3, 4]),
        ('source in ["google", "email"]', [0, 2, 3]),
        ('source not in ("google",)', [1, 3]),  # NULL source is not counted
        ("amount > 20", [3]),
        ("amount is None", [0, 1, 4]),
        ("not (amount is None)", [2, 3]),
        ('event_type != "page_view"', [2, 3]),
        ("10 < amount <= 70", [2, 3]),
    ],
)
def test_filter_selects_the_same_rows_as_python(expr, expected):
    got = _select(expr)
    assert got == expected  # hand-computed, with SQL's rule for missing values
    # Where no compared value is missing, Python's own evaluation is the oracle.
    for i, (event_type, source, amount) in enumerate(ROWS):
        row = {"event_type": event_type, "source": source, "amount": amount}
        if " is " in expr or all(row[c] is not None for c in filter_columns(expr)):
            assert (i in got) == bool(eval(expr, {}, row))  # test oracle only


def test_literals_are_escaped_not_injected():
    sql = filter_to_sql('source == "x\' OR 1=1 --"')
    assert "'x'' OR 1=1 --'" in sql
    assert _select("source == \"google' OR '1'='1\"") == []


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("event_type ==", "not a valid expression"),
        ("__import__('os').system('x')", "do not support"),
        ("source == other_column", "unknown column"),
        ("amount in []", "non-empty list"),
        ("amount is 3", "only compares with None"),
    ],
)
def test_bad_filters_are_refused_with_a_reason(expr, message):
    with pytest.raises(FeatureRepoError, match=message):
        filter_to_sql(expr, ["event_type", "source", "amount"])


def test_filter_columns():
    assert filter_columns('event_type == "a" and (source == "b" or amount > 1)') == {
        "event_type",
        "source",
        "amount",
    }
