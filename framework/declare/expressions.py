"""Row filters written as Python expressions, translated to SQL.

A windowed aggregate may count only some events, e.g.
``event_type == "page_view" and source == "google"``. The text is parsed with
:mod:`ast`, checked against a small grammar (comparisons, ``in``, ``and``/``or``/
``not``, ``is None``) and rendered as a DuckDB boolean expression with quoted
identifiers and escaped literals, so a filter can never inject SQL.

Missing values follow SQL: a comparison with a null (``amount > 10`` where
amount is null, or ``source != "x"`` where source is null) is false; test for
them with ``is None`` / ``is not None``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from framework.errors import FeatureRepoError

__all__ = ["filter_columns", "filter_to_sql"]

_CMP = {ast.Eq: "=", ast.NotEq: "<>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


def _literal(value: object, text: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise FeatureRepoError(
        f"Filter {text!r} uses the literal {value!r}; only strings, numbers, booleans "
        "and None are allowed."
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _render(node: ast.AST, text: str) -> str:
    if isinstance(node, ast.BoolOp):
        joiner = " AND " if isinstance(node.op, ast.And) else " OR "
        return "(" + joiner.join(_render(v, text) for v in node.values) + ")"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return f"(NOT {_render(node.operand, text)})"
    if isinstance(node, ast.Name):
        return _ident(node.id)
    if isinstance(node, ast.Constant):
        return _literal(node.value, text)
    if isinstance(node, ast.Compare):
        parts: list[str] = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts.append(_compare(left, op, right, text))
            left = right
        return "(" + " AND ".join(parts) + ")"
    raise FeatureRepoError(
        f"Filter {text!r} uses {ast.unparse(node)!r}, which filters do not support. "
        'Write comparisons of columns with literals, e.g. event_type == "purchase" and amount > 10.'
    )


def _compare(left: ast.AST, op: ast.cmpop, right: ast.AST, text: str) -> str:
    lhs = _render(left, text)
    if isinstance(op, ast.In | ast.NotIn):
        if not isinstance(right, ast.List | ast.Tuple | ast.Set) or not right.elts:
            raise FeatureRepoError(
                f"Filter {text!r}: 'in' needs a non-empty list of literals, "
                f"got {ast.unparse(right)!r}."
            )
        items = ", ".join(_render(e, text) for e in right.elts)
        return f"{lhs} {'NOT IN' if isinstance(op, ast.NotIn) else 'IN'} ({items})"
    if isinstance(op, ast.Is | ast.IsNot):
        if not (isinstance(right, ast.Constant) and right.value is None):
            raise FeatureRepoError(f"Filter {text!r}: 'is' only compares with None.")
        return f"{lhs} IS {'NOT ' if isinstance(op, ast.IsNot) else ''}NULL"
    if type(op) not in _CMP:
        raise FeatureRepoError(f"Filter {text!r}: unsupported operator {type(op).__name__}.")
    return f"{lhs} {_CMP[type(op)]} {_render(right, text)}"


def _parse(text: str) -> ast.AST:
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise FeatureRepoError(
            f"Filter {text!r} is not a valid expression: {exc.msg}. "
            'Example: event_type == "page_view" and source == "google".'
        ) from exc


def filter_to_sql(text: str, columns: Iterable[str] | None = None) -> str:
    """Translate a filter expression to SQL; check its columns when ``columns`` is given."""
    node = _parse(text)
    sql = _render(node, text)
    if columns is not None:
        known = set(columns)
        unknown = sorted(filter_columns(text) - known)
        if unknown:
            raise FeatureRepoError(
                f"Filter {text!r} names unknown column(s) {unknown}; "
                f"the source has {sorted(known)}."
            )
    # NULL comparisons yield NULL; a row counts only when the filter is TRUE.
    return f"COALESCE({sql}, FALSE)"


def filter_columns(text: str) -> set[str]:
    """The column names a filter expression reads."""
    return {n.id for n in ast.walk(_parse(text)) if isinstance(n, ast.Name)}
