"""Experiments of the example product (Feast ignores these objects)."""

from framework import Experiment

# Retention offers: the product shows an offer to users the churn model flags
# (treatment) or to nobody, as before (control). Success: a `conversion` event
# (the user redeems the offer and stays) within 7 days of the first exposure.
retention_offers = Experiment(
    name="retention_offers",
    problem="churn",
    control="none",
    treatment="production",
    outcome='event_type == "conversion"',
    window_days=7,
    description="Do retention offers to users flagged by the churn model raise conversions?",
)
