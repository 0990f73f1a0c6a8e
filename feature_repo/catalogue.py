"""The example product's catalogue: products, their sales, and a daily demand forecast.

Everything about products is declared here, beside the user-centred declarations
of the other files: the entity, the two sources (with the event log's contract),
the windowed sales view, the product profile, the forecast's feature service and
the ``demand`` problem (Feast ignores the problem object).
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, String
from sources import DATA

from framework import Aggregate, Cutoffs, DailyTotal, Problem, SourceContract, WindowedFeatureView

CATEGORIES = ("books", "electronics", "garden", "home", "kitchen", "outdoor", "sports", "toys")

product = Entity(
    name="product",
    join_keys=["product_id"],
    value_type=ValueType.STRING,
    description="A product of the catalogue (sku_0001, ...).",
)

product_events_source = FileSource(
    name="product_events_source",
    path=str(DATA / "product_events.parquet"),
    timestamp_field="event_timestamp",
    description="Catalogue events: user_id, product_id, event_timestamp, event_type, price.",
)

products_source = FileSource(
    name="products_source",
    path=str(DATA / "products.parquet"),
    timestamp_field="listed_at",
    description="The catalogue: product_id, category and price, known from listing on.",
)

product_event_contract = SourceContract(
    source=product_events_source,
    columns={
        "user_id": "int",
        "product_id": "string",
        "event_timestamp": "timestamp",
        "event_type": "string",
        "price": "float",
    },
    allowed={"event_type": ["add_to_cart", "purchase"]},
    ranges={"price": (0.0, None)},
)

product_sales = WindowedFeatureView(
    name="product_sales",
    entity=product,
    source=product_events_source,
    windows=[7, 28, 91],
    aggregates=[
        Aggregate("units", "count", where='event_type == "purchase"'),
        Aggregate("carts", "count", where='event_type == "add_to_cart"'),
        Aggregate("buyers", "count_distinct", column="user_id", where='event_type == "purchase"'),
    ],
    description="Units sold, carts and distinct buyers of a product over 7, 28 and 91 days.",
)

product_profile = FeatureView(
    name="product_profile",
    entities=[product],
    source=products_source,
    schema=[
        Field(name="product_id", dtype=String),
        Field(name="category", dtype=String),
        Field(name="price", dtype=Float64),
    ],
    ttl=timedelta(0),  # a listing does not expire
    description="Category and price, known from listing on.",
)

demand_model_v1 = FeatureService(
    name="demand_model_v1",
    features=[product_sales, product_profile],
    description="Features of the daily demand forecast (at the forecast origin).",
)

demand = Problem(
    name="demand",
    task="forecast",
    events=product_events_source,
    # units sold per day, for each of the next 365 days after a forecast origin
    label=DailyTotal(horizon_days=365, where='event_type == "purchase"', country="US"),
    # an origin every 4 weeks, for the products sold in the 4 weeks before it
    spine=Cutoffs(every=28, active_within=28, warmup=91),
    feature_service="demand_model_v1",
    metric="mase",
    success_threshold=1.0,  # success: better than seasonal naive on test
    categories={"category": CATEGORIES},
    tuning_budget=4,
    description="How many units of a product sell on each of the next 365 days?",
)
