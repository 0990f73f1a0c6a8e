"""Problems over any data, end to end, on the card-payments example (another domain):
``dispute`` (binary, string key card_id, an event spine, labels from another source) and
``payment_review`` (multiclass, from a label table, composite key card_id x merchant_id)
trained, served over HTTP with their own key names, batch-predicted into SQLite and
PostgreSQL, and monitored (drift, skew, realized performance)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import requests
import sqlalchemy as sa

from framework.common.database import engine_url
from framework.declare.repo import FeatureRepo
from framework.deploy.batch import predict_batch
from framework.deploy.service import create_app
from framework.features.historical import get_historical_features
from framework.features.materialize import materialize
from framework.models import scoring
from framework.models.registry import registry_of
from framework.prepare.apply import apply
from framework.training.run import run_training
from tests.helpers import cli, copy_payments_repo, serve_app

pytestmark = [pytest.mark.slow, pytest.mark.stores]  # the module trains both problems


class _Client:
    """The app served on a loopback port (its shutdown drains the prediction log)."""

    def __init__(self, app):
        self.app = app

    def __enter__(self):
        self.server, self.thread, self.url = serve_app(self.app)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def get(self, path):
        return requests.get(self.url + path, timeout=30)

    def post(self, path, json):
        return requests.post(self.url + path, json=json, timeout=60)


@pytest.fixture(scope="module")
def payments_trained(tmp_path_factory):
    path = copy_payments_repo(
        tmp_path_factory.mktemp("pay") / "feature_repo", cards=80, days=30, seed=5
    )
    repo = FeatureRepo(path)
    apply(repo)
    runs = {}
    for name in ("dispute", "payment_review"):
        runs[name] = run_training(repo, name)
        registry_of(repo).promote(name, runs[name].artifact.version)
    pay = pd.read_parquet(path / "data" / "payments.parquet")
    at = pay.ts.max()
    materialize(repo, end=at)
    return repo, runs, pay, at


def test_problems_take_their_services_keys_and_multiclass_trains(payments_trained):
    repo, runs, _, _ = payments_trained
    assert repo.problem("dispute").keys == ("card_id",)
    assert repo.problem("payment_review").keys == ("card_id", "merchant_id")
    assert repo.key_kinds("payment_review") == {"card_id": "string", "merchant_id": "string"}
    review = runs["payment_review"]
    meta = review.artifact.meta
    assert meta.entity == ["card_id", "merchant_id"] and meta.task == "multiclass"
    assert meta.classes == sorted(set(review.training_set.frame.label))
    assert {c["name"] for c in meta.candidates} == {"baseline", "lightgbm", "logistic_regression"}
    test = meta.metrics["test"]
    for name in meta.classes:  # per-class precision, recall and F1 on test
        assert 0 <= test[f"precision[{name}]"] <= 1 and 0 <= test[f"f1[{name}]"] <= 1
    assert test["log_loss"] > 0 and 0 < test["macro_f1"] <= 1
    # the outcomes depend on the card's recent history: the model beats the class prior
    assert test["macro_f1"] > meta.baseline["test"]["macro_f1"] + 0.03
    # the label table's rows are the observations, with their labels as given
    table = pd.read_parquet(repo.path / "data" / "payment_reviews.parquet")
    frame = review.training_set.frame
    assert len(frame) == len(table)
    assert frame.label.value_counts().to_dict() == table.outcome.value_counts().to_dict()
    # validation and test each span several observation times; the card shows the spans
    for part in ("validation", "test"):
        assert meta.split[part][3] >= 3
    html = (review.artifact.path / "card.html").read_text()
    assert "Confusion matrix (test)" in html and "observation times" in html
    assert "Per class (test, winner)" in html


def test_openapi_has_a_body_per_problem_with_its_typed_keys(payments_trained):
    repo = payments_trained[0]
    with _Client(create_app(repo)) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    review = schema["PaymentReviewEntity"]
    assert set(review["required"]) == {"card_id", "merchant_id"}
    assert review["properties"]["card_id"]["type"] == "string"
    assert schema["DisputeEntity"]["required"] == ["card_id"]
    assert schema["DisputePredictRequest"]["properties"]["problem"]["const"] == "dispute"


def test_predict_over_http_equals_offline_scoring_and_logs_the_keys(payments_trained, tmp_path):
    repo, _, pay, at = payments_trained
    db = f"sqlite:///{tmp_path / 'log.db'}"
    pairs = pay[["card_id", "merchant_id"]].drop_duplicates().head(20)
    ts = int(at.timestamp())
    with _Client(create_app(repo, log_url=db)) as client:
        body = {
            "problem": "payment_review",
            "entities": [
                {"card_id": c, "merchant_id": m, "event_timestamp": ts}
                for c, m in pairs.itertuples(index=False)
            ],
        }
        answer = client.post("/predict", json=body)
        assert answer.status_code == 200, answer.text
        items = answer.json()["predictions"]
        cards = sorted(pay.card_id.unique())[:10]
        disputes = client.post(
            "/predict",
            json={
                "problem": "dispute",
                "entities": [{"card_id": c, "event_timestamp": ts} for c in cards],
            },
        )
        assert disputes.status_code == 200, disputes.text
        # a composite key needs all of its parts; a text key is not a number
        missing = client.post(
            "/predict", json={"problem": "payment_review", "entities": [{"card_id": "c_1"}]}
        )
        assert missing.status_code == 422 and "merchant_id" in missing.text
        wrong = client.post("/predict", json={"problem": "dispute", "entities": [{"card_id": 7}]})
        assert wrong.status_code == 422
    meta = registry_of(repo).get("payment_review").meta
    model = registry_of(repo).get("payment_review").load_model()
    rows = pairs.assign(event_timestamp=at.floor("s")).reset_index(drop=True)
    offline = get_historical_features(repo, rows, meta.feature_service)
    proba = scoring.class_probabilities(meta, model, offline)
    for i, item in enumerate(items):
        assert (item["card_id"], item["merchant_id"]) == tuple(pairs.iloc[i])
        got = [item["probabilities"][str(c)] for c in meta.classes]
        np.testing.assert_allclose(got, proba[i], atol=1e-9)
        assert item["label"] == meta.classes[int(np.argmax(proba[i]))]
        assert item["score"] == pytest.approx(proba[i].max(), abs=1e-9)
    engine = sa.create_engine(engine_url(db))
    with engine.connect() as conn:
        logged = conn.execute(
            sa.text("SELECT problem, entity_key, entity_id, label FROM prediction_log ORDER BY id")
        ).fetchall()
    engine.dispose()
    review = [r for r in logged if r[0] == "payment_review"]
    assert [json.loads(r[2]) for r in review] == pairs.to_numpy().tolist()
    assert {r[1] for r in review} == {"card_id,merchant_id"}
    assert [meta.classes[r[3]] for r in review] == [i["label"] for i in items]
    assert [r[2] for r in logged if r[0] == "dispute"] == cards


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_batch_predictions_store_the_keys_for_plain_sql(payments_trained, tmp_path, store, request):
    repo, _, pay, at = payments_trained
    if store == "sqlite":
        db = f"sqlite:///{tmp_path / 'p.db'}"
    else:
        db = request.getfixturevalue("postgres_url")
    as_of = at + pd.Timedelta(microseconds=int(pd.Timestamp.now().value % 1_000_000))
    review = predict_batch(repo, "payment_review", as_of, db=db)
    # default population: every (card, merchant) pair of the label table up to as_of
    reviews = pd.read_parquet(repo.path / "data" / "payment_reviews.parquet")
    assert review.rows == len(reviews[["card_id", "merchant_id"]].drop_duplicates())
    dispute = predict_batch(repo, "dispute", as_of, db=db)
    assert dispute.rows == pay.card_id.nunique()
    card, merchant = reviews.iloc[0][["card_id", "merchant_id"]]
    engine = sa.create_engine(engine_url(db))
    with engine.connect() as conn:
        (row,) = conn.execute(
            sa.text(
                "SELECT score, predicted_class, entity_id FROM predictions WHERE run_id = :r "
                "AND card_id = :c AND merchant_id = :m"
            ),
            {"r": review.run_id, "c": card, "m": merchant},
        ).fetchall()
        n = conn.execute(
            sa.text("SELECT count(*) FROM predictions WHERE run_id = :r AND card_id = :c"),
            {"r": dispute.run_id, "c": card},
        ).scalar()
    engine.dispose()
    meta = registry_of(repo).get("payment_review").meta
    assert row[1] in [str(c) for c in meta.classes] and 0 < row[0] <= 1
    assert json.loads(row[2]) == [card, merchant] and n == 1


def test_monitoring_skew_and_performance_over_composite_keys(payments_trained, tmp_path):
    from framework.monitor.drift import detect_drift
    from framework.monitor.performance import realized_performance
    from framework.monitor.skew import skew

    repo, _, _, at = payments_trained
    db = f"sqlite:///{tmp_path / 'log.db'}"
    reviews = pd.read_parquet(repo.path / "data" / "payment_reviews.parquet")
    late = reviews[reviews.ts <= at - pd.Timedelta(days=4)].tail(40)
    with _Client(create_app(repo, log_url=db)) as client:
        for c, m in late[["card_id", "merchant_id"]].itertuples(index=False):
            body = {
                "problem": "payment_review",
                "entities": [
                    {"card_id": c, "merchant_id": m, "event_timestamp": int(at.timestamp())}
                ],
            }
            assert client.post("/predict", json=body).status_code == 200
    clean = skew(repo, "payment_review", db=db)
    assert clean.rows == 40 and clean.skewed == []
    drift = detect_drift(repo, "payment_review", db=db)
    assert drift.rows == 40 and len(drift.features) == len(
        registry_of(repo).get("payment_review").meta.features
    )
    # realized performance: a label table labels the (keys, time) it holds a row for, so
    # a batch run as of a payment's time labels the pairs paid at exactly that time
    when = late.ts.max()
    batch = predict_batch(repo, "payment_review", when, db=db)
    paid = reviews[reviews.ts == when][["card_id", "merchant_id"]].drop_duplicates()
    rows = set(zip(reviews.card_id, reviews.merchant_id, reviews.ts, strict=True))
    served = sum((c, m, at) in rows for c, m in zip(late.card_id, late.merchant_id, strict=True))
    perf = realized_performance(repo, "payment_review", db=db)
    assert perf.metric == "macro_f1"
    assert perf.labeled == len(paid) + served and len(paid) >= 1
    assert perf.labeled + perf.pending == 40 + batch.rows
    (version,) = perf.versions.values()
    assert version["realized"]["n"] == perf.labeled
    assert 0 <= version["realized"]["accuracy"] <= 1


def test_retrain_gate_compares_multiclass_champion_and_challenger(payments_trained):
    from framework.monitor.retrain import retrain

    repo = payments_trained[0]
    champion = registry_of(repo).get("payment_review")
    same = retrain(repo, "payment_review")  # the same data and pipeline: an equal challenger
    assert same.metric == "macro_f1" and same.champion == champion.version
    assert same.challenger_score == pytest.approx(same.champion_score, abs=1e-9)
    assert not same.promoted and registry_of(repo).get("payment_review").version == champion.version


def test_cli_predict_takes_an_entities_file_with_every_key(payments_trained, tmp_path):
    repo, _, pay, at = payments_trained
    db = f"sqlite:///{tmp_path / 'p.db'}"
    pairs = pay[["card_id", "merchant_id"]].drop_duplicates().head(5)
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    when = at.isoformat()
    ok = cli(
        repo,
        "predict",
        "payment_review",
        "--at",
        when,
        "--entities",
        tmp_path / "pairs.csv",
        "--db",
        db,
    )
    assert ok.exit_code == 0, ok.output
    assert "Wrote 5 predictions of payment_review" in ok.output
    pairs[["card_id"]].to_csv(tmp_path / "cards.csv", index=False)
    bad = cli(
        repo,
        "predict",
        "payment_review",
        "--at",
        when,
        "--entities",
        tmp_path / "cards.csv",
        "--db",
        db,
    )
    assert bad.exit_code != 0 and "merchant_id" in bad.output


def test_generated_predict_requests_reach_scoring_for_text_and_composite_keys(
    payments_trained, tmp_path
):
    """schemathesis on the payments app's /predict: its schema has a body per problem with
    the real key fields, so valid generated requests are scored (2xx), never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    from framework.deploy.service import background_server

    repo = payments_trained[0]
    app = create_app(repo, log_url=f"sqlite:///{tmp_path / 'fuzz.db'}", max_entities=20)
    sent: list[tuple[str, int]] = []
    session = requests.Session()
    with background_server(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        (operation,) = [r.ok() for r in schema.get_all_operations() if r.ok().path == "/predict"]
        current = [""]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            current[0] = mode.value

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=150,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def run(case):
                response = case.call_and_validate(
                    base_url=url, session=session, excluded_checks=[positive_data_acceptance]
                )
                sent.append((current[0], response.status_code))
                assert response.status_code < 500, response.text

            run()
    assert len(sent) >= 250 and not [s for s in sent if s[1] >= 500]
    valid = [code for mode, code in sent if mode == "positive"]
    assert sum(200 <= c < 300 for c in valid) / len(valid) >= 0.5, Counter(valid)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'fuzz.db'}")
    with engine.connect() as conn:
        problems = {r[0] for r in conn.execute(sa.text("SELECT problem FROM prediction_log"))}
    engine.dispose()
    assert problems == {"dispute", "payment_review"}  # both bodies reached the log


def test_an_experiment_by_card_on_a_card_x_merchant_problem_reports_revenue(
    payments_trained, tmp_path
):
    """Declared in the repo: the unit is the card (one of payment_review's two keys), the
    metric the web revenue per card within 7 days, from the payments source."""
    from framework.monitor.experiment_report import experiment_report

    repo, _, pay, at = payments_trained
    declared = repo.path / "experiments.py"
    declared.write_text(
        "from framework import Experiment\n\n"
        "review_policy = Experiment(\n"
        '    name="review_policy", problem="payment_review", control="none",\n'
        '    treatment="production", outcome=\'channel == "web"\', source="payments",\n'
        '    value="amount", unit="card_id", window_days=7,\n'
        ")\n"
    )
    db = f"sqlite:///{tmp_path / 'log.db'}"
    try:
        fresh = FeatureRepo(repo.path, repo.fs_yaml)
        exp = fresh.experiment("review_policy")
        start = at - pd.Timedelta(days=10)
        pairs = pay[pay.ts <= start][["card_id", "merchant_id"]].drop_duplicates()
        with _Client(create_app(fresh, log_url=db)) as client:
            for chunk in range(0, len(pairs), 50):
                part = pairs.iloc[chunk : chunk + 50]
                body = {
                    "problem": "payment_review",
                    "entities": [
                        {"card_id": c, "merchant_id": m, "event_timestamp": int(start.timestamp())}
                        for c, m in part.itertuples(index=False)
                    ],
                }
                answer = client.post("/predict", json=body)
                assert answer.status_code == 200, answer.text
                for item in answer.json()["predictions"]:  # every pair of a card: one arm
                    assert item["arm"] == exp.arm_of(item["card_id"])
        result = experiment_report(fresh, "review_policy", db=db)
    finally:
        declared.unlink()
    cards = sorted(pairs.card_id.unique())
    window = pay[
        (pay.channel == "web") & (pay.ts > start) & (pay.ts <= start + pd.Timedelta(days=7))
    ]
    revenue = window.groupby("card_id").amount.sum().reindex(cards).fillna(0.0)
    arms = pd.Series([exp.arm_of(c) for c in cards], index=cards)
    assert result.unit == ["card_id"] and result.metric == "mean_amount"
    for arm in ("control", "treatment"):
        mine = revenue[arms == arm]
        assert result.arms[arm]["exposures"] == len(mine)
        assert result.arms[arm]["mean"] == pytest.approx(mine.mean(), rel=1e-9)
    assert result.p_value is not None and 0 <= result.p_value <= 1


def test_the_declared_nightly_jobs_catch_up_a_missed_night(payments_trained, tmp_path):
    """The payments repo's own schedules.py: an hourly materialization, nightly batch
    scores of both problems (text and composite keys) and a drift check after them."""
    from framework.schedule.job_runs import RunStore
    from framework.schedule.runner import run_due

    repo, _, _, at = payments_trained
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    night = at.floor("D") - pd.Timedelta(days=3) + pd.Timedelta(hours=2)
    first = run_due(repo, night + pd.Timedelta(minutes=10), db=url)
    assert {(r.job, r.status) for r in first} == {
        ("refresh_online", "succeeded"),
        ("score_cards", "succeeded"),
        ("review_outcomes", "succeeded"),
        ("dispute_drift", "succeeded"),
    }, [(r.job, r.status, r.error) for r in first]
    drift = next(r for r in first if r.job == "dispute_drift")
    assert (repo.reports_dir / drift.produced["report"] / "report.html").is_file()
    # no scheduler the next night; two nights on, score_cards (catch-up) scores both
    later = run_due(repo, night + pd.Timedelta(days=2, minutes=10), db=url)
    ran = sorted((r.job, r.scheduled_for) for r in later if r.status == "succeeded")
    assert len(ran) == len(later)
    nights = [night + pd.Timedelta(days=d) for d in (1, 2)]
    assert ran == sorted(
        [("score_cards", n.to_pydatetime()) for n in nights]
        + [("refresh_online", n.to_pydatetime()) for n in nights]
        + [
            ("review_outcomes", nights[1].to_pydatetime()),
            ("dispute_drift", nights[1].to_pydatetime()),
        ]
    ), [(r.job, str(r.scheduled_for), r.status, (r.error or "")[:300]) for r in later]
    engine = sa.create_engine(engine_url(url))
    with engine.connect() as conn:
        runs = pd.read_sql(
            sa.text(
                "SELECT problem, as_of, COUNT(DISTINCT run_id) AS n, COUNT(*) AS rows "
                "FROM predictions GROUP BY problem, as_of"
            ),
            conn,
        )
        pairs = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM predictions WHERE problem = 'payment_review' "
                "AND card_id IS NOT NULL AND merchant_id IS NOT NULL"
            )
        ).scalar()
    engine.dispose()
    runs["as_of"] = pd.to_datetime(runs.as_of, utc=True)
    per_problem = {p: sorted(g.as_of) for p, g in runs.groupby("problem")}
    assert per_problem["dispute"] == [night, *nights]  # one run per night, none lost
    assert per_problem["payment_review"] == [night, nights[1]]  # missed='skip'
    assert set(runs.n) == {1} and pairs == runs[runs.problem == "payment_review"].rows.sum()
    store = RunStore(url)
    statuses = {(r.job, r.status) for r in store.runs(limit=None)}
    store.close()
    assert ("review_outcomes", "missed") in statuses and ("refresh_online", "missed") in statuses
