"""Fast inserts of many rows into a SQLAlchemy table, inside the caller's transaction.

SQLAlchemy's ``conn.execute(table.insert(), list_of_dicts)`` spends most of its
time per row in Python. ``BulkInsert`` prepares the statement and SQLAlchemy's
own value conversions once, builds plain tuples, and hands them to the driver:
PostgreSQL (psycopg 3) gets them through ``COPY ... FROM STDIN``, SQLite through
``executemany``. Values are converted exactly as SQLAlchemy would convert them,
so the rows read back the same through the typed table.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from itertools import repeat
from typing import Any

__all__ = ["BulkInsert"]


class BulkInsert:
    """Inserts into ``table`` (every column but an autoincrement ``id``)."""

    def __init__(self, engine: Any, table: Any) -> None:
        dialect = engine.dialect
        self.table = table
        self.columns = [c for c in table.columns if not (c.name == "id" and c.primary_key)]
        self.names = [c.name for c in self.columns]
        self.copy = dialect.name == "postgresql" and dialect.driver == "psycopg"
        mark = {"qmark": "?", "numeric": ":{}", "named": ":{}"}.get(dialect.paramstyle, "%s")
        marks = [mark.format(n) if "{}" in mark else mark for n in self.names]
        quote = dialect.identifier_preparer.quote  # key columns are named by the user
        self.quoted = ", ".join(quote(n) for n in self.names)
        self.sql = f"INSERT INTO {table.name} ({self.quoted}) VALUES ({', '.join(marks)})"
        self.converters = {
            c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in self.columns
        }

    def _convert(self, name: str, value: Any) -> Any:
        convert = self.converters[name]
        return value if value is None or convert is None else convert(value)

    def params(self, rows: list[dict[str, Any]]) -> list[tuple]:
        """Row dicts as the driver's tuples (a missing key is NULL)."""
        cache: dict[tuple[str, Any], Any] = {}  # times repeat within a call: convert once

        def value(name: str, v: Any) -> Any:
            if isinstance(v, datetime):
                key = (name, v)
                if key not in cache:
                    cache[key] = self._convert(name, v)
                return cache[key]
            return self._convert(name, v)

        return [tuple(value(n, row.get(n)) for n in self.names) for row in rows]

    def columnar(self, values: dict[str, Any], n: int) -> list[tuple]:
        """``n`` tuples from columns: a list per varying column, a scalar for a constant."""
        columns: list[Iterable[Any]] = []
        for name in self.names:
            v = values.get(name)
            if isinstance(v, list):
                convert = self.converters[name]
                columns.append(v if convert is None else [self._convert(name, x) for x in v])
            else:
                columns.append(repeat(self._convert(name, v), n))
        return list(zip(*columns, strict=True))

    def write(self, conn: Any, params: list[tuple]) -> None:
        """Insert ``params`` on ``conn`` (a SQLAlchemy connection in a transaction)."""
        if not params:
            return
        if self.copy:
            import sqlalchemy as sa

            raw = conn.connection.driver_connection
            statement = f"COPY {self.table.name} ({self.quoted}) FROM STDIN"
            try:
                with raw.cursor() as cur, cur.copy(statement) as copy:
                    for row in params:
                        copy.write_row(row)
            except raw.Error as exc:  # as SQLAlchemy reports driver errors
                raise sa.exc.DBAPIError(statement, None, exc) from exc
        else:
            conn.exec_driver_sql(self.sql, params)
