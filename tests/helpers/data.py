"""Test data: the example's users, features at weekly times, bad event files and the
messages they must produce, a model registered again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.helpers.service import T


def register_copy(repo, problem: str) -> str:
    """Register the production model of ``problem`` again, as a new candidate version
    (what a retraining on the same data gives, without the training time)."""
    from framework.models.registry import registry_of

    registry = registry_of(repo)
    current = registry.get(problem)
    meta = current.meta.with_(version="", sha256="")
    return registry.register(current.load_model(), meta).version


def user_ids(repo, n: int | None = None) -> list[int]:
    """The example repo's user ids (the first ``n``)."""
    ids = pd.read_parquet(repo.data_dir / "users.parquet").user_id
    return (ids if n is None else ids.head(n)).tolist()


def current_features(repo, folder: Path, shift: str | None = None):
    """Point-in-time churn features of every user at four weekly times before ``T``, with
    ``shift`` (a feature) moved by x4 + 6; written to ``folder/current.parquet``."""
    from framework.features.historical import get_historical_features

    ids = user_ids(repo)
    at = [T - pd.Timedelta(days=d) for d in (0, 7, 14, 21)]
    rows = pd.DataFrame(
        {"user_id": np.repeat(ids, len(at)), "event_timestamp": np.tile(at, len(ids))}
    )
    frame = get_historical_features(repo, rows, "churn_model_v1")
    if shift:
        frame[shift] = frame[shift] * 4 + 6
    path = folder / "current.parquet"
    frame.to_parquet(path)
    return path, frame


def with_row(df, row: int, **values):
    df = df.copy()
    for column, value in values.items():
        df.iloc[row, df.columns.get_loc(column)] = value
    return df


def with_naive(df):
    df["event_timestamp"] = df.event_timestamp.dt.tz_localize(None)
    return df


def with_null_key(df):
    df["user_id"] = df.user_id.astype("Int64")
    df.loc[3, "user_id"] = pd.NA
    return df


BAD_EVENTS = [
    (lambda df: df.drop(columns=["source"]), "missing column(s) ['source']"),
    (lambda df: df.assign(extra=1), "unexpected column(s) ['extra']"),
    (
        lambda df: df.assign(user_id=df.user_id.astype(str)),
        "'user_id' has type string; it must hold integers",
    ),
    (lambda df: df.assign(amount=df.amount.astype(str)), "'amount' has type string"),
    (with_naive, "timezone-naive"),
    (with_null_key, "user_id is missing: 1 row(s)"),
    (lambda df: with_row(df, 1, amount=-5.0), "amount below 0: 1 row(s), e.g. row 2"),
    (
        lambda df: with_row(
            df, 2, event_timestamp=pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
        ),
        "event_timestamp in the future",
    ),
    (lambda df: with_row(df, 0, event_type="pageview"), "unknown event_type: 1 row(s)"),
    (lambda df: with_row(df, 0, source="tiktok"), "unknown source"),
    (lambda df: df.head(0), "is empty"),
]
