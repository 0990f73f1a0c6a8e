"""The example product's catalogue: products and two years of their sales (seeded).

- products ``sku_0001`` .. with a category and a price; popularity is skewed
  (log-normal: a few products sell most units);
- daily demand per product is Poisson around its popularity times a weekly rhythm
  (busier weekends), a yearly season (a November-December peak, and a summer peak
  for the summer categories), a boost in the two weeks before Christmas and on
  the day after Thanksgiving, and a slow trend per product;
- each purchase follows an add-to-cart (and one cart in three is abandoned),
  by a user who usually likes the product's category;
- in the last 120 days, product lists: each request (``req_...``) shows a user
  ``LIST_SIZE`` products drawn by a noisy popularity and ordered by popularity (the
  product's old ranking policy), except a share ``EXPLORE`` of the lists, shuffled
  uniformly; ``impression`` events carry their ``position`` and ``propensity`` (the
  probability the old policy had of putting that product at that position); the user
  clicks a product with a probability that falls with its position (position
  bias), rises with the product's appeal (which popularity only partly reflects),
  with the user's favourite category and, most, when the user carted or bought it
  before (``click_probability``: the truth, also used by the demo's A/B test).

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
LIST_DAYS = 120  # product lists (impressions and clicks) in the last days
LIST_SIZE = 20
EXPLORE = 0.2  # the share of the old policy's lists shuffled uniformly (exploration)
BASE_CLICK = 0.12  # click probability at position 1 of an average product


@dataclass(frozen=True)
class Catalogue:
    products: pd.DataFrame
    events: pd.DataFrame
    truth: ClickModel | None = None


@dataclass(frozen=True)
class ClickModel:
    """The true click behaviour of the generated users (for simulations)."""

    appeal: np.ndarray  # per product index
    category: np.ndarray  # per product index
    taste: np.ndarray  # favourite category per user index (user_id - 1)
    known: frozenset[tuple[int, int]]  # (user_id, product index) carted or bought

    def click_probability(self, user_id: int, products: list[str]) -> np.ndarray:
        """The probability that ``user_id`` clicks each product shown at positions 1..n."""
        index = np.array([int(p.removeprefix("sku_")) - 1 for p in products])
        known = np.array([(int(user_id), int(i)) in self.known for i in index])
        likes = self.category[index] == self.taste[(int(user_id) - 1) % len(self.taste)]
        return _click(np.arange(len(index)), self.appeal[index], likes, known)


def _click(
    position: np.ndarray, appeal: np.ndarray, likes: np.ndarray, known: np.ndarray
) -> np.ndarray:
    """Position bias 1/log2(position + 2) (0-based) times appeal, x1.6 for the user's
    favourite category, x3 for a product the user carted or bought before."""
    p = BASE_CLICK / np.log2(position + 2.0) * appeal * np.where(likes, 1.6, 1.0)
    return np.minimum(0.9, p * np.where(known, 3.0, 1.0))


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
    frame["request_id"] = None
    frame["position"] = pd.array([None] * len(frame), dtype="Int64")
    frame["propensity"] = np.nan
    taste = np.random.default_rng(11).choice(len(CATEGORIES), users)  # as in _events
    appeal = rng.lognormal(0.0, 0.6, n)
    appeal /= appeal.mean()
    known = frame.groupby(["user_id", "product_id"], sort=False)["event_timestamp"].min()
    truth = ClickModel(
        appeal,
        category,
        taste,
        frozenset((int(u), int(p.removeprefix("sku_")) - 1) for u, p in known.index),
    )
    lists = _lists(rng, users, popularity, category, taste, appeal, known, price)
    frame = pd.concat([frame, lists], ignore_index=True)
    frame = frame[
        [
            "user_id",
            "product_id",
            "event_timestamp",
            "event_type",
            "price",
            "request_id",
            "position",
            "propensity",
        ]
    ]
    frame = frame.sort_values(["event_timestamp", "product_id"], kind="stable", ignore_index=True)
    products = pd.DataFrame(
        {
            "product_id": [f"sku_{i + 1:04d}" for i in range(n)],
            "category": np.asarray(CATEGORIES, dtype=object)[category],
            "price": price,
            "listed_at": pd.Series([START] * n).astype("datetime64[us, UTC]"),
        }
    )
    return Catalogue(products, frame, truth)


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


def _lists(
    rng: np.random.Generator,
    users: int,
    popularity: np.ndarray,
    category: np.ndarray,
    taste: np.ndarray,
    appeal: np.ndarray,
    known: pd.Series,
    price: np.ndarray,
) -> pd.DataFrame:
    """Impressions and clicks of the product lists of the last ``LIST_DAYS`` days."""
    n = len(popularity)
    per_day = int(np.clip(users // 150, 8, 100))
    count = per_day * LIST_DAYS
    start = (END - pd.Timedelta(days=LIST_DAYS)).value // 1_000
    t = np.sort(rng.integers(start, END.value // 1_000 - 3_600_000_000, count))
    user = rng.integers(1, users + 1, count)
    weight = popularity**0.7
    size = min(LIST_SIZE, n)
    # the old policy: a noisy popularity draws the list, popularity orders it, and a
    # share EXPLORE of the lists is shuffled uniformly instead
    noisy = np.log(weight)[None, :] + rng.gumbel(size=(count, n))
    drawn = np.argsort(-noisy, axis=1)[:, :size]
    by_popularity = np.take_along_axis(
        drawn, np.argsort(-weight[drawn], axis=1, kind="stable"), axis=1
    )
    shuffle = np.argsort(rng.random((count, size)), axis=1)
    explored = rng.random(count) < EXPLORE
    shown = np.where(
        explored[:, None], np.take_along_axis(by_popularity, shuffle, axis=1), by_popularity
    )
    position = np.broadcast_to(np.arange(size), shown.shape)
    # the probability the policy had of putting each shown product where it is
    propensity = (1 - EXPLORE) * (shown == by_popularity) + EXPLORE / size
    rows = pd.DataFrame(
        {
            "user_id": np.repeat(user, size).astype(np.int64),
            "product": shown.ravel(),
            "position": position.ravel() + 1,
            "propensity": propensity.ravel(),
            "t": np.repeat(t, size),
            "request": np.repeat(np.arange(count), size),
        }
    )
    ids = np.asarray([f"sku_{i + 1:04d}" for i in range(n)], dtype=object)
    rows["product_id"] = ids[rows["product"].to_numpy()]
    first = known.rename("first").reset_index()
    rows = rows.merge(first, on=["user_id", "product_id"], how="left")
    first_us = rows["first"].astype("datetime64[us, UTC]").astype("int64")
    before = rows["first"].notna().to_numpy() & (first_us.to_numpy() < rows["t"].to_numpy())
    likes = category[rows["product"].to_numpy()] == taste[rows["user_id"].to_numpy() - 1]
    p = _click(rows["position"].to_numpy() - 1, appeal[rows["product"].to_numpy()], likes, before)
    clicked = rng.random(len(rows)) < p
    stamp = pd.to_datetime(rows["t"], unit="us", utc=True)
    base = pd.DataFrame(
        {
            "user_id": rows["user_id"],
            "product_id": rows["product_id"],
            "event_timestamp": stamp,
            "event_type": "impression",
            "price": price[rows["product"].to_numpy()],
            "request_id": [f"req_{r:06d}" for r in rows["request"]],
            "position": rows["position"].astype("Int64"),
            "propensity": rows["propensity"].astype("float64"),
        }
    )
    clicks = base[clicked].copy()
    clicks["event_type"] = "click"
    delay = rng.integers(2_000_000, 300_000_000, len(clicks))  # 2 s to 5 min later
    clicks["event_timestamp"] = clicks["event_timestamp"] + pd.to_timedelta(delay, unit="us")
    out = pd.concat([base, clicks], ignore_index=True)
    out["event_timestamp"] = out["event_timestamp"].astype("datetime64[us, UTC]")
    return out
