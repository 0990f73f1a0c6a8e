"""Schedule: the declared jobs (``framework.Job``) run at their ticks and recorded.

The record of runs is the table job_runs of the project's database
(:mod:`framework.deploy.job_runs`, read by the service's ``/ui/jobs`` and
``/metrics``); here: ``tasks`` (what each
command does as of its tick), ``runner`` (what is due, one tick, backfills),
``process`` (the APScheduler process of ``lifecycle schedule run``) and
``exports`` (crontab, Kubernetes CronJobs, an Airflow DAG).
"""

__all__: list[str] = []
