"""The lifecycle CLI through click's CliRunner: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from framework.cli import main
from tests.helpers import BAD_EVENTS, copy_example_repo, registry_state


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="module")
def cli_repo(tmp_path_factory):
    """A repo taken through example-data, apply and materialize by the CLI itself."""
    repo = copy_example_repo(tmp_path_factory.mktemp("cli") / "feature_repo", users=None)
    runner = CliRunner()
    for args in (
        ["example-data", "--users", "150", "--seed", "5"],
        ["apply"],
        ["materialize", "--to", "2025-12-01T00:00:00Z"],
    ):
        result = runner.invoke(main, ["--repo", str(repo), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return repo


def test_help_is_light_and_teaches():
    code = "import sys, framework.cli; print(sorted(m for m in ('feast', 'pandas', 'duckdb', 'great_expectations', 'lightgbm', 'pyspark') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("example-data", "apply", "materialize", "features", "demo"):
        assert command in result.output


@pytest.mark.slow  # over 8 s: left out of the fast subset
def test_the_single_machine_path_never_imports_pyspark(cli_repo):
    code = (
        "import sys; from framework.declare.repo import FeatureRepo; "
        "from framework.prepare.apply import apply; "
        "from framework.features.materialize import materialize; "
        "from framework.features.historical import get_historical_features; "
        "import pandas as pd; "
        f"r = FeatureRepo({str(cli_repo)!r}); apply(r); "
        "materialize(r, end='2025-12-01T00:00:00Z'); "
        "get_historical_features(r, pd.DataFrame({'user_id': [1], "
        "'event_timestamp': [pd.Timestamp('2025-11-01', tz='UTC')]}), 'churn_model_v1'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.stores
def test_example_data_and_apply_outputs(cli_repo):
    events = pd.read_parquet(cli_repo / "data" / "events.parquet")
    assert events.user_id.nunique() > 100
    result = CliRunner().invoke(main, ["--repo", str(cli_repo), "apply"])
    assert result.exit_code == 0
    assert f"from {len(events):,} events" in result.output


@pytest.mark.stores
def test_historical_parquet_and_csv(run, cli_repo, tmp_path):
    rows = pd.DataFrame(
        {
            "user_id": [3, 4, 3, 999_999],
            "event_timestamp": pd.to_datetime(
                [
                    "2025-05-01T00:00:00Z",
                    "2025-06-01T10:00:00Z",
                    "2025-08-01T00:00:00Z",
                    "2025-08-01T00:00:00Z",
                ]
            ),
        }
    )
    rows.to_parquet(tmp_path / "rows.parquet")
    result = run(
        "--repo",
        cli_repo,
        "features",
        "historical",
        "--entities",
        tmp_path / "rows.parquet",
        "--out",
        tmp_path / "out.parquet",
        "--service",
        "churn_model_v1",
    )
    assert result.exit_code == 0 and "Wrote 4 rows x 31 features" in result.output
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.user_id) == [3, 4, 3, 999_999]
    assert out.user_events_count_90d.iloc[-1] == 0
    (tmp_path / "rows.csv").write_text(
        "user_id,event_timestamp\n3,2025-05-01T00:00:00Z\n4,2025-06-01T10:00:00Z\n3,2025-08-01T00:00:00Z\n999999,2025-08-01T00:00:00Z\n"
    )
    result = run(
        "--repo",
        cli_repo,
        "features",
        "historical",
        "--entities",
        tmp_path / "rows.csv",
        "--out",
        tmp_path / "out.csv",
        "--service",
        "churn_model_v1",
    )
    assert result.exit_code == 0
    csv = pd.read_csv(tmp_path / "out.csv")
    assert csv.user_events_count_90d.tolist() == out.user_events_count_90d.tolist()


@pytest.mark.stores
def test_selected_features_only(run, cli_repo, tmp_path):
    rows = pd.DataFrame(
        {"user_id": [3], "event_timestamp": pd.to_datetime(["2025-05-01T00:00:00Z"])}
    )
    rows.to_parquet(tmp_path / "rows.parquet")
    result = run(
        "--repo",
        cli_repo,
        "features",
        "historical",
        "--entities",
        tmp_path / "rows.parquet",
        "--out",
        tmp_path / "o.parquet",
        "--feature",
        "plan",
        "--feature",
        "user_events_count_7d",
    )
    assert result.exit_code == 0, result.output
    assert list(pd.read_parquet(tmp_path / "o.parquet").columns) == [
        "user_id",
        "event_timestamp",
        "plan",
        "user_events_count_7d",
    ]
    result = run(
        "--repo",
        cli_repo,
        "features",
        "historical",
        "--entities",
        tmp_path / "rows.parquet",
        "--out",
        tmp_path / "o.parquet",
        "--feature",
        "user_events_count_8d",
    )
    assert (
        result.exit_code == 1
        and "close matches: {'user_events_count_8d': ['user_events_count_7d'" in result.output
    )


@pytest.mark.stores
def test_online_json_and_unknown_entity(run, cli_repo):
    result = run(
        "--repo",
        cli_repo,
        "features",
        "online",
        "--entity",
        "user_id=3",
        "--entity",
        "user_id=123456789",
        "--at",
        "2025-12-01T00:00:00Z",
        "--json",
    )
    assert result.exit_code == 0, result.output
    known, unknown = json.loads(result.output)
    assert known["feature_status"] in ("ok", "partial") and known["event_day"] == 1
    assert unknown["feature_status"] == "defaults" and unknown["user_purchases_count_30d"] == 0


@pytest.mark.stores
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["features", "online", "--entity", "user_id"], 2, "write KEY=VALUE"),
        (["features", "online", "--entity", "user_id=abc"], 2, "must be an integer"),
        (
            ["features", "online", "--entity", "user_id=1", "--service", "nope"],
            1,
            "Unknown feature service 'nope'",
        ),
        (["features", "online", "--entity", "customer=1"], 2, "missing ['user_id']"),
        (
            ["features", "online", "--entity", "user_id=1", "--feature", "user_events_count_8d"],
            1,
            "Unknown feature(s) ['user_events_count_8d']; close matches",
        ),
        (
            [
                "features",
                "historical",
                "--entities",
                __file__,
                "--out",
                "o.parquet",
                "--feature",
                "nope",
            ],
            1,
            "must be .parquet or .csv",
        ),
        (
            ["features", "online", "--entity", "user_id=1", "--at", "2025-01-01"],
            2,
            "Invalid value for '--at': 2025-01-01 has no time zone",
        ),
        (
            ["features", "online", "--entity", "user_id=1", "--at", "soon"],
            2,
            "Invalid value for '--at': 'soon' is not a time",
        ),
        (["predict", "churn", "--at", "2025-13-45T00:00Z"], 2, "'--at': '2025-13-45T00:00Z'"),
        (["monitor", "churn", "--from", "last week"], 2, "Invalid value for '--from'"),
        (["skew", "churn", "--to", "2025-01-01"], 2, "Invalid value for '--to'"),
        (["experiment", "report", "x", "--at", "noon"], 2, "Invalid value for '--at'"),
        (["materialize", "--to", "tomorrow"], 2, "Invalid value for '--to'"),
        (
            ["features", "historical", "--entities", "missing.parquet", "--out", "o.parquet"],
            2,
            "does not exist",
        ),
        (["materialize", "--to", "2025-01-01T00:00:00"], 2, "no time zone"),
        (
            ["materialize", "--from", "2025-03-01T00:00:00Z", "--to", "2025-01-01T00:00:00Z"],
            1,
            "is after",
        ),
        (["example-data", "--users", "0"], 2, "0 is not in the range"),
        (["nonsense"], 2, "No such command"),
    ],
)
def test_bad_input_exit_codes(cli_repo, args, code, message):
    result = CliRunner().invoke(main, ["--repo", str(cli_repo), *args])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.stores
def test_historical_bad_files(run, cli_repo, tmp_path):
    bad = tmp_path / "naive.csv"
    bad.write_text("user_id,event_timestamp\n1,2025-05-01 00:00:00\n")
    result = CliRunner().invoke(
        main,
        [
            "--repo",
            str(cli_repo),
            "features",
            "historical",
            "--entities",
            str(bad),
            "--out",
            str(tmp_path / "o.parquet"),
        ],
    )
    assert result.exit_code == 1 and "timezone-naive" in result.output
    assert not (tmp_path / "o.parquet").exists()
    result = CliRunner().invoke(
        main,
        [
            "--repo",
            str(cli_repo),
            "features",
            "historical",
            "--entities",
            str(bad),
            "--out",
            str(tmp_path / "o.txt"),
        ],
    )
    assert result.exit_code == 2 and "must end in .parquet or .csv" in result.output
    (tmp_path / "cols.csv").write_text("id,event_timestamp\n1,2025-05-01T00:00:00Z\n")
    result = CliRunner().invoke(
        main,
        [
            "--repo",
            str(cli_repo),
            "features",
            "historical",
            "--entities",
            str(tmp_path / "cols.csv"),
            "--out",
            str(tmp_path / "o.parquet"),
        ],
    )
    assert result.exit_code == 1 and "missing column(s) ['user_id']" in result.output


@pytest.mark.stores
@pytest.mark.parametrize(("change", "message"), BAD_EVENTS, ids=[m for _, m in BAD_EVENTS])
def test_apply_bad_events_is_one_error_exit_1(tmp_path, change, message):
    repo = copy_example_repo(tmp_path / "feature_repo", users=30)
    path = repo / "data" / "events.parquet"
    change(pd.read_parquet(path)).to_parquet(path, index=False)
    result = CliRunner().invoke(main, ["--repo", str(repo), "apply"])
    assert result.exit_code == 1
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "events.parquet" in error[0] and message in result.output
    assert "Traceback" not in result.output
    assert not (repo / "data" / "derived").exists() and registry_state(repo) is None


def test_repo_that_does_not_exist_is_a_usage_error():
    result = CliRunner().invoke(main, ["--repo", "/nonexistent/repo", "apply"])
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.slow  # trains both problems and serves them
@pytest.mark.stores
def test_demo_runs_every_stage(tmp_path):
    repo = copy_example_repo(
        tmp_path / "feature_repo", users=None, experiments=True, catalogue=True
    )
    result = CliRunner().invoke(
        main, ["--repo", str(repo), "demo", "--users", "400"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    for stage in ("Collect data", "Prepare data", "Materialize", "Point-in-time", "Online lookup"):
        assert stage in result.output
    assert "Deploy and experiment" in result.output and "Verdict:" in result.output
    assert "Experiment retention_offers on churn" in result.output
    assert "Forecast daily demand a year ahead" in result.output
    ranking = result.output.split("Rank products")[1].split("Monitor:")[0]
    trained = result.output.split("promote: product_ranking")[1].split("==")[0]
    if "NOT promoted" in trained:  # the gate kept popularity: the demo says why, no A/B
        assert "counterfactual CTR lift over the popularity order" in trained
        assert "no A/B test: the gate kept the popularity order, because" in ranking
        assert "Experiment ranking_ab" not in ranking
    else:
        assert "promoted to production" in trained
        assert "Experiment ranking_ab on product_ranking" in ranking and "Verdict:" in ranking
        assert "control    popularity" in ranking and "treatment  production" in ranking
    shift = result.output.split("Monitor: a marketing change")[1]
    lines = [line.split() for line in shift.splitlines()]
    drifted = [w[1] for w in lines if w[:1] == ["drifted:"] and w[1].startswith("user_")]
    assert drifted and all("google" in f or "facebook" in f for f in drifted), shift
    assert "Decision:" in shift
    assert "defaults" in result.output  # the unknown user shown in the online step
    # each problem says whether its winner beat the baseline; the end says what to open
    said = [line for line in result.output.splitlines() if "the baseline on test (" in line]
    assert len(said) == 4, said
    assert result.output.count("card.html") >= 8 and "Try next:" in result.output
    assert "/ui" in result.output.split("Open:")[1]
    both = CliRunner().invoke(main, ["--repo", str(repo), "demo", "--full", "--users", "9"])
    assert both.exit_code == 2 and "exclude each other" in both.output


def _commands(group, prefix=()):
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


OLD_NAMES = ("--as-of", "--since", "--until", "--start", "--end", "--output", "--log-db")


def test_every_command_takes_the_parameters_its_options_name():
    """An option renamed (say --log-db to --db) hands its value to a parameter of the
    new name: the callback must take exactly the options' and arguments' names."""
    import inspect

    for path, command in _commands(main):
        taken = set(inspect.signature(command.callback).parameters) - {"obj", "ctx"}
        named = {p.name for p in command.params}
        assert taken == named, (path, sorted(taken ^ named))


def test_one_vocabulary_across_commands():
    """A point in time is --at, a range --from/--to, the database --db, a model version
    --model-version, a result file --out, JSON --json (one help text); the older names
    are hidden from every --help."""
    import click

    json_helps = set()
    for path, command in _commands(main):
        shown = [o for p in command.params if isinstance(p, click.Option) for o in p.opts[:1]]
        assert not set(shown) & {*OLD_NAMES, "--version"}, (path, shown)
        for param in command.params:
            if "--json" in getattr(param, "opts", ()):
                json_helps.add(param.help)
        text = CliRunner().invoke(main, [*path, "--help"]).output
        assert not any(old in text.split() for old in OLD_NAMES), (path, text)
    assert len(json_helps) == 1
    root = CliRunner().invoke(main, ["--help"]).output
    listed = root.split("Commands:")[1].strip().splitlines()
    assert len(listed) == len(main.list_commands(None)) == 20
    assert not any(line.endswith("...") for line in listed)


def test_the_root_help_loads_no_stage_module():
    code = (
        "import sys; from click.testing import CliRunner; from framework.cli import main; "
        "CliRunner().invoke(main, ['--help']); "
        "print(sorted(m for m in sys.modules if m.startswith('framework.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['framework.cli._shared']"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (["predict", "churn", "--as-of", "noon"], "'--at'"),
        (["monitor", "churn", "--since", "noon"], "'--from'"),
        (["skew", "churn", "--until", "noon"], "'--to'"),
        (["materialize", "--end", "noon"], "'--to'"),
        (["materialize", "--start", "noon"], "'--from'"),
    ],
)
def test_older_option_names_still_work_for_one_release(old, new):
    result = CliRunner().invoke(main, old)
    assert result.exit_code == 2 and f"Invalid value for {new}" in result.output


def test_progress_shows_a_rate_only_when_it_measured_one(monkeypatch, capsys):
    """A view done in one step after untimed work showed '4,251,119,331/s'; now the rate
    is the rows between updates over the time between them, or absent."""
    from framework.cli import _shared

    clock = iter([100.0, 100.1, 101.1, 102.1])
    monkeypatch.setattr(_shared.time, "perf_counter", lambda: next(clock))
    once = _shared.progress_bar("once")
    once(5_000_000, 5_000_000)  # the whole view in one update: no rate to tell
    line = capsys.readouterr().err
    assert "5,000,000/5,000,000 (100%)" in line and "/s" not in line
    bar = _shared.progress_bar("steps")
    bar(1_000, 4_000)  # t = 100.1: the first update starts the clock
    bar(2_000, 4_000)  # t = 101.1: 1,000 rows in 1 s
    bar(4_000, 4_000)  # t = 102.1: 3,000 rows in 2 s
    lines = capsys.readouterr().err.splitlines()
    assert lines[-2].endswith("(50%, 1,000/s)") and lines[-1].endswith("(100%, 1,500/s)")
