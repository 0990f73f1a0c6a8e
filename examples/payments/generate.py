"""Generate the card-payments example's data: `python examples/payments/generate.py [DIR]`.

Cards pay at a few favourite merchants (popularity is skewed), in sessions
that bunch payments within minutes; amounts are log-normal per merchant; a
small share of payments is disputed days later (chargebacks). Timestamps are
whole seconds, so ties happen.

Each payment is also reviewed within three days (a label table,
payment_reviews.parquet: card_id, merchant_id, ts, outcome): ``fraud`` is more
likely in a spree (3+ payments of the card within the hour) and at a merchant
new to the card, ``not_received`` on the web, ``ok`` otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

END = pd.Timestamp("2025-10-01", tz="UTC")


def payments_frames(
    cards: int = 200, merchants: int = 40, days: int = 30, seed: int = 0, end: pd.Timestamp = END
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = end - pd.Timedelta(days=days)
    popularity = rng.zipf(1.6, merchants).astype(float)
    popularity /= popularity.sum()
    typical = np.exp(rng.normal(3.3, 0.8, merchants))  # a merchant's typical amount
    rows = []
    for c in range(cards):
        favourites = rng.choice(merchants, size=min(4, merchants), replace=False, p=popularity)
        sessions = rng.poisson(days * rng.uniform(0.2, 1.5))
        for _ in range(sessions):
            at = start + pd.Timedelta(seconds=int(rng.integers(0, days * 86_400)))
            for _ in range(1 + rng.poisson(0.8)):
                at += pd.Timedelta(seconds=int(rng.exponential(240)))
                m = (
                    favourites[rng.integers(len(favourites))]
                    if rng.random() < 0.8
                    else rng.choice(merchants, p=popularity)
                )
                amount = round(float(typical[m] * np.exp(rng.normal(0, 0.5))), 2)
                channel = rng.choice(["web", "pos", "phone", None], p=[0.45, 0.45, 0.07, 0.03])
                rows.append((f"c_{c}", at.floor("s"), f"m_{m}", channel, max(amount, 0.01)))
    pay = pd.DataFrame(rows, columns=["card_id", "ts", "merchant_id", "channel", "amount"])
    pay = pay[pay.ts < end].sort_values("ts", kind="stable").reset_index(drop=True)
    pay.insert(0, "payment_id", [f"p_{i}" for i in range(len(pay))])
    pay["ts"] = pay.ts.astype("datetime64[us, UTC]")
    disputed = pay.sample(frac=0.03, random_state=seed)
    delay = pd.to_timedelta(rng.integers(2 * 86_400, 20 * 86_400, len(disputed)), unit="s")
    cb = pd.DataFrame(
        {
            "card_id": disputed.card_id.to_numpy(),
            "merchant_id": disputed.merchant_id.to_numpy(),
            "reported_at": (disputed.ts + delay).to_numpy(),
            "reason": rng.choice(
                ["fraud", "not_received", "other"], len(disputed), p=[0.5, 0.3, 0.2]
            ),
        }
    )
    cb["reported_at"] = pd.to_datetime(cb.reported_at, utc=True).astype("datetime64[us, UTC]")
    cb = cb.sort_values("reported_at", kind="stable").reset_index(drop=True)
    return pay, cb


def reviews_frame(pay: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The review outcome of every payment (a multiclass label table)."""
    rng = np.random.default_rng(seed + 1)
    ts = pay.ts.astype("int64") // 1_000_000  # seconds
    order = np.lexsort((ts.to_numpy(), pay.card_id.to_numpy()))
    card = pay.card_id.to_numpy()[order]
    sec = ts.to_numpy()[order]
    spree = np.zeros(len(pay), dtype=bool)
    for i in range(len(order)):  # 3+ payments of the card in the hour up to this one
        j = i - 2
        spree[order[i]] = j >= 0 and card[j] == card[i] and sec[i] - sec[j] <= 3_600
    first = ~pay.duplicated(["card_id", "merchant_id"]).to_numpy()
    web = (pay.channel == "web").to_numpy()
    p_fraud = 0.02 + 0.4 * spree + 0.1 * first
    p_nr = 0.01 + 0.08 * web
    u = rng.random(len(pay))
    outcome = np.where(u < p_fraud, "fraud", np.where(u < p_fraud + p_nr, "not_received", "ok"))
    return pd.DataFrame(
        {
            "card_id": pay.card_id.to_numpy(),
            "merchant_id": pay.merchant_id.to_numpy(),
            "ts": pay.ts.to_numpy(),
            "outcome": outcome,
        }
    ).astype({"ts": "datetime64[us, UTC]"})


def write_payments(data_dir: str | Path, **kwargs: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write payments.parquet, chargebacks.parquet and payment_reviews.parquet under
    ``data_dir``."""
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    pay, cb = payments_frames(**kwargs)  # type: ignore[arg-type]
    pay.to_parquet(data / "payments.parquet", index=False)
    cb.to_parquet(data / "chargebacks.parquet", index=False)
    seed = int(kwargs.get("seed", 0))  # type: ignore[call-overload]
    reviews_frame(pay, seed).to_parquet(data / "payment_reviews.parquet", index=False)
    return pay, cb


if __name__ == "__main__":
    target = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "feature_repo" / "data"
    )
    p, c = write_payments(target)
    print(f"Wrote {len(p):,} payments and {len(c):,} chargebacks to {target}")
