"""`lifecycle init`: a new repo from the user's own event file, applied and queried."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from framework.cli import main
from tests.helpers import payments_generator


def _run(*args: str):
    return CliRunner().invoke(main, [*args])


@pytest.fixture
def events(tmp_path):
    pay, _ = payments_generator().payments_frames(cards=30, merchants=6, days=10, seed=4)
    path = tmp_path / "card payments.csv"
    pay.assign(ts=pay.ts.map(lambda t: t.isoformat())).to_csv(path, index=False)
    return pay, path


@pytest.mark.stores
def test_init_then_apply_and_historical_work_on_the_users_data(tmp_path, events):
    pay, path = events
    repo = tmp_path / "new_repo"
    result = _run("init", str(repo), "--events", str(path), "--key", "card_id", "--timestamp", "ts")
    assert result.exit_code == 0, result.output
    assert "card_events_count_7d" in result.output
    text = (repo / "features.py").read_text()
    assert "where='channel == \"web\"'" in text and 'column="amount"' in text
    assert "payment_id" not in text  # an id column is not a category
    result = _run("--repo", str(repo), "apply")
    assert result.exit_code == 0, result.output
    t = pay.ts.max()
    card = pay.card_id.iloc[0]
    rows = tmp_path / "rows.csv"
    rows.write_text(f"card_id,event_timestamp\n{card},{t.isoformat()}\n")
    out = tmp_path / "out.csv"
    result = _run(
        "--repo", str(repo), "features", "historical", "--entities", str(rows), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out)
    mine = pay[(pay.card_id == card) & (pay.ts <= t)]
    week = mine[mine.ts > t - pd.Timedelta(days=7)]
    assert got.card_events_count_7d.iloc[0] == len(week)
    assert got.card_channel_web_count_30d.iloc[0] == (mine.channel == "web").sum()
    assert got.card_amount_sum_7d.iloc[0] == pytest.approx(week.amount.sum())


def test_init_guesses_unique_columns_and_asks_otherwise(tmp_path, events):
    pay, path = events
    result = _run("init", str(tmp_path / "r1"), "--events", str(path))
    assert result.exit_code == 1
    assert "Which column is the entity key?" in result.output and "--key" in result.output
    parquet = tmp_path / "p.parquet"
    pay.drop(columns=["payment_id", "merchant_id"]).to_parquet(parquet, index=False)
    result = _run("init", str(tmp_path / "r2"), "--events", str(parquet))
    assert result.exit_code == 0, result.output
    assert 'join_keys=["card_id"]' in (tmp_path / "r2" / "entities.py").read_text()
    result = _run("init", str(tmp_path / "r2"))
    assert result.exit_code == 1 and "already holds a feature_store.yaml" in result.output
    result = _run("init", str(tmp_path / "r3"), "--events", str(parquet), "--key", "card")
    assert result.exit_code == 1 and "close matches: ['card_id']" in result.output


def test_naive_timestamps_are_refused_at_init_and_nothing_is_written(tmp_path, events):
    pay, _ = events
    naive = tmp_path / "naive.parquet"
    pay.assign(ts=pay.ts.dt.tz_localize(None)).to_parquet(naive, index=False)
    repo = tmp_path / "r"
    result = _run("init", str(repo), "--events", str(naive), "--key", "card_id")
    assert result.exit_code == 1 and "timezone-naive" in result.output
    assert "--timezone" in result.output
    assert not repo.exists()  # the error's advice (run again) works
    result = _run(
        "init", str(repo), "--events", str(naive), "--key", "card_id", "--timezone", "Mars/Olympus"
    )
    assert result.exit_code == 1 and "Mars/Olympus" in result.output and not repo.exists()


def test_timezone_places_naive_times_in_the_named_zone(tmp_path, events):
    pay, _ = events
    naive = tmp_path / "shop.csv"
    berlin = pay.ts.dt.tz_convert("Europe/Berlin")
    pay.assign(ts=berlin.dt.tz_localize(None).map(lambda t: t.isoformat())).to_csv(
        naive, index=False
    )
    repo = tmp_path / "shop"
    args = ["init", str(repo), "--events", str(naive), "--key", "card_id"]
    result = _run(*args, "--timezone", "Europe/Berlin")
    assert result.exit_code == 0, result.output
    stored = pd.read_parquet(repo / "data" / "shop.parquet")
    assert str(stored.ts.dt.tz) == "Europe/Berlin"
    # the same instants as the zone-aware original, not shifted by the zone's offset
    assert (stored.ts.dt.tz_convert("UTC").values == pay.ts.dt.tz_convert("UTC").values).all()
    aware = tmp_path / "aware.parquet"
    pay.to_parquet(aware, index=False)
    result = _run(
        "init",
        str(tmp_path / "r2"),
        "--events",
        str(aware),
        "--key",
        "card_id",
        "--timezone",
        "UTC",
    )
    assert result.exit_code == 1 and "drop --timezone" in result.output


def test_an_empty_folder_points_to_init(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run("apply")
    assert result.exit_code == 2 and "lifecycle init" in result.output
    result = _run("init", "feature_repo")
    assert result.exit_code == 0 and (tmp_path / "feature_repo" / "feature_store.yaml").exists()
