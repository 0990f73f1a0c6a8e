"""The column names every stage agrees on: a training set's observation time and label,
and a forecast row's horizon."""

from __future__ import annotations

__all__ = ["HORIZON", "LABEL", "TIMESTAMP"]

LABEL = "label"
TIMESTAMP = "event_timestamp"
HORIZON = "horizon_days"  # a forecast row: days from its origin to its target day
