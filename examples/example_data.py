"""A seeded, synthetic product: users and a year of their events.

Nothing is downloaded. The generator is vectorised (numpy), so 10,000 users and
about 1.3M events take a couple of seconds. What makes it realistic enough to
learn from:

- users sign up over time, on a plan (free / basic / pro) in a country, with an
  age that is sometimes missing;
- each user has an activity rate and a preferred mix of sources; a share of
  users churn (their events stop), more often on the free plan and after
  support tickets pile up; churners fade out in the weeks before they leave;
- activity has a weekly rhythm (quieter weekends) and a seasonal one (a summer
  dip, a November-December peak);
- sources differ: email and direct traffic convert to purchases more often than
  facebook; purchase amounts depend on the plan.

Output files follow the contract of the example repo (see ``EVENT_COLUMNS``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "EVENT_TYPES",
    "SOURCES",
    "ExampleData",
    "generate",
    "simulate_outcomes",
    "write_example_data",
]

EVENT_TYPES = ("page_view", "add_to_cart", "purchase", "support_ticket")
SOURCES = ("google", "facebook", "direct", "email")
PLANS = ("free", "basic", "pro")
COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR")
START = pd.Timestamp("2025-01-01", tz="UTC")
END = pd.Timestamp("2026-01-01", tz="UTC")
DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class ExampleData:
    """The tables of the example product (the catalogue's when it was written)."""

    users: pd.DataFrame
    events: pd.DataFrame
    products: pd.DataFrame | None = None
    product_events: pd.DataFrame | None = None


def _users(rng: np.random.Generator, n: int) -> pd.DataFrame:
    span_days = (END - START).days
    # Half of the users exist before the data starts, the rest sign up during the year.
    signup_offset = np.where(
        rng.random(n) < 0.5, -rng.uniform(0, 365, n), rng.uniform(0, span_days - 30, n)
    )
    signup = START.value // 1000 + (signup_offset * DAY_US).astype(np.int64)
    age = rng.normal(38, 12, n).clip(18, 80).round()
    age_missing = rng.random(n) < 0.08
    return pd.DataFrame(
        {
            "user_id": np.arange(1, n + 1, dtype=np.int64),
            "signup_date": pd.to_datetime(signup, unit="us", utc=True).astype(
                "datetime64[us, UTC]"
            ),
            "plan": rng.choice(PLANS, n, p=[0.6, 0.3, 0.1]),
            "country": rng.choice(COUNTRIES, n, p=[0.35, 0.15, 0.15, 0.1, 0.15, 0.1]),
            "age": pd.array(np.where(age_missing, np.nan, age), dtype="Int64"),
        }
    )


def _rhythm(t_us: np.ndarray) -> np.ndarray:
    """Relative activity at each time: weekly and seasonal patterns, in (0, 1]."""
    days = t_us / DAY_US
    dow = (np.floor(days).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    weekly = np.where(dow >= 5, 0.6, 1.0)
    doy = days % 365.25
    seasonal = (
        0.8
        + 0.15 * np.cos(2 * np.pi * (doy - 15) / 365.25)
        + 0.25 * np.exp(-(((doy - 335) / 20.0) ** 2))
    )
    return weekly * seasonal / 1.2


def generate(users: int = 10_000, seed: int = 7) -> ExampleData:
    """Generate ``users`` users and their events for 2025 (about 120 events per user)."""
    if users < 1:
        raise ValueError(f"users must be >= 1, got {users}.")
    rng = np.random.default_rng(seed)
    profile = _users(rng, users)
    plan_idx = pd.Categorical(profile["plan"], categories=PLANS).codes
    start_us = START.value // 1000
    end_us = END.value // 1000
    signup_us = (
        profile["signup_date"]
        .dt.tz_localize(None)
        .to_numpy()
        .astype("datetime64[us]")
        .astype(np.int64)
    )
    active_from = np.maximum(signup_us, start_us)
    # Churn: time until leaving, shorter on the free plan.
    mean_life_days = np.array([300.0, 550.0, 900.0])[plan_idx]
    churn_us = signup_us + (rng.exponential(mean_life_days) * DAY_US).astype(np.int64)
    active_to = np.minimum(churn_us, end_us)
    duration = np.maximum(active_to - active_from, 0)

    rate = rng.lognormal(np.log(0.8), 0.6, users) * np.array([0.9, 1.1, 1.4])[plan_idx]
    lam_max = rate * 1.3  # events per day at peak rhythm
    n_cand = rng.poisson(lam_max * duration / DAY_US)
    owner = np.repeat(np.arange(users), n_cand)
    t = active_from[owner] + (rng.random(len(owner)) * duration[owner]).astype(np.int64)
    # Thinning: keep by rhythm, and fade in the 45 days before a churn.
    to_churn = (churn_us[owner] - t) / DAY_US
    fade = np.where(churn_us[owner] < end_us, np.clip(to_churn / 45.0, 0.25, 1.0), 1.0)
    keep = rng.random(len(t)) < _rhythm(t) * fade
    owner, t, fade = owner[keep], t[keep], fade[keep]

    src_mix = rng.dirichlet([4.0, 3.0, 2.0, 1.5], users)
    cum = src_mix.cumsum(axis=1)[owner]
    source_idx = (rng.random(len(t))[:, None] > cum).sum(axis=1).clip(0, 3)
    # Event type: purchase odds depend on source (email, direct convert best) and plan.
    conv = (
        np.array([0.045, 0.025, 0.07, 0.09])[source_idx]
        * np.array([0.8, 1.0, 1.3])[plan_idx[owner]]
    )
    ticket = np.where(fade < 1.0, 0.06, 0.02)
    u = rng.random(len(t))
    etype = np.where(
        u < conv,
        2,
        np.where(u < conv + ticket, 3, np.where(u < conv + ticket + 0.15, 1, 0)),
    )
    amount = np.where(
        etype == 2,
        np.round(
            rng.lognormal(np.log(35.0), 0.7, len(t)) * np.array([0.8, 1.2, 2.0])[plan_idx[owner]], 2
        ),
        np.nan,
    )
    events = pd.DataFrame(
        {
            "user_id": profile["user_id"].to_numpy()[owner],
            "event_timestamp": pd.to_datetime(t, unit="us", utc=True).astype("datetime64[us, UTC]"),
            "event_type": np.asarray(EVENT_TYPES, dtype=object)[etype],
            "source": np.asarray(SOURCES, dtype=object)[source_idx],
            "amount": amount,
        }
    )
    events = events.sort_values(["event_timestamp", "user_id"], kind="stable", ignore_index=True)
    return ExampleData(users=profile, events=events)


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_example_data(data_dir: str | Path, users: int = 10_000, seed: int = 7) -> ExampleData:
    """Write ``users.parquet``, ``events.parquet`` and the catalogue (``products.parquet``,
    ``product_events.parquet``, see ``example_catalogue``) into ``data_dir`` (atomically each)."""
    from framework.common.scripts import load_script

    catalogue = Path(__file__).with_name("example_catalogue.py")
    generate_catalogue = load_script(catalogue, "lifecycle_example_catalogue").generate_catalogue

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    data = generate(users=users, seed=seed)
    catalogue = generate_catalogue(users=users, seed=seed)
    _write_parquet(data.users, data_dir / "users.parquet")
    _write_parquet(data.events, data_dir / "events.parquet")
    _write_parquet(catalogue.products, data_dir / "products.parquet")
    _write_parquet(catalogue.events, data_dir / "product_events.parquet")
    return ExampleData(data.users, data.events, catalogue.products, catalogue.events)


def simulate_outcomes(
    predictions: pd.DataFrame,
    at: pd.Timestamp,
    *,
    base_rate: float = 0.06,
    offer_rate: float = 0.15,
    window_days: int = 7,
    outcome: str = "conversion",
    seed: int = 11,
) -> pd.DataFrame:
    """Outcome events for an experiment on the example product, in which the treatment
    truly helps: every exposed user converts with ``base_rate``; a treatment user the
    model flags (label 1) gets a retention offer and converts with ``offer_rate``.

    ``predictions`` has user_id, arm and label (label may be missing for no-model
    arms); events fall in (at, at + window_days), in the event log's columns.
    """
    rng = np.random.default_rng(seed)
    offered = (predictions["arm"] == "treatment") & (predictions["label"].fillna(0) == 1)
    p = np.where(offered, offer_rate, base_rate)
    hit = rng.random(len(predictions)) < p
    delay_us = rng.integers(1, window_days * DAY_US - 1, hit.sum())
    return pd.DataFrame(
        {
            "user_id": predictions["user_id"].to_numpy()[hit].astype("int64"),
            "event_timestamp": (at + pd.to_timedelta(delay_us, unit="us")).astype(
                "datetime64[us, UTC]"
            ),
            "event_type": outcome,
            "source": "email",
            "amount": np.nan,
        }
    )
