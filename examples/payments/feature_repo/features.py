"""Windowed features of the card-payments example."""

from datetime import timedelta

from entities import card, merchant
from sources import chargebacks, payments

from framework import LIFETIME, Aggregate, WindowedFeatureView

card_spend = WindowedFeatureView(
    name="card_spend",
    entity=card,
    source=payments,
    windows=[timedelta(minutes=15), timedelta(hours=1), timedelta(hours=24), 7, LIFETIME],
    aggregates=[
        Aggregate("payments", "count"),
        Aggregate("amount", "sum", column="amount"),
        Aggregate("amount", "max", column="amount"),
        Aggregate("amount", "min", column="amount"),
        Aggregate("merchants", "count_distinct", column="merchant_id"),
        Aggregate("web", "count", where='channel == "web"'),
        Aggregate("channel", "last", column="channel"),
    ],
    description="Spending velocity of a card: minutes to its whole history.",
)

merchant_volume = WindowedFeatureView(
    name="merchant_volume",
    entity=merchant,
    source=payments,
    windows=[timedelta(hours=1), timedelta(hours=36), 7],
    aggregates=[
        Aggregate("payments", "count"),
        Aggregate("amount", "sum", column="amount"),
        Aggregate("amount", "mean", column="amount"),
        Aggregate("cards", "count_distinct", column="card_id"),
    ],
)

card_merchant = WindowedFeatureView(
    name="card_merchant",
    entities=[card, merchant],
    source=payments,
    windows=[1, 30, LIFETIME],
    aggregates=[
        Aggregate("payments", "count"),
        Aggregate("amount", "sum", column="amount"),
        Aggregate("amount", "last", column="amount"),
    ],
    description="A card's history with one merchant (a composite key).",
)

card_disputes = WindowedFeatureView(
    name="card_disputes",
    entity=card,
    source=chargebacks,
    windows=[30, 90, LIFETIME],
    aggregates=[
        Aggregate("chargebacks", "count"),
        Aggregate("fraud", "count", where='reason == "fraud"'),
    ],
    prefix="card",
)
