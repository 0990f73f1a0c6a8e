"""Jobs of the example product: the lifecycle on a schedule (Feast ignores these objects).

Every morning at 06:00 UTC the online store is loaded with the night's events,
then every active user is scored for churn as of 06:00 and the day's scores are
checked for drift. On Mondays a challenger is trained and promoted only if it
beats the production model. `lifecycle schedule list` shows them,
`lifecycle schedule run` runs them, `lifecycle schedule export k8s|airflow|crontab`
hands them to an orchestrator.
"""

from framework import Job

materialize = Job(
    name="materialize",
    command="materialize",
    cron="0 6 * * *",
    retries=2,
    backoff="5m",
    description="Load the online store with values as of 06:00 UTC.",
)

predict_churn = Job(
    name="predict_churn",
    command="predict",
    problem="churn",
    cron="0 6 * * *",
    after="materialize",
    missed="catch_up",  # a day the scheduler was down is scored later, as of its own day
    retries=2,
    backoff="5m",
    description="Score every active user for churn; the CRM reads table predictions.",
)

monitor_churn = Job(
    name="monitor_churn",
    command="monitor",
    problem="churn",
    cron="0 6 * * *",
    after="predict_churn",  # drift of the day's scores against the training reference
    description="Drift of the day's churn scores and their features.",
)

retrain_churn = Job(
    name="retrain_churn",
    command="retrain",
    problem="churn",
    cron="0 6 * * 1",
    after="monitor_churn",
    description="Weekly challenger; promoted only when it beats the production model.",
)
