"""Raw data of the example product, written by `lifecycle example-data` or by ingestion.

Paths are absolute (resolved from this file): Feast's DuckDB offline store would
otherwise resolve them from the process's working directory.
"""

from pathlib import Path

from feast import FileSource

from framework import SourceContract

DATA = Path(__file__).resolve().parent / "data"

events_source = FileSource(
    name="events_source",
    path=str(DATA / "events.parquet"),
    timestamp_field="event_timestamp",
    description="Product events: user_id, event_timestamp (UTC), event_type, source, amount.",
)

users_source = FileSource(
    name="users_source",
    path=str(DATA / "users.parquet"),
    timestamp_field="signup_date",
    description="User profiles; a profile is known from the user's signup on.",
)

# What an event may hold: ingestion (lifecycle events ingest, POST /events) and
# apply refuse a file that breaks it, with a report of every problem.
event_contract = SourceContract(
    source=events_source,
    columns={
        "user_id": "int",
        "event_timestamp": "timestamp",
        "event_type": "string",
        "source": "string",
        "amount": "float",
    },
    nullable=["amount"],
    allowed={
        "event_type": ["page_view", "add_to_cart", "purchase", "support_ticket", "conversion"],
        "source": ["google", "facebook", "direct", "email"],
    },
    ranges={"amount": (0.0, None)},
)
