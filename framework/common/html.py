"""The HTML kit of every page and report: one style sheet, tables, embedded PNG plots."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

__all__ = ["STYLE", "figure", "fmt", "png", "pyplot", "table"]

STYLE = """<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}figure{display:inline-block;margin:0 1em 1em 0}</style>"""


def png(fig: Any) -> str:
    """A matplotlib figure as base64 PNG text (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def fmt(value: Any) -> str:
    """A table cell: floats to four decimals, text escaped, None empty."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value)) if value is not None else ""


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """An HTML table of ``rows`` (dicts) with ``columns`` in order."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(title: str, data: str, caption: str | None = None) -> str:
    """An embedded PNG (base64 ``data``) with its caption (the title by default)."""
    text = html.escape(caption if caption is not None else title)
    return (
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{text}</figcaption></figure>"
    )


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot
