"""A tiny single-file repo (a newsletter's subscribers) for tests: one source, one
entity with a string key, one windowed view, a service and a problem. The data is made
by ``tests.helpers.copy_tiny_repo``; the framework knows nothing of it."""

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FileSource, ValueType

from framework import Aggregate, AnyEvent, Cutoffs, Problem, WindowedFeatureView

DATA = Path(__file__).resolve().parent / "data"

mail_events = FileSource(
    name="mail_events", path=str(DATA / "mail_events.parquet"), timestamp_field="sent_at"
)
subscriber = Entity(name="subscriber", join_keys=["subscriber"], value_type=ValueType.STRING)

reading = WindowedFeatureView(
    name="reading",
    entity=subscriber,
    source=mail_events,
    windows=[7, 28],
    aggregates=[
        Aggregate("opens", "count", where='kind == "open"'),
        Aggregate("clicks", "count", where='kind == "click"'),
        Aggregate("app_opens", "count", where='kind == "open" and client == "app"'),
        Aggregate("read_seconds", "sum", column="seconds"),
    ],
)
reading_v1 = FeatureService(name="reading_v1", features=[reading])

unsubscribe = Problem(
    name="unsubscribe",
    task="binary",
    events=mail_events,
    label=AnyEvent(horizon=timedelta(days=14), where='kind == "unsubscribe"'),
    spine=Cutoffs(every=7, active_within=28, warmup=28),
    feature_service="reading_v1",
    metric="roc_auc",
    success_threshold=0.55,
    candidates=("baseline", "logistic_regression"),
    tuning_budget=1,
    min_positives=3,
)
