"""Prediction problems of the example product (Feast ignores these objects)."""

from sources import events_source

from framework.declare.problems import NoEvents, Problem, Sum, WeeklyCutoffs

# Categories the validation suite accepts (anything else fails validation).
PROFILE_CATEGORIES = {
    "plan": ("free", "basic", "pro"),
    "country": ("US", "GB", "DE", "FR", "IN", "BR"),
}

churn = Problem(
    name="churn",
    task="binary",
    events=events_source,
    label=NoEvents(horizon_days=30),
    spine=WeeklyCutoffs(active_within_days=30, every_days=7, warmup_days=90),
    feature_service="churn_model_v1",
    metric="pr_auc",
    success_threshold=0.5,  # success: test PR-AUC >= 0.5
    categories=PROFILE_CATEGORIES,
    description="Will an active user have no event in the next 30 days?",
)

spend = Problem(
    name="spend",
    task="regression",
    events=events_source,
    label=Sum("amount", horizon_days=30, where='event_type == "purchase"'),
    spine=WeeklyCutoffs(active_within_days=30, every_days=7, warmup_days=90),
    feature_service="spend_model_v1",
    metric="mae",
    success_threshold=60.0,  # success: test MAE <= 60
    categories=PROFILE_CATEGORIES,
    description="How much will an active user spend in the next 30 days?",
)
