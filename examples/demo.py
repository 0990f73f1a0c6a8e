"""The example product's end-to-end demo: what ``lifecycle demo`` runs.

Every stage on the example product (users, their events, the churn and spend
problems, the catalogue's year-ahead demand forecast and product ranking, the
retention and ranking experiments),
in the order data flows. The framework's
``lifecycle demo`` command loads this file and calls ``run(repo, users=...)``;
it is the example's code, so it names the example's columns and features.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from framework.declare.repo import FeatureRepo


def _example(name: str) -> Any:
    """A generator beside this script (examples/NAME.py)."""
    from framework.common.scripts import load_script

    return load_script(Path(__file__).with_name(f"{name}.py"), f"lifecycle_{name}")


def run(repo: FeatureRepo, users: int = 10_000) -> None:
    """Run every lifecycle stage on the example product in ``repo``."""

    write_example_data = _example("example_data").write_example_data
    from framework.features.historical import get_historical_features
    from framework.features.materialize import materialize as run_materialize
    from framework.features.online import get_online_features
    from framework.prepare.apply import apply as run_apply

    data = repo.data_dir
    started = time.perf_counter()

    def header(text: str) -> None:
        """A step's title, with the time since the demo started."""
        minutes, seconds = divmod(int(time.perf_counter() - started), 60)
        click.echo(f"== {text}  [{minutes}:{seconds:02d}]")

    header("1. Collect data: the example product")
    tables = ("events", "users", "products", "product_events")
    if all((data / f"{t}.parquet").exists() for t in tables):
        click.echo(f"   using {', '.join(f'{t}.parquet' for t in tables)} in {data}")
    else:
        d = write_example_data(data, users=users)
        click.echo(
            f"   generated {len(d.users):,} users and {len(d.events):,} events; a catalogue of "
            f"{0 if d.products is None else len(d.products)} products with "
            f"{0 if d.product_events is None else len(d.product_events):,} "
            "impressions, clicks, add-to-carts and purchases over 2024-2025"
        )
    header("2. Prepare data: check inputs, build window tables, feast apply")
    t0 = time.perf_counter()
    result = run_apply(repo)
    for t in result.tables:
        click.echo(
            f"   {t.view}: {t.events:,} events -> {t.rows:,} change points ({time.perf_counter() - t0:.1f}s)"
        )
    events = pd.read_parquet(data / "events.parquet", columns=["event_timestamp"])
    end = events["event_timestamp"].max()
    header(f"3. Materialize the online store as of {end.isoformat()}")
    t0 = time.perf_counter()
    mat = run_materialize(repo, end=end.to_pydatetime())
    click.echo(f"   {sum(mat.rows.values()):,} entity rows in {time.perf_counter() - t0:.1f}s")
    header("4. Point-in-time training features (weekly cutoffs, 500 users)")
    rng = np.random.default_rng(0)
    cutoffs = pd.date_range(end - pd.Timedelta(days=84), end, freq="7D")
    rows = pd.DataFrame(
        {
            "user_id": rng.choice(np.arange(1, users + 1), 500 * len(cutoffs)),
            "event_timestamp": np.repeat(cutoffs, 500),
        }
    )
    t0 = time.perf_counter()
    hist = get_historical_features(repo, rows, "churn_model_v1")
    click.echo(
        f"   {len(hist):,} rows x {hist.shape[1] - 2} features in {time.perf_counter() - t0:.2f}s"
    )
    cols = [
        "user_events_count_7d",
        "user_events_count_30d",
        "user_events_count_90d",
        "user_page_views_google_count_30d",
        "user_amount_sum_30d",
    ]
    click.echo(hist[cols].describe().loc[["mean", "50%", "max"]].round(2).to_string())
    header("5. Online lookup (same values as offline at the materialization time)")
    online = get_online_features(
        repo,
        [{"user_id": 1, "event_timestamp": end}, {"user_id": 10_000_000, "event_timestamp": end}],
        "churn_model_v1",
    )
    show = [
        "user_id",
        "feature_status",
        "user_events_count_7d",
        "user_events_count_90d",
        "plan",
        "event_day_of_week",
        "event_days_until_holiday",
    ]
    click.echo(online[show].to_string(index=False))
    from framework.errors import PromotionRefused
    from framework.models.registry import registry_of
    from framework.training.run import run_training

    cards: list[Path] = []
    refused: dict[str, str] = {}
    for step, name in enumerate(sorted(repo.problems), start=6):
        header(f"{step}. Train, evaluate, register and promote: {name}")
        run = run_training(repo, name, progress=lambda m: click.echo(f"   {m}"))
        click.echo(run.result.to_text())
        click.echo("   " + _against_baseline(run.result, users))
        cards.append(run.artifact.path / "card.html")
        try:
            registry_of(repo).promote(name, run.artifact.version)
        except PromotionRefused as exc:
            refused[name] = str(exc).removeprefix("Not promoted: ").split(". To promote")[0]
            click.echo(
                f"   {name} {run.artifact.version} NOT promoted: the gate keeps the current "
                f"policy ({refused[name]}); card: {run.artifact.path / 'card.html'}"
            )
            continue
        click.echo(
            f"   {name} {run.artifact.version} promoted to production; card: {run.artifact.path / 'card.html'}"
        )
    if "demand" in repo.problems:
        step += 1
        header(f"{step}. Forecast daily demand a year ahead, into the database")
        _demo_forecast(repo)
    if any(repo.problems[e.problem].task != "ranking" for e in repo.experiments.values()):
        step += 1
        header(f"{step}. Deploy and experiment: serve, split traffic 50/50, report")
        _demo_experiment(repo, end)
    if "ranking_ab" in repo.experiments:
        step += 1
        header(f"{step}. Rank products: /rank, A/B test of the order by click-through rate")
        problem = repo.experiment("ranking_ab").problem
        if problem in refused:
            click.echo(
                f"   no A/B test: the gate kept the popularity order, because {refused[problem]}. "
                "Served traffic with exploration would narrow the interval; `lifecycle demo "
                "--full` has 10,000 users' lists."
            )
        else:
            _demo_ranking(repo)
    header(f"{step + 1}. Monitor: a marketing change moves traffic from facebook to google")
    _demo_shift(repo, end)
    if repo.jobs:
        header(f"{step + 2}. On a schedule: the declared jobs, and one tick of them")
        _demo_schedule(repo, end)
    minutes, seconds = divmod(int(time.perf_counter() - started), 60)
    click.echo(f"\nDone in {minutes}:{seconds:02d} ({users:,} users).")
    click.echo("Open:")
    click.echo(f"  lifecycle --repo {repo.path} serve    then http://127.0.0.1:8000/ui (models, ")
    click.echo("      cards, assessments, reports, experiments, jobs) and /docs (the API)")
    for card in cards:
        click.echo(f"  {card}")
    click.echo("Try next:")
    for line in (
        "lifecycle models list",
        "lifecycle features online --entity user_id=42",
        "lifecycle monitor churn --to data",
        "lifecycle experiment report retention_offers",
        "lifecycle schedule list",
        "lifecycle init my_repo --events my_events.csv   # your own data (see the README)",
    ):
        click.echo(f"  {line}")


def _against_baseline(result: Any, users: int) -> str:
    """Whether the winner beat the baseline on test, and what that means at this size."""
    problem = result.problem
    metric = problem.metric
    won, base = result.test[metric], result.baseline_test[metric]
    better = won > base if problem.higher_is_better else won < base
    if better:
        return f"the winner beats the baseline on test ({metric} {won:.4f} vs {base:.4f})."
    return (
        f"the winner does not beat the baseline on test ({metric} {won:.4f} vs {base:.4f}) at "
        f"this size ({users:,} users): `lifecycle demo --full` trains on 10,000."
    )


def _demo_schedule(repo: FeatureRepo, end: pd.Timestamp) -> None:
    """``lifecycle schedule list``, then the first tick after the data ends, as the
    scheduler would run it then (the clock is a parameter: ``run_due(repo, now=T)``)."""
    from click.testing import CliRunner

    from framework.cli import main
    from framework.schedule.job_runs import RunStore
    from framework.schedule.runner import run_due

    listed = CliRunner().invoke(
        main, ["--repo", str(repo.path), "--fs-yaml", str(repo.fs_yaml), "schedule", "list"]
    )
    click.echo(listed.output.rstrip())
    tick = min(j.next_tick(end.to_pydatetime()) for j in repo.jobs.values())
    click.echo(f"   the scheduler's tick at {tick.isoformat()} (the first after the data ends):")
    t0 = time.perf_counter()
    runs = run_due(repo, tick, say=lambda m: click.echo(f"   {m}"))
    if not runs:
        store = RunStore(repo.prediction_db)
        runs = [r for j in repo.jobs if (r := store.get(j, tick)) is not None]
        store.close()
        click.echo("   (this tick ran before; its records:)")
        for r in runs:
            click.echo(f"   {r.job} @ {tick.isoformat()}: {r.status}")
    ok = sum(r.status == "succeeded" for r in runs)
    click.echo(
        f"   {ok} of {len(runs)} runs succeeded in {time.perf_counter() - t0:.1f}s, recorded in "
        f"table job_runs of {repo.prediction_db}; `lifecycle schedule runs` lists them, "
        "`lifecycle serve` shows them at /ui/jobs, `lifecycle schedule run` keeps going."
    )


def _demo_forecast(repo: FeatureRepo) -> None:
    """``lifecycle predict demand --at T --horizon 365d``: one row per product and day."""
    import sqlalchemy as sa

    from framework.deploy.forecast import predict_forecast
    from framework.deploy.prediction_log import engine_url

    events = pd.read_parquet(repo.data_dir / "product_events.parquet", columns=["event_timestamp"])
    as_of = events["event_timestamp"].max().floor("D")
    t0 = time.perf_counter()
    run = predict_forecast(repo, "demand", as_of, horizon_days=365)
    seconds = time.perf_counter() - t0
    click.echo(
        f"   {run.rows:,} rows (product x target day) as of {as_of.date()} in {seconds:.1f}s "
        f"-> table forecasts of {repo.prediction_db}"
    )
    engine = sa.create_engine(engine_url(repo.prediction_db))
    with engine.connect() as conn:
        monthly = pd.read_sql(
            sa.text(
                "SELECT substr(CAST(target_date AS TEXT), 1, 7) AS month, "
                "round(sum(forecast)) AS units FROM forecasts WHERE run_id = :run "
                "GROUP BY month ORDER BY month"
            ),
            conn,
            params={"run": run.run_id},
        )
    engine.dispose()
    click.echo("   units forecast per month, all products:")
    click.echo(
        "   "
        + "  ".join(f"{m[5:]}: {u:,.0f}" for m, u in zip(monthly.month, monthly.units, strict=True))
    )


def _demo_shift(repo: FeatureRepo, end: pd.Timestamp) -> None:
    """Monitor the churn model on traffic like its training data except for a simulated
    marketing change (facebook page views become google ones), then run the
    champion/challenger retraining gate."""
    from framework.models.registry import registry_of
    from framework.monitor.drift import detect_drift
    from framework.monitor.retrain import retrain
    from framework.training.dataset import load_training_set

    artifact = registry_of(repo).get("churn")
    frame = load_training_set(artifact.meta.dataset["path"]).frame
    train_end = artifact.meta.split["train"][1]
    pool = frame[frame["event_timestamp"] <= train_end]
    current = pool.sample(n=min(20_000, len(pool)), random_state=1).reset_index(drop=True)
    for window in (7, 30, 90):
        google = f"user_page_views_google_count_{window}d"
        facebook = f"user_page_views_facebook_count_{window}d"
        current[google] = current[google] + current[facebook]
        current[facebook] = current[facebook] * 0
    path = repo.data_dir / "shifted_current.parquet"
    current.drop(columns=["label"]).to_parquet(path)
    report = detect_drift(repo, "churn", current=path)
    click.echo(
        f"   {len(current):,} observations like the training period, facebook views moved to "
        f"google -> {path.name}"
    )
    for f in [*report.features, report.prediction_drift]:
        if f is not None and f.drifted:
            click.echo(f"   drifted: {f.name:<38} PSI {f.psi:6.2f}  p {f.p_value:.2g}")
    click.echo(f"   action: {report.action} ({'; '.join(report.reasons) or 'no drift'})")
    click.echo("   retraining gate (challenger on the latest data against the champion):")
    decision = retrain(repo, "churn")
    click.echo("   " + decision.to_text().replace("\n", "\n   "))


def _demo_experiment(repo: FeatureRepo, end: pd.Timestamp) -> None:
    """Serve the models on loopback, send every user through /predict in the active
    experiment, post simulated outcomes (the treatment truly helps) to /events, report."""
    import requests

    simulate_outcomes = _example("example_data").simulate_outcomes
    from framework.deploy.service import background_server, create_app
    from framework.monitor.experiment_report import experiment_report

    exp = next(
        (
            e
            for e in repo.experiments.values()
            if e.active and repo.problems[e.problem].task != "ranking"
        ),
        None,
    )
    if exp is None:
        click.echo("   no active experiment is declared; skipped")
        return
    at = pd.Timestamp(int(end.timestamp()), unit="s", tz="UTC")
    profiles = pd.read_parquet(repo.data_dir / "users.parquet", columns=["user_id", "signup_date"])
    # The retention campaign scores the whole user base at `at` (at-risk users have
    # often stopped visiting, which is why they are at risk).
    users = profiles.loc[profiles["signup_date"] <= at, "user_id"].sort_values()
    answers: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with background_server(create_app(repo)) as url, requests.Session() as http:
        for lo in range(0, len(users), 100):
            rows = [
                {"user_id": int(u), "event_timestamp": int(at.timestamp())}
                for u in users[lo : lo + 100]
            ]
            answer = http.post(
                f"{url}/predict", json={"problem": exp.problem, "entities": rows}, timeout=60
            )
            answer.raise_for_status()
            answers += answer.json()["predictions"]
        served = time.perf_counter() - t0
        predictions = pd.DataFrame(answers)
        if "label" not in predictions:
            predictions["label"] = None
        outcomes = simulate_outcomes(
            predictions, at, window_days=exp.window_days, outcome="conversion"
        )
        for lo in range(0, len(outcomes), 5_000):
            chunk = outcomes.iloc[lo : lo + 5_000].astype({"event_timestamp": str})
            records = chunk.astype(object).where(chunk.notna(), None).to_dict("records")
            body: dict = {"events": records}
            if len(repo.event_sources) > 1:  # the catalogue is a second event log
                body["source"] = "events_source"
            http.post(f"{url}/events", json=body, timeout=60).raise_for_status()
    arms = predictions["arm"].value_counts()
    click.echo(
        f"   /predict: {len(predictions):,} users in {len(predictions) // 100 + 1} requests "
        f"({served:.1f}s): {', '.join(f'{a} {n:,}' for a, n in arms.items())}"
    )
    click.echo(
        f"   /events: {len(outcomes):,} simulated 'conversion' events (treatment users "
        "the model flags get an offer and convert at 15%, everyone else at 6%)"
    )
    report = experiment_report(repo, exp.name)
    click.echo("   " + report.to_text().replace("\n", "\n   "))
    if report.p_value is None or report.p_value >= 0.05:
        click.echo(
            f"   (the simulated treatment does help: with {len(users):,} users the test lacks the "
            "power to show it; `lifecycle demo --full` has 10,000)"
        )


def _demo_ranking(repo: FeatureRepo, users: int = 1_000, lists: int = 2, seed: int = 7) -> None:
    """Serve the ranking: each of ``users`` users asks ``lists`` times to order 50 products
    (all of them in a smaller catalogue);
    the product shows the top 10 (the popularity order in control, the model's in
    treatment), and the users click by the generator's true click model; impressions and
    clicks go to /events, then the experiment's report (CTR, delta-method interval, SRM)."""
    import requests

    generate_catalogue = _example("example_catalogue").generate_catalogue
    from framework.deploy.service import background_server, create_app
    from framework.monitor.experiment_report import experiment_report

    exp = repo.experiment("ranking_ab")
    everyone = pd.read_parquet(repo.data_dir / "users.parquet", columns=["user_id"])["user_id"]
    truth = generate_catalogue(users=len(everyone), seed=seed).truth  # the data's clicks
    assert truth is not None
    products = pd.read_parquet(repo.data_dir / "products.parquet")
    price = dict(zip(products["product_id"], products["price"], strict=True))
    events = pd.read_parquet(repo.data_dir / "product_events.parquet", columns=["event_timestamp"])
    at = events["event_timestamp"].max().floor("s")
    rng = np.random.default_rng(5)
    chosen = rng.choice(everyone.to_numpy(), min(users, len(everyone)), replace=False)
    size = min(50, len(products))  # candidates per list
    shown_rows: list[dict[str, Any]] = []
    latency: list[float] = []
    answers: list[dict[str, Any]] = []
    with background_server(create_app(repo)) as url, requests.Session() as http:
        for n in range(lists):
            for user in chosen:
                candidates = rng.choice(products["product_id"].to_numpy(), size, replace=False)
                body = {
                    "problem": exp.problem,
                    "query": {"user_id": int(user), "event_timestamp": int(at.timestamp())},
                    "candidates": [{"product_id": str(p)} for p in candidates],
                    "k": 10,
                }
                t0 = time.perf_counter()
                answer = http.post(f"{url}/rank", json=body, timeout=60)
                latency.append(time.perf_counter() - t0)
                answer.raise_for_status()
                got = answer.json()
                answers.append(got)
                top = [item["product_id"] for item in got["ranked"]]
                chance = [item.get("propensity") for item in got["ranked"]]
                clicked = rng.random(len(top)) < truth.click_probability(int(user), top)
                request = f"ab_{n}_{int(user)}"
                shown = zip(top, clicked, chance, strict=True)
                for position, (product, hit, propensity) in enumerate(shown, 1):
                    seen = at + pd.Timedelta(seconds=1 + n * 600)
                    row = {
                        "user_id": int(user),
                        "product_id": product,
                        "price": float(price[product]),
                        "request_id": request,
                        "position": position,
                        "propensity": propensity,
                    }
                    shown_rows.append({**row, "event_type": "impression", "event_timestamp": seen})
                    if hit:
                        later = seen + pd.Timedelta(seconds=int(rng.integers(2, 300)))
                        shown_rows.append({**row, "event_type": "click", "event_timestamp": later})
        frame = pd.DataFrame(shown_rows)
        frame["event_timestamp"] = frame["event_timestamp"].astype(str)
        for lo in range(0, len(frame), 5_000):
            records = frame.iloc[lo : lo + 5_000].to_dict("records")
            body = {"source": "product_events_source", "events": records}
            http.post(f"{url}/events", json=body, timeout=60).raise_for_status()
    ms = np.quantile(np.array(latency) * 1000, [0.5, 0.99])
    arms = pd.Series([a.get("arm") for a in answers]).value_counts()
    explored = sum(bool(a.get("explored")) for a in answers)
    click.echo(
        f"   /rank: {len(answers):,} lists of {size} candidates (p50 {ms[0]:.1f} ms, p99 "
        f"{ms[1]:.1f} ms): {', '.join(f'{a} {n:,}' for a, n in arms.items())}; "
        f"{explored:,} shuffled by the declared exploration, each shown item's propensity "
        "logged with its impression"
    )
    clicks = int((frame["event_type"] == "click").sum())
    click.echo(
        f"   /events: {len(frame) - clicks:,} impressions and {clicks:,} clicks, simulated by "
        "the data's click model (position bias, product appeal, the user's taste and history)"
    )
    click.echo("   " + experiment_report(repo, exp.name).to_text().replace("\n", "\n   "))
