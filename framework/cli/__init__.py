"""The ``lifecycle`` command line.

Heavy libraries (Feast, pandas, DuckDB) are imported inside the commands, so
``lifecycle --help`` answers quickly. Our own errors become one line on stderr
and exit code 1; bad usage exits 2 (click's convention).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from framework.errors import LifecycleError

__all__ = ["main"]


class Context:
    """Built once in the group callback and handed to every command."""

    def __init__(self, repo_path: Path, fs_yaml: Path | None) -> None:
        self.repo_path = repo_path
        self.fs_yaml = fs_yaml
        self._repo = None

    @property
    def repo(self):
        if self._repo is None:
            import warnings

            import feast  # noqa: F401 - Feast sets warning filters on import; ours go after

            from framework.declare.repo import FeatureRepo

            # Feast warns on every on-demand view and about its own deprecations.
            warnings.filterwarnings("ignore", message="On demand feature view is an experimental")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            self._repo = FeatureRepo(self.repo_path, self.fs_yaml)
        return self._repo


pass_ctx = click.make_pass_decorator(Context)


def _say(message: str) -> None:
    click.echo(message, err=True)


def _bar(label: str):
    """A progress callback (done, total) on stderr: redrawn in place on a terminal,
    a line every 25% otherwise; at most five updates a second."""
    start = time.perf_counter()
    tty = sys.stderr.isatty()
    state = {"shown": -1.0, "step": -1}

    def update(done: int, total: int) -> None:
        now = time.perf_counter()
        finished = done >= total
        step = int(4 * done / max(total, 1))
        if not finished and (now - state["shown"] < 0.2 or (not tty and step == state["step"])):
            return
        state["shown"], state["step"] = now, step
        rate = done / max(now - start, 1e-9)
        line = f"  {label}: {done:,}/{total:,} ({100 * done / max(total, 1):.0f}%, {rate:,.0f}/s)"
        click.echo(("\r" if tty else "") + line, err=True, nl=finished or not tty)

    return update


class _Group(click.Group):
    """Turns our errors into one line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LifecycleError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.option(
    "--repo",
    "repo_path",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("feature_repo"),
    show_default=True,
    envvar="LIFECYCLE_REPO",
    help="The feature repository (a folder with feature_store.yaml). Env: LIFECYCLE_REPO.",
)
@click.option(
    "--fs-yaml",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    envvar="LIFECYCLE_FS_YAML",
    help="Use another Feast config, e.g. feature_store.production.yaml. Env: LIFECYCLE_FS_YAML.",
)
@click.version_option(package_name="lifecycle-framework")
@click.pass_context
def main(ctx: click.Context, repo_path: Path, fs_yaml: Path | None) -> None:
    """Declarative ML lifecycle on a Feast feature repository.

    \b
    Typical flow on the example product:
      lifecycle example-data            # write feature_repo/data/{users,events}.parquet
      lifecycle apply                   # check inputs, build window tables, register with Feast
      lifecycle materialize             # load the online store (all data up to now)
      lifecycle features historical --entities rows.parquet --out features.parquet
      lifecycle features online --entity user_id=42
    or all of it at once:
      lifecycle demo
    """
    ctx.obj = Context(repo_path, fs_yaml)


@main.command("example-data")
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Number of users (about 110 events each).",
)
@click.option(
    "--seed",
    type=int,
    default=7,
    show_default=True,
    help="Random seed; the same seed gives the same files.",
)
@pass_ctx
def example_data(obj: Context, users: int, seed: int) -> None:
    """Generate the example product: users.parquet and events.parquet under REPO/data."""
    from framework.collect.example_data import write_example_data

    data_dir = obj.repo_path / "data"
    t0 = time.perf_counter()
    data = write_example_data(data_dir, users=users, seed=seed)
    click.echo(
        f"Wrote {len(data.users):,} users and {len(data.events):,} events to {data_dir} "
        f"in {time.perf_counter() - t0:.1f}s."
    )


@main.command()
@pass_ctx
def apply(obj: Context) -> None:
    """Check the input files, rebuild every window table, and register the repo with Feast.

    Nothing is written when an input file is bad: the error names the file,
    the column and the fix.
    """
    from framework.prepare.apply import apply as run_apply

    bars: dict[str, Any] = {}

    def build_progress(view: str, done: int, total: int) -> None:
        bars.setdefault(view, _bar(f"{view} events"))(done, total)

    t0 = time.perf_counter()
    result = run_apply(obj.repo, progress=lambda m: _say(f"- {m}"), build_progress=build_progress)
    for t in result.tables:
        click.echo(
            f"Built {t.view}: {t.rows:,} change points for {t.entities:,} entities "
            f"from {t.events:,} events."
        )
    click.echo(f"Registered {len(result.registered)} objects in {time.perf_counter() - t0:.1f}s.")


@main.command()
@click.option(
    "--start",
    default=None,
    help="Only rows at or after this time (ISO 8601 with zone). Default: all history.",
)
@click.option(
    "--end", default=None, help="Load values as of this time (ISO 8601 with zone). Default: now."
)
@pass_ctx
def materialize(obj: Context, start: str | None, end: str | None) -> None:
    """Load the online store with every entity's values as of --end."""
    from framework.features.materialize import materialize as run

    bars: dict[str, Any] = {}

    def progress(view: str, done: int, total: int) -> None:
        bars.setdefault(view, _bar(view))(done, total)

    t0 = time.perf_counter()
    result = run(obj.repo, start=start, end=end, progress=progress)
    total = sum(result.rows.values())
    if result.merged_events:
        click.echo(f"Merged {result.merged_events:,} appended events and rebuilt the windows.")
    click.echo(
        f"Materialized {total:,} entity rows ({', '.join(f'{k}: {v:,}' for k, v in result.rows.items())}) "
        f"up to {result.end.isoformat()} in {time.perf_counter() - t0:.1f}s."
    )


def _db_option(what: str, flag: str = "--db"):
    return click.option(
        flag,
        default=None,
        envvar="LIFECYCLE_PREDICTION_DB",
        help=f"{what}: sqlite:///PATH or postgresql://... (default: REPO/data/predictions.db). "
        "Env: LIFECYCLE_PREDICTION_DB.",
    )


_feature_option = click.option(
    "--feature",
    "feature_names",
    multiple=True,
    help="Only this feature (name as declared); repeat for more.",
)


@main.group()
def events() -> None:
    """Collect data: append product events to the offline event log."""


@events.command("ingest")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_ctx
def events_ingest(obj: Context, file: Path) -> None:
    """Check FILE (parquet or CSV) against the event schema and append it to the event log.

    \b
    Columns: user_id (int), event_timestamp (with a time zone, e.g.
    2025-06-01T12:00:00Z), event_type, source (strings), amount (number or empty).
    Rows must also keep the repo's EventContract (known event types and sources,
    no timestamps in the future, no amounts below the minimum, no missing keys).
    Nothing is appended when any row is bad; the error lists every problem with
    its row count and examples. Events identical to logged ones are kept once.
    The next `lifecycle apply` or `lifecycle materialize` counts them.
    """
    from framework.collect.checks import read_table
    from framework.collect.ingest import append, compact, event_log_path

    repo = obj.repo
    rows = append(repo, read_table(file, "Event"), source=str(file))
    merged = compact(repo)
    duplicates = f" ({merged.duplicates:,} were already logged)" if merged.duplicates else ""
    click.echo(
        f"Appended {merged.added:,} of {rows:,} events{duplicates} to {event_log_path(repo)} "
        f"({merged.total:,} in all). Run `lifecycle materialize` to count them online."
    )


@main.group()
def features() -> None:
    """Read features: point-in-time (historical) or online."""


def _read_entities(path: Path):
    from framework.collect.checks import read_table
    from framework.errors import DataError

    table = read_table(path, "Entity")
    df = table.to_pandas()
    if "event_timestamp" in df.columns and df["event_timestamp"].dtype == object:
        raise DataError(
            f"{path}: column 'event_timestamp' could not be read as timestamps; "
            "write ISO 8601 times with a zone, e.g. 2025-06-01T12:00:00Z."
        )
    return df


@features.command("historical")
@click.option(
    "--entities",
    "entities_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Parquet or CSV with user_id and event_timestamp (UTC).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Output file (.parquet or .csv).",
)
@click.option(
    "--service", default=None, help="Feature service to read (default: every feature in the repo)."
)
@_feature_option
@click.option(
    "--engine",
    type=click.Choice(["auto", "fast", "feast"]),
    default="auto",
    show_default=True,
    help="'feast' runs Feast's own get_historical_features.",
)
@pass_ctx
def features_historical(
    obj: Context,
    entities_path: Path,
    out_path: Path,
    service: str | None,
    feature_names: tuple[str, ...],
    engine: str,
) -> None:
    """Point-in-time correct features for each entity row.

    Every feature's value is the one known at the row's event_timestamp (no
    later data). The output holds the input rows, in order, plus one column
    per feature.
    """
    from framework.features.retrieval import get_historical_features

    if out_path.suffix.lower() not in (".parquet", ".csv"):
        raise click.BadParameter("must end in .parquet or .csv", param_hint="--out")
    df = _read_entities(entities_path)
    t0 = time.perf_counter()
    out = get_historical_features(
        obj.repo, df, service, features=list(feature_names) or None, engine=engine
    )
    elapsed = time.perf_counter() - t0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    if out_path.suffix.lower() == ".csv":
        out.to_csv(tmp, index=False)
    else:
        out.to_parquet(tmp, index=False)
    tmp.replace(out_path)
    n_features = out.shape[1] - df.shape[1]
    click.echo(f"Wrote {len(out):,} rows x {n_features} features to {out_path} ({elapsed:.2f}s).")


def _parse_entity(values: tuple[str, ...]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for text in values:
        row: dict[str, Any] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise click.BadParameter(
                    f"{text!r}: write KEY=VALUE, e.g. user_id=42", param_hint="--entity"
                )
            try:
                row[key.strip()] = int(value)
            except ValueError:
                raise click.BadParameter(
                    f"{text!r}: {key} must be an integer", param_hint="--entity"
                ) from None
        rows.append(row)
    return rows


@features.command("online")
@click.option(
    "--entity",
    "entity",
    multiple=True,
    required=True,
    help="KEY=VALUE, e.g. user_id=42; repeat for more entities.",
)
@click.option("--service", default=None, help="Feature service to read (default: every feature).")
@_feature_option
@click.option(
    "--at", default=None, help="Request time for date features (ISO 8601 with zone). Default: now."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def features_online(
    obj: Context,
    entity: tuple[str, ...],
    service: str | None,
    feature_names: tuple[str, ...],
    at: str | None,
    as_json: bool,
) -> None:
    """Online feature values from the online store.

    An entity the store does not know gets the documented defaults (0 for
    windowed counts and sums, null otherwise) and feature_status 'defaults'.
    """
    import pandas as pd

    from framework.errors import ConfigError
    from framework.features.retrieval import get_online_features

    rows = _parse_entity(entity)
    if at is not None:
        ts = pd.Timestamp(at)
        if ts.tzinfo is None:
            raise ConfigError(f"--at {at!r} has no time zone; write e.g. 2025-06-01T12:00:00Z.")
        rows = [{**r, "event_timestamp": ts} for r in rows]
    out = get_online_features(obj.repo, rows, service, features=list(feature_names) or None)
    records = json.loads(out.to_json(orient="records", date_format="iso"))
    if as_json:
        click.echo(json.dumps(records if len(records) > 1 else records[0], indent=2))
    else:
        click.echo(out.T.to_string(header=False))


@main.group()
def dataset() -> None:
    """Training sets: labels joined with point-in-time features."""


@dataset.command("build")
@click.argument("problem")
@pass_ctx
def dataset_build(obj: Context, problem: str) -> None:
    """Build and save the training set of PROBLEM (under REPO/data/datasets)."""
    from framework.training.dataset import build_training_set

    t0 = time.perf_counter()
    ts = build_training_set(obj.repo, problem)
    path = ts.save(obj.repo.data_dir / "datasets")
    summary = ts.summary()
    click.echo(
        f"Dataset {summary['hash']}: {summary['rows']:,} rows, {summary['entities']:,} entities, "
        f"{summary['features']} features, {summary['time_range'][0]} .. {summary['time_range'][1]} "
        f"({time.perf_counter() - t0:.1f}s) -> {path}"
    )


@main.command()
@click.argument("problem")
@pass_ctx
def validate(obj: Context, problem: str) -> None:
    """Validate the training set of PROBLEM with its generated Great Expectations suite.

    Exit code 1 when an expectation fails; the report names each failing
    expectation, its column and sample values.
    """
    from framework.training.dataset import build_training_set
    from framework.training.validation import validate as run_validate

    declared = obj.repo.problem(problem)
    result = run_validate(
        build_training_set(obj.repo, declared), categories=dict(declared.categories)
    )
    click.echo(result.report())
    if result.failures:
        raise click.exceptions.Exit(1)


@main.command()
@click.argument("problem")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the results.")
@pass_ctx
def train(obj: Context, problem: str, as_json: bool) -> None:
    """Build, validate and train PROBLEM; register the winner as a candidate version.

    Candidates (baseline, LightGBM tuned with time-series cross-validation,
    scikit-learn models) are compared on validation by the problem's metric;
    the winner is reported on test, and gets a model card (card.html).
    """
    from framework.training.run import run_training

    run = run_training(obj.repo, problem, progress=_say)
    out = {"version": run.artifact.version, **run.result.as_json()}
    out = {"problem": out.pop("problem"), "version": out.pop("version"), **out}
    if as_json:
        click.echo(json.dumps(out, default=float))
        return
    click.echo(_comparison(run.result))
    click.echo(
        f"Registered {problem} {run.artifact.version} (candidate). Card: {run.artifact.path / 'card.html'}"
    )


def _comparison(result) -> str:
    problem = result.problem
    cols = (
        ["precision", "recall", "f1", "roc_auc", "pr_auc"]
        if problem.task == "binary"
        else ["mae", "rmse", "r2"]
    )
    lines = [f"{problem.name}: candidates on validation ({problem.metric} chooses), winner on test"]
    lines.append(f"  {'model':<22}" + "".join(f"{c:>10}" for c in cols))
    for c in result.candidates:
        mark = " *" if c is result.winner else ""
        lines.append(f"  {c.name + mark:<22}" + "".join(f"{c.validation[k]:>10.4f}" for k in cols))
    lines.append(f"  {'winner on test':<22}" + "".join(f"{result.test[k]:>10.4f}" for k in cols))
    lines.append(
        f"  {'baseline on test':<22}" + "".join(f"{result.baseline_test[k]:>10.4f}" for k in cols)
    )
    ok = problem.succeeded(result.test[problem.metric])
    lines.append(
        f"  success ({problem.metric} {'>=' if problem.higher_is_better else '<='} {problem.threshold}): {'yes' if ok else 'no'}"
    )
    return "\n".join(lines)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--api-key",
    envvar="LIFECYCLE_API_KEY",
    default=None,
    help="Require this key in the X-API-Key header. Env: LIFECYCLE_API_KEY.",
)
@_db_option("Prediction log", "--log-db")
@click.option(
    "--store-timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    envvar="LIFECYCLE_STORE_TIMEOUT",
    help="Seconds an online-store read may take before /predict answers 503.",
)
@pass_ctx
def serve(
    obj: Context,
    host: str,
    port: int,
    api_key: str | None,
    log_db: str | None,
    store_timeout: float,
) -> None:
    """Serve the production models over HTTP (OpenAPI at /docs).

    \b
    POST /predict  {"problem": "churn", "entities": [{"user_id": 42}]}
    POST /events   {"events": [{"user_id": 42, "event_timestamp": "...Z", ...}]}
    GET  /health   online store and models
    GET  /models   production versions and their test metrics
    GET  /ui       model cards and monitoring reports

    Errors are JSON naming the field (400/401/404/413/422); a failing store gets
    503 within --store-timeout. Bodies over 4 MiB get 413. The API key is
    compared in constant time and never logged. Production: see the README's
    "Running in production" (LIFECYCLE_FS_YAML, LIFECYCLE_PREDICTION_DB).
    """
    import uvicorn

    from framework.deploy.service import create_app

    app = create_app(obj.repo, api_key=api_key, log_url=log_db, store_timeout=store_timeout)
    _say(f"Serving {sorted(obj.repo.problems)} on http://{host}:{port} (docs at /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.command()
@click.argument("problem")
@click.option(
    "--as-of",
    "as_of",
    required=True,
    help="Score with the features as of this time (ISO 8601 with zone).",
)
@click.option(
    "--entities",
    "entities_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Parquet or CSV with the entity key column (default: every known entity).",
)
@_db_option("Where to write the run")
@pass_ctx
def predict(
    obj: Context, problem: str, as_of: str, entities_path: Path | None, db: str | None
) -> None:
    """Batch-score PROBLEM as of a time and write the run to the table `predictions`.

    A run is one transaction; rerunning the same problem, model version and
    as-of replaces the earlier run.
    """
    from framework.collect.checks import read_table
    from framework.deploy.batch import predict_batch
    from framework.errors import DataError

    entities = None
    if entities_path is not None:
        key = obj.repo.problem(problem).entity
        table = read_table(entities_path, "Entity")
        if key not in table.column_names:
            raise DataError(f"{entities_path} has no {key!r} column; it has {table.column_names}.")
        entities = [int(v) for v in table.column(key).to_pylist()]
    t0 = time.perf_counter()
    run = predict_batch(obj.repo, problem, as_of, entities=entities, db=db)
    elapsed = time.perf_counter() - t0
    replaced = f", replacing {run.replaced:,} rows of the earlier run" if run.replaced else ""
    click.echo(
        f"Wrote {run.rows:,} predictions of {run.problem} {run.model_version} as of "
        f"{run.as_of.isoformat()} (run {run.run_id}{replaced}) in {elapsed:.1f}s."
    )


@main.command()
@click.argument("problem")
@click.option("--version", default=None, help="Model version (default: the production one).")
@click.option("--since", default=None, help="Predictions from this time (ISO 8601 with zone).")
@click.option("--until", default=None, help="Predictions before this time (ISO 8601 with zone).")
@click.option(
    "--current",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Compare this parquet/CSV of feature rows instead of the prediction log.",
)
@_db_option("The prediction log")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_ctx
def monitor(
    obj: Context,
    problem: str,
    version: str | None,
    since: str | None,
    until: str | None,
    current: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Drift of PROBLEM's model: current data against its training reference.

    \b
    Per feature: PSI and a test (Kolmogorov-Smirnov for numbers, chi-square for
    categories), Jensen-Shannon distance, missing and out-of-range rates; the
    same for the scores. Thresholds come from the problem's Monitoring(...).
    Exit code 0 when no action is needed, 3 when one is (investigate or retrain).
    """
    from framework.monitor.drift import monitor as run

    report = run(
        obj.repo,
        problem,
        version=version,
        **_window(since, until),
        current=current,
        db=db,
    )
    from datetime import UTC, datetime

    from framework.monitor.reports import write_drift_report

    folder = (
        obj.repo.data_dir
        / "reports"
        / report.problem
        / (f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-drift-{report.model_version}")
    )
    page = write_drift_report(report, folder, obj.repo.problem(problem).monitoring.psi)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.to_text())
    _say(f"Report: {page} (also at /ui under `lifecycle serve`)")
    if report.action != "none":
        sys.exit(3)


@main.command()
@click.argument("problem")
@_db_option("The predictions (log and batch runs)")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_ctx
def performance(obj: Context, problem: str, db: str | None, as_json: bool) -> None:
    """Realized performance: predictions joined with the labels known since.

    Online and batch predictions of PROBLEM get the label the problem's own rule
    gives at their entity and time, once the label horizon has passed; metrics
    per model version and per week, beside the test metrics from training.
    """
    from datetime import UTC, datetime

    from framework.monitor.performance import realized_performance
    from framework.monitor.reports import write_performance_report

    report = realized_performance(obj.repo, problem, db=db)
    folder = (
        obj.repo.data_dir
        / "reports"
        / report.problem
        / (f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-performance-all")
    )
    page = write_performance_report(report, folder)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.to_text())
    _say(f"Report: {page} (also at /ui under `lifecycle serve`)")


@main.command()
@click.argument("problem")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_ctx
def retrain(obj: Context, problem: str, as_json: bool) -> None:
    """Train a challenger on the latest data; promote it only if it beats the champion.

    Both are scored on the most recent labeled window (the challenger's test
    split). The challenger must be better than the production model by more than
    the problem's `margin` on its metric. The decision and both scores are
    recorded in the registry (decisions.json).
    """
    from framework.monitor.retrain import retrain as run

    decision = run(obj.repo, problem, progress=None if as_json else lambda m: _say(f"- {m}"))
    click.echo(json.dumps(decision.to_json(), indent=2) if as_json else decision.to_text())


@main.command("skew")
@click.argument("problem")
@click.option("--version", default=None, help="Model version (default: the production one).")
@click.option("--since", default=None, help="Predictions from this time (ISO 8601 with zone).")
@click.option("--until", default=None, help="Predictions before this time (ISO 8601 with zone).")
@_db_option("The prediction log")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_ctx
def skew_command(
    obj: Context,
    problem: str,
    version: str | None,
    since: str | None,
    until: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Train/serve skew: logged online features against the historical ones.

    Every logged prediction's features are fetched again at its entity and
    request time with the point-in-time retrieval that builds training sets;
    features that differ are named with examples. Exit 0 when none differs, 3
    otherwise (a stale online store counts: materialize more often).
    """
    from framework.monitor.skew import skew

    report = skew(
        obj.repo,
        problem,
        version=version,
        **_window(since, until),
        db=db,
    )
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.to_text())
    if report.skewed:
        sys.exit(3)


@main.group()
def experiment() -> None:
    """A/B experiments declared in the feature repo (framework.Experiment)."""


@experiment.command("list")
@pass_ctx
def experiment_list(obj: Context) -> None:
    """The declared experiments: problem, arms, split, outcome, and whether they run."""
    found = obj.repo.experiments
    if not found:
        click.echo("No experiments declared: add a framework.Experiment under the repo.")
        return
    for e in found.values():
        state = "active" if e.active else "stopped"
        click.echo(
            f"  {e.name:<20} {e.problem:<8} {state:<8} control={e.control} "
            f"treatment={e.treatment} split={1 - e.split:.0%}/{e.split:.0%} "
            f"outcome={e.outcome!r} within {e.window_days}d"
        )


@experiment.command("report")
@click.argument("name")
@_db_option("The prediction log holding the exposures")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Count outcomes known at this time (ISO 8601 with zone; default: now). Exposures "
    "whose window is still open are left out.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_ctx
def experiment_report(
    obj: Context, name: str, db: str | None, as_of: str | None, as_json: bool
) -> None:
    """Exposures, conversions and rate per arm; lift with 95% CI; p-value; verdict.

    \b
    Exposures come from the prediction log (every /predict answer in the
    experiment's problem while it is active), outcomes from the event log
    (events of the experiment's outcome type, e.g. POST /events).
    """
    from framework.declare.experiments import experiment_report as run

    now = _timestamp(as_of, "--as-of") if as_of else None
    result = run(obj.repo, name, db=db, now=now)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(result.to_text())


def _window(since: str | None, until: str | None) -> dict:
    """--since/--until as UTC timestamps (None when not given)."""
    return {
        "since": _timestamp(since, "--since") if since else None,
        "until": _timestamp(until, "--until") if until else None,
    }


def _timestamp(text: str, option: str):
    import pandas as pd

    from framework.errors import ConfigError

    try:
        ts = pd.Timestamp(text)
    except ValueError as exc:
        raise ConfigError(
            f"{option} {text!r} is not a time; use ISO 8601, e.g. 2025-09-17T00:00:00Z."
        ) from exc
    if ts.tzinfo is None:
        raise ConfigError(f"{option} {text!r} has no time zone; add one, e.g. {text}Z.")
    return ts.tz_convert("UTC")


@main.group()
def models() -> None:
    """The model registry: list versions, promote one to production."""


@models.command("list")
@click.argument("problem", required=False)
@pass_ctx
def models_list(obj: Context, problem: str | None) -> None:
    """Versions of PROBLEM (or of every problem): stage and key metrics."""
    from framework.training.run import registry_of

    registry = registry_of(obj.repo)
    problems = [problem] if problem else registry.problems()
    if problem:
        obj.repo.problem(problem)
    rows = []
    for name in problems:
        for version in registry.versions(name):
            meta = registry.get(name, version).meta
            metric = meta["metric"]
            rows.append(
                f"  {name:<10} {version:<5} {registry.stage_of(name, version):<11} {meta['winner']:<20} "
                f"test {metric} {meta['metrics']['test'][metric]:.4f}  baseline {meta['baseline']['test'][metric]:.4f}  "
                f"dataset {meta['dataset']['hash']}  {meta['created_at'][:19]}"
            )
    click.echo("\n".join(rows) if rows else "No models yet: run `lifecycle train PROBLEM`.")


@models.command("promote")
@click.argument("problem")
@click.argument("version")
@pass_ctx
def models_promote(obj: Context, problem: str, version: str) -> None:
    """Make VERSION (e.g. v3) the production model of PROBLEM."""
    from framework.training.run import registry_of

    obj.repo.problem(problem)
    artifact = registry_of(obj.repo).promote(problem, version)
    click.echo(f"{problem} {artifact.version} is now in production.")


@main.command()
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Users to generate when the example data is missing.",
)
@pass_ctx
def demo(obj: Context, users: int) -> None:
    """Run every lifecycle stage that exists so far on the example product."""
    import pandas as pd

    from framework.collect.example_data import write_example_data
    from framework.features.materialize import materialize as run_materialize
    from framework.features.retrieval import get_historical_features, get_online_features
    from framework.prepare.apply import apply as run_apply

    repo = obj.repo
    data = repo.data_dir
    click.echo("== 1. Collect data: the example product")
    if (data / "events.parquet").exists() and (data / "users.parquet").exists():
        click.echo(f"   using {data}/events.parquet and users.parquet")
    else:
        d = write_example_data(data, users=users)
        click.echo(f"   generated {len(d.users):,} users and {len(d.events):,} events")
    click.echo("== 2. Prepare data: check inputs, build window tables, feast apply")
    t0 = time.perf_counter()
    result = run_apply(repo)
    for t in result.tables:
        click.echo(
            f"   {t.view}: {t.events:,} events -> {t.rows:,} change points ({time.perf_counter() - t0:.1f}s)"
        )
    events = pd.read_parquet(data / "events.parquet", columns=["event_timestamp"])
    end = events["event_timestamp"].max()
    click.echo(f"== 3. Materialize the online store as of {end.isoformat()}")
    t0 = time.perf_counter()
    mat = run_materialize(repo, end=end.to_pydatetime())
    click.echo(f"   {sum(mat.rows.values()):,} entity rows in {time.perf_counter() - t0:.1f}s")
    click.echo("== 4. Point-in-time training features (weekly cutoffs, 500 users)")
    import numpy as np

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
    click.echo("== 5. Online lookup (same values as offline at the materialization time)")
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
    from framework.training.run import registry_of, run_training

    for step, name in enumerate(sorted(repo.problems), start=6):
        click.echo(f"== {step}. Train, evaluate, register and promote: {name}")
        run = run_training(repo, name, progress=lambda m: click.echo(f"   {m}"))
        click.echo(_comparison(run.result))
        registry_of(repo).promote(name, run.artifact.version)
        click.echo(
            f"   {name} {run.artifact.version} promoted to production; card: {run.artifact.path / 'card.html'}"
        )
    if repo.experiments:
        step += 1
        click.echo(f"== {step}. Deploy and experiment: serve, split traffic 50/50, report")
        _demo_experiment(repo, end)
    click.echo(f"== {step + 1}. Monitor: a marketing change moves traffic from facebook to google")
    _demo_shift(repo, end)
    click.echo(
        "\nDone. Next: `lifecycle serve`, `lifecycle models list`, `lifecycle monitor churn`, "
        "`lifecycle experiment report NAME`, `lifecycle features online --entity user_id=42`."
    )


def _demo_shift(repo, end) -> None:
    """Monitor the churn model on traffic like its training data except for a simulated
    marketing change (facebook page views become google ones), then run the
    champion/challenger retraining gate."""
    from framework.monitor.drift import monitor
    from framework.monitor.retrain import retrain
    from framework.training.dataset import load_training_set
    from framework.training.run import registry_of

    artifact = registry_of(repo).get("churn")
    frame = load_training_set(artifact.meta["dataset"]["path"]).frame
    train_end = artifact.meta["split"]["train"][1]
    pool = frame[frame["event_timestamp"] <= train_end]
    current = pool.sample(n=min(20_000, len(pool)), random_state=1).reset_index(drop=True)
    for window in (7, 30, 90):
        google = f"user_page_views_google_count_{window}d"
        facebook = f"user_page_views_facebook_count_{window}d"
        current[google] = current[google] + current[facebook]
        current[facebook] = current[facebook] * 0
    path = repo.data_dir / "shifted_current.parquet"
    current.drop(columns=["label"]).to_parquet(path)
    report = monitor(repo, "churn", current=path)
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


def _demo_experiment(repo, end) -> None:
    """Serve the models on loopback, send every user through /predict in the active
    experiment, post simulated outcomes (the treatment truly helps) to /events, report."""
    import pandas as pd
    import requests

    from framework.collect.example_data import simulate_outcomes
    from framework.declare.experiments import experiment_report
    from framework.deploy.service import background_server, create_app

    exp = next((e for e in repo.experiments.values() if e.active), None)
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
            predictions, at, window_days=exp.window_days, outcome=exp.outcome
        )
        for lo in range(0, len(outcomes), 5_000):
            chunk = outcomes.iloc[lo : lo + 5_000].astype({"event_timestamp": str})
            records = chunk.astype(object).where(chunk.notna(), None).to_dict("records")
            http.post(f"{url}/events", json={"events": records}, timeout=60).raise_for_status()
    arms = predictions["arm"].value_counts()
    click.echo(
        f"   /predict: {len(predictions):,} users in {len(predictions) // 100 + 1} requests "
        f"({served:.1f}s): {', '.join(f'{a} {n:,}' for a, n in arms.items())}"
    )
    click.echo(
        f"   /events: {len(outcomes):,} simulated {exp.outcome!r} events (treatment users "
        "the model flags get an offer and convert at 15%, everyone else at 6%)"
    )
    click.echo("   " + experiment_report(repo, exp.name).to_text().replace("\n", "\n   "))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
