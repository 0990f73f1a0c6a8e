"""JSON-safe values: NaN and infinities become null, since JSON has neither."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["finite"]


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
