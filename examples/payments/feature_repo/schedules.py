"""Jobs of the card-payments example (Feast ignores these objects).

The online store is refreshed every hour; every night at 02:00 UTC every card
is scored for disputes (a night the scheduler was down is scored later, as of
its own night) and every card x merchant pair for its review outcome, then the
dispute scores of the last day are checked for drift; at 03:00 each merchant's
payments are forecast a week ahead; on Sundays the review model is retrained
behind the champion/challenger gate.
"""

from framework import Job

refresh_online = Job(name="refresh_online", command="materialize", every="1h")

score_cards = Job(
    name="score_cards",
    command="predict",
    problem="dispute",
    cron="0 2 * * *",
    after="refresh_online",  # an hourly upstream has a tick at every 02:00
    missed="catch_up",
    retries=1,
    backoff="10m",
)

review_outcomes = Job(
    name="review_outcomes",
    command="predict",
    problem="payment_review",
    cron="0 2 * * *",
    after="refresh_online",
)

dispute_drift = Job(
    name="dispute_drift",
    command="monitor",
    problem="dispute",
    cron="0 2 * * *",
    after="score_cards",
    window="1d",
)

forecast_merchants = Job(
    name="forecast_merchants",
    command="predict",
    problem="merchant_payments",
    horizon=7,
    cron="0 3 * * *",
    after="refresh_online",
)

review_retrain = Job(
    name="review_retrain", command="retrain", problem="payment_review", cron="0 4 * * 0"
)
