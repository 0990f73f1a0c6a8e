"""Prediction problems of the card-payments example (Feast ignores these objects)."""

from datetime import timedelta

from sources import chargebacks, payments

from framework import AnyEvent, EventSpine, Problem

# At each payment: will the card be disputed (any chargeback) in the next 7 days?
# One observation per payment, with features as of just before it; the label comes
# from another source (chargebacks). The key is the feature service's: card_id.
dispute = Problem(
    name="dispute",
    task="binary",
    events=payments,
    label=AnyEvent(horizon=timedelta(days=7), source=chargebacks),
    spine=EventSpine(),
    feature_service="dispute_v1",
    metric="pr_auc",
    success_threshold=0.2,
    candidates=("baseline", "lightgbm", "logistic_regression"),
    tuning_budget=2,
    description="Will the card be disputed within 7 days of this payment?",
)
