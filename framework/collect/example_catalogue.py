"""The example product's catalogue: products and two years of their sales (seeded).

- products ``sku_0001`` .. with a category and a price; popularity is skewed
  (log-normal: a few products sell most units);
- daily demand per product is Poisson around its popularity times a weekly rhythm
  (busier weekends), a yearly season (a November-December peak, and a summer peak
  for the summer categories), a boost in the two weeks before Christmas and on
  the day after Thanksgiving, and a slow trend per product;
- each purchase follows an add-to-cart (and one cart in three is abandoned),
  by a user who usually likes the product's category.

Written beside the event log as ``products.parquet`` and ``product_events.parquet``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CATEGORIES", "Catalogue", "generate_catalogue"]

CATEGORIES = ("books", "electronics", "garden", "home", "kitchen", "outdoor", "sports", "toys")
SUMMER = ("garden", "outdoor", "sports")
START = pd.Timestamp("2024-01-01", tz="UTC")
END = pd.Timestamp("2026-01-01", tz="UTC")
DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class Catalogue:
    products: pd.DataFrame
    events: pd.DataFrame


def _calendar(days: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Per day: the weekly x holiday multiplier, and the day of year."""
    import holidays

    dow = days.dayofweek.to_numpy()
    weekly = np.where(dow >= 5, 1.3, 1.0)
    boost = np.ones(len(days))
    us = holidays.country_holidays("US", years=sorted(set(days.year)))
    for day, name in us.items():
        if "Thanksgiving" in name:
            boost[days.date == day + pd.Timedelta(days=1)] = 3.0  # the day after
    december = (days.month == 12) & (days.day >= 10) & (days.day <= 23)
    boost[december] *= 1.8
    return weekly * boost, days.dayofyear.to_numpy()


def generate_catalogue(users: int, seed: int = 7) -> Catalogue:
    """Products (about one per 50 users, 20 to 200) and their add-to-carts and purchases."""
    rng = np.random.default_rng(seed + 1_000)
    n = int(np.clip(users // 50, 20, 200))
    category = rng.choice(len(CATEGORIES), n)
    price = np.round(rng.lognormal(np.log(25), 0.6, n) * (1 + 2.0 * (category == 1)), 2)
    popularity = rng.lognormal(0.0, 1.0, n)
    popularity *= users * 0.03 / popularity.sum()  # units per day over the catalogue
    trend = rng.normal(0, 0.4, n)  # log change over the two years
    days = pd.date_range(START, END - pd.Timedelta(days=1), freq="D")
    weekly, doy = _calendar(days)
    winter = 1 + 0.6 * np.exp(-(((doy - 340) / 25.0) ** 2))
    summer = 1 + 0.8 * np.exp(-(((doy - 180) / 35.0) ** 2))
    is_summer = np.isin(np.asarray(CATEGORIES)[category], SUMMER)
    season = np.where(is_summer[:, None], summer[None, :], winter[None, :])
    progress = np.arange(len(days)) / len(days)
    rate = (
        popularity[:, None]
        * np.exp(trend[:, None] * progress[None, :])
        * season
        * weekly[None, :]
        / np.sqrt(price / 25)[:, None]
    )
    units = rng.poisson(rate)  # products x days
    product, day = np.nonzero(units)
    count = units[product, day]
    product, day = np.repeat(product, count), np.repeat(day, count)
    bought = _events(rng, product, day, category, users, days)
    carts = rng.random(len(product)) < 0.5  # abandoned carts: one per two purchases
    abandoned = _events(rng, product[carts], day[carts], category, users, days)
    frame = pd.concat(
        [
            bought.assign(
                event_type="add_to_cart",
                event_timestamp=bought.event_timestamp - pd.Timedelta(minutes=5),
            ),
            bought.assign(event_type="purchase"),
            abandoned.assign(event_type="add_to_cart"),
        ],
        ignore_index=True,
    )
    frame["price"] = price[frame.pop("_product").to_numpy()]
    frame["event_timestamp"] = (
        frame["event_timestamp"].clip(lower=START).astype("datetime64[us, UTC]")
    )
    frame = frame[["user_id", "product_id", "event_timestamp", "event_type", "price"]]
    frame = frame.sort_values(["event_timestamp", "product_id"], kind="stable", ignore_index=True)
    products = pd.DataFrame(
        {
            "product_id": [f"sku_{i + 1:04d}" for i in range(n)],
            "category": np.asarray(CATEGORIES, dtype=object)[category],
            "price": price,
            "listed_at": pd.Series([START] * n).astype("datetime64[us, UTC]"),
        }
    )
    return Catalogue(products, frame)


def _events(
    rng: np.random.Generator,
    product: np.ndarray,
    day: np.ndarray,
    category: np.ndarray,
    users: int,
    days: pd.DatetimeIndex,
) -> pd.DataFrame:
    """One event per (product, day) entry, at a random time of the day, by a user who
    likes the product's category four times in five."""
    taste = np.random.default_rng(11).choice(len(CATEGORIES), users)  # each user's favourite
    fans = [np.flatnonzero(taste == c) + 1 for c in range(len(CATEGORIES))]
    user = rng.integers(1, users + 1, len(product))
    loyal = rng.random(len(product)) < 0.8
    for c, pool in enumerate(fans):
        pick = loyal & (category[product] == c)
        if len(pool) and pick.any():
            user[pick] = rng.choice(pool, int(pick.sum()))
    start = days.as_unit("us").asi8[day]
    t = start + rng.integers(0, DAY_US, len(product))
    return pd.DataFrame(
        {
            "user_id": user.astype(np.int64),
            "product_id": np.asarray(
                [f"sku_{i + 1:04d}" for i in range(category.size)], dtype=object
            )[product],
            "_product": product,
            "event_timestamp": pd.to_datetime(t, unit="us", utc=True),
        }
    )
