"""Apply a registered model to feature rows: the one scoring path of training, serving and batch.

``score(meta, model, frame)`` converts the features named in the artifact's
metadata to the plain types the pipeline was fitted on (``to_model_frame``),
and returns the scores with, for a classifier, the labels at the artifact's
threshold. Serving and batch prediction read only the artifact and this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["score", "to_model_frame"]


def to_model_frame(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Features as plain numpy-friendly types: numbers as float, text as object with NaN."""
    out = {}
    for name in features:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            out[name] = pd.to_numeric(col.astype("Float64"), errors="coerce").astype("float64")
        else:
            out[name] = col.astype("object").where(col.notna(), np.nan)
    return pd.DataFrame(out, index=frame.index)


def score(
    meta: dict[str, Any], model: Any, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores of ``frame``'s rows, and labels at the threshold for a binary task (else None)."""
    x = to_model_frame(frame, meta["features"])
    if meta["task"] == "binary":
        scores = model.predict_proba(x)[:, 1]
        return scores, (scores >= meta["threshold"]).astype(int)
    return model.predict(x), None
