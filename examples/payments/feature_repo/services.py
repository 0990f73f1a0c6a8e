"""Feature services of the card-payments example."""

from feast import FeatureService
from features import card_disputes, card_merchant, card_spend, merchant_volume

fraud_v1 = FeatureService(
    name="fraud_v1",
    features=[card_spend, merchant_volume, card_merchant, card_disputes],
    description="Features of a payment-dispute model.",
)

dispute_v1 = FeatureService(
    name="dispute_v1",
    features=[card_spend, card_disputes],
    description="Card-level features of the dispute model (one key: card_id).",
)

merchant_forecast_v1 = FeatureService(
    name="merchant_forecast_v1",
    features=[merchant_volume],
    description="Features of a merchant's daily payment forecast (one key: merchant_id).",
)
