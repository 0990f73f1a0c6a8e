"""Raw data of the card-payments example: two event logs, written by
`python examples/payments/generate.py` (or ingested).

Paths are absolute (resolved from this file): Feast's DuckDB offline store would
otherwise resolve them from the process's working directory.
"""

from datetime import timedelta
from pathlib import Path

from feast import FileSource

from framework import SourceContract

DATA = Path(__file__).resolve().parent / "data"

payments = FileSource(
    name="payments",
    path=str(DATA / "payments.parquet"),
    timestamp_field="ts",
    description="Card payments: payment_id, card_id, ts (UTC), merchant_id, channel, amount.",
)

# Chargebacks declare no contract: `lifecycle apply` records the file's column
# types in the registry and ingestion checks new rows against them.
chargebacks = FileSource(
    name="chargebacks",
    path=str(DATA / "chargebacks.parquet"),
    timestamp_field="reported_at",
    description="Disputed payments: card_id, merchant_id, reported_at, reason.",
)

# A label table: the review outcome of each payment (ok, fraud, not_received),
# known within three days of it.
payment_reviews = FileSource(
    name="payment_reviews",
    path=str(DATA / "payment_reviews.parquet"),
    timestamp_field="ts",
    description="Review outcome per payment: card_id, merchant_id, ts (the payment's), outcome.",
)

payments_contract = SourceContract(
    source=payments,
    columns={
        "payment_id": "string",
        "card_id": "string",
        "ts": "timestamp",
        "merchant_id": "string",
        "channel": "string",
        "amount": "float",
    },
    nullable=["channel"],
    allowed={"channel": ["web", "pos", "phone"]},
    ranges={"amount": (0.01, 50_000.0)},
    max_future=timedelta(minutes=1),
    event_id="payment_id",  # a payment sent twice is kept once
)
