"""Feature views of the example product."""

from datetime import timedelta

from entities import user
from feast import FeatureView, Field
from feast.types import Int64, String
from sources import events_source, users_source

from framework import Aggregate, DateExpansions, WindowedFeatureView

user_activity = WindowedFeatureView(
    name="user_activity",
    entity=user,
    source=events_source,
    windows=[7, 30, 90],
    aggregates=[
        Aggregate("events", "count"),
        Aggregate("page_views", "count", where='event_type == "page_view"'),
        Aggregate("purchases", "count", where='event_type == "purchase"'),
        Aggregate("support_tickets", "count", where='event_type == "support_ticket"'),
        Aggregate("amount", "sum", column="amount"),
        Aggregate(
            "page_views_google", "count", where='event_type == "page_view" and source == "google"'
        ),
        Aggregate(
            "page_views_facebook",
            "count",
            where='event_type == "page_view" and source == "facebook"',
        ),
    ],
    description="Event counts and purchase amounts over the last 7, 30 and 90 days.",
)

user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    source=users_source,
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="plan", dtype=String),
        Field(name="country", dtype=String),
        Field(name="age", dtype=Int64),
    ],
    ttl=timedelta(0),  # a profile does not expire
    description="Profile attributes, known from signup on.",
)

event_dates = DateExpansions(
    name="event_dates",
    timestamp_field="event_timestamp",
    country="US",
    prefix="event_",
)
