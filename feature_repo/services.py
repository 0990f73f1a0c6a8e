"""Feature services: the versioned feature sets models train and serve on."""

from feast import FeatureService
from features import event_dates, user_activity, user_profile

churn_model_v1 = FeatureService(
    name="churn_model_v1",
    features=[user_activity, user_profile, event_dates],
    description="Features of the churn model.",
)

spend_model_v1 = FeatureService(
    name="spend_model_v1",
    features=[user_activity, user_profile, event_dates],
    description="Features of the 30-day spend model.",
)
