"""The example product's catalogue: products, their sales and lists, a daily demand
forecast and a product ranking.

Everything about products is declared here, beside the user-centred declarations
of the other files: the entity, the two sources (with the event log's contract),
the windowed views (sales, engagement in lists, user x product history), the
product profile, the feature services and the ``demand`` and ``product_ranking``
problems (Feast ignores the problem objects).
"""

from datetime import timedelta

from entities import user
from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, String
from features import user_activity
from sources import DATA

from framework import (
    Aggregate,
    AnyEvent,
    Cutoffs,
    DailyTotal,
    EventSpine,
    Experiment,
    Job,
    Problem,
    SourceContract,
    WindowedFeatureView,
)

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
    description="Catalogue events: user_id, product_id, event_timestamp, event_type, price; "
    "impressions and clicks also carry request_id (the list), position (1 = top) and "
    "propensity (the probability the ranking policy had of showing the product there).",
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
        "request_id": "string",
        "position": "int",
        "propensity": "float",
    },
    # only impressions and clicks are in a list
    nullable=["request_id", "position", "propensity"],
    allowed={"event_type": ["impression", "click", "add_to_cart", "purchase"]},
    ranges={"price": (0.0, None), "position": (1, None), "propensity": (0.0, 1.0)},
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

# --- ranking products in lists, judged by click-through rate -----------------------

product_engagement = WindowedFeatureView(
    name="product_engagement",
    entity=product,
    source=product_events_source,
    windows=[7, 28],
    aggregates=[
        Aggregate("impressions", "count", where='event_type == "impression"'),
        Aggregate("clicks", "count", where='event_type == "click"'),
        # clicks per impression, leaning to 1 in 20 while a product has few impressions
        Aggregate(
            "clicks",
            "ratio",
            where='event_type == "click"',
            per='event_type == "impression"',
            prior=(1, 20),
        ),
    ],
    description="How often a product was shown in lists and clicked, and its click-through "
    "rate, over 7 and 28 days.",
)

user_product = WindowedFeatureView(
    name="user_product",
    entities=[user, product],
    source=product_events_source,
    windows=[28, 365],
    aggregates=[
        Aggregate("impressions", "count", where='event_type == "impression"'),
        Aggregate("clicks", "count", where='event_type == "click"'),
        Aggregate("carts", "count", where='event_type == "add_to_cart"'),
        Aggregate("purchases", "count", where='event_type == "purchase"'),
    ],
    description="A user's history with a product: seen, clicked, carted, bought.",
)

ranking_model_v1 = FeatureService(
    name="ranking_model_v1",
    features=[product_engagement, product_sales, product_profile, user_activity, user_product],
    description="Features of the product ranking (product, user, and user x product).",
)

product_ranking = Problem(
    name="product_ranking",
    task="ranking",
    events=product_events_source,
    # one observation per product shown in a list; label: the user clicks it within an hour
    spine=EventSpine(where='event_type == "impression"'),
    label=AnyEvent(horizon=timedelta(hours=1), where='event_type == "click"'),
    entity=("user_id", "product_id"),
    group="request_id",  # the list (one request) each impression was shown in
    item="product_id",  # what is ranked; the rest of the keys (user_id) is the query
    feature_service="ranking_model_v1",
    popularity="product_clicks_count_28d",  # the baseline: most clicked first
    # each impression's position and the probability the policy had of putting the
    # product there: the position-aware learner and the counterfactual CTR use them, and
    # /rank shuffles 5% of its lists (and returns both) so that the logs keep them possible
    position="position",
    propensity="propensity",
    exploration=0.05,
    metric="ctr_cf",  # the CTR@10 each order would have earned on the logged lists
    top_k=10,
    success_threshold=0.0,  # promotion asks more: a lift over popularity clear of zero
    categories={"category": CATEGORIES},
    tuning_budget=4,
    description="Which of the candidate products will this user click? Order them.",
)

# The A/B test of the ranking: half of the users (by user_id) see the popularity order
# (control), half the model's (treatment); the metric is the click-through rate of
# what was shown: clicks per impression (both logged by the product through
# POST /events), within a day of a user's first list.
ranking_ab = Experiment(
    name="ranking_ab",
    problem="product_ranking",
    control="popularity",
    treatment="production",
    unit="user_id",
    source="product_events_source",
    outcome='event_type == "click"',
    per='event_type == "impression"',
    window_days=1,
    description="Does the model's order raise the click-through rate over popularity?",
)

# Every morning after the online store is loaded: four weeks of daily demand per product,
# as of 06:00 UTC, into the table forecasts (declared here, beside the problem).
forecast_demand = Job(
    name="forecast_demand",
    command="predict",
    problem="demand",
    horizon=28,
    cron="0 6 * * *",
    after="materialize",
    description="Daily demand per product for the next 28 days.",
)
