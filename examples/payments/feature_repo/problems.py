"""Prediction problems of the card-payments example (Feast ignores these objects)."""

from datetime import timedelta

from sources import chargebacks, payment_reviews, payments

from framework import AnyEvent, Cutoffs, DailyTotal, EventSpine, LabelTable, Problem

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

# Per payment: its review outcome (ok, fraud, not_received), from a label table.
# The key is fraud_v1's composite key (card_id, merchant_id); features are read at
# the payment's time; outcomes are known within 3 days (the split purges that much).
payment_review = Problem(
    name="payment_review",
    task="multiclass",
    label=LabelTable(source=payment_reviews, column="outcome", horizon=timedelta(days=3)),
    feature_service="fraud_v1",
    metric="macro_f1",
    success_threshold=0.4,
    candidates=("baseline", "lightgbm", "logistic_regression"),
    tuning_budget=2,
    description="How will the review of this payment end: ok, fraud or not received?",
)

# Per merchant, every day: how many payments on each of the next 7 days? A forecast
# (one row per merchant, origin and target day), judged against seasonal naive.
merchant_payments = Problem(
    name="merchant_payments",
    task="forecast",
    events=payments,
    label=DailyTotal(horizon=timedelta(days=7), country="GB"),
    spine=Cutoffs(every=1, active_within=7, warmup=7),
    feature_service="merchant_forecast_v1",
    metric="mae",
    success_threshold=5.0,
    candidates=("baseline", "lightgbm", "ridge"),
    tuning_budget=1,
    description="How many payments will a merchant take on each of the next 7 days?",
)
