"""Event logging: checked, durable appends that the next apply or materialize counts."""

from __future__ import annotations

import shutil

import click
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from framework.cli import main
from framework.cli._shared import AwareTime, Context
from framework.collect.ingest import (
    append,
    compact,
    event_log_path,
    inbox_files,
    latest_event_time,
    read_events,
)
from framework.declare.repo import FeatureRepo
from framework.errors import DataError
from framework.features.historical import get_historical_features
from framework.features.materialize import materialize
from framework.features.online import get_online_features
from framework.prepare.apply import apply
from tests.helpers import BAD_EVENTS, clone_repo, copy_example_repo

T = pd.Timestamp("2025-09-17T13:45:10Z")


def _new_events(users: list[int], at: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": users,
            "event_timestamp": [at + pd.Timedelta(seconds=i) for i in range(len(users))],
            "event_type": "page_view",
            "source": "google",
            "amount": None,
        }
    )


@pytest.fixture
def repo(applied_repo, tmp_path):
    return clone_repo(applied_repo, tmp_path / "repo")


def _count_7d(repo, user: int, at: pd.Timestamp) -> int:
    """Brute force: page views from google in (at - 7d, at], from the raw event log."""
    ev = pd.read_parquet(event_log_path(repo))
    hit = (
        (ev.user_id == user)
        & (ev.event_type == "page_view")
        & (ev.source == "google")
        & (ev.event_timestamp > at - pd.Timedelta(days=7))
        & (ev.event_timestamp <= at)
    )
    return int(hit.sum())


def test_appended_events_count_after_apply(repo):
    users = [1, 2, 3]
    before = get_historical_features(
        repo, pd.DataFrame({"user_id": users, "event_timestamp": T}), "churn_model_v1"
    )
    new = _new_events(users * 2, T - pd.Timedelta(hours=1))
    assert append(repo, pa.Table.from_pandas(new, preserve_index=False)) == 6
    assert len(inbox_files(repo)) == 1
    apply(repo)
    assert inbox_files(repo) == []
    after = get_historical_features(
        repo, pd.DataFrame({"user_id": users, "event_timestamp": T}), "churn_model_v1"
    )
    delta = after.user_page_views_google_count_7d - before.user_page_views_google_count_7d
    assert delta.tolist() == [2, 2, 2]
    assert after.user_page_views_google_count_7d.tolist() == [_count_7d(repo, u, T) for u in users]


def test_materialize_merges_and_rebuilds_the_windows(repo):
    new = _new_events([5], T - pd.Timedelta(minutes=5))
    append(repo, pa.Table.from_pandas(new, preserve_index=False))
    result = materialize(repo, end=T)
    assert result.merged_events == 1
    online = get_online_features(repo, [{"user_id": 5, "event_timestamp": T}], "churn_model_v1")
    assert online.user_page_views_google_count_7d.iloc[0] == _count_7d(repo, 5, T) >= 1
    assert materialize(repo, end=T).merged_events == 0  # nothing new: the windows are kept


def test_identical_rows_are_separate_events(repo):
    """Two equal purchases on one day are two events: nothing is deduplicated."""
    log = event_log_path(repo)
    rows = len(pd.read_parquet(log))
    new = pa.Table.from_pandas(_new_events([7, 7], T), preserve_index=False)
    assert append(repo, new) == 2
    assert append(repo, new) == 2  # sent again without a batch id: two more events
    merged = compact(repo)
    assert (merged.files, merged.added, merged.duplicates, merged.total) == (2, 4, 0, rows + 4)


def test_a_batch_id_makes_resending_safe_and_a_crash_before_cleanup_is_not_counted_twice(
    repo, tmp_path
):
    log = event_log_path(repo)
    rows = len(pd.read_parquet(log))
    new = pa.Table.from_pandas(_new_events([7, 8], T), preserve_index=False)
    assert append(repo, new, batch_id="b-1") == 2
    assert append(repo, new, batch_id="b-1") == 2  # a client re-sends after a timeout
    assert len(inbox_files(repo)) == 1
    saved = [shutil.copy(f, tmp_path / f.name) for f in inbox_files(repo)]
    first = compact(repo)
    assert (first.files, first.added, first.total) == (1, 2, rows + 2)
    assert append(repo, new, batch_id="b-1") == 2  # after the merge: still taken once
    assert inbox_files(repo) == []
    other = pa.Table.from_pandas(_new_events([9], T), preserve_index=False)
    with pytest.raises(DataError, match="batch 'b-1' was taken before with other rows"):
        append(repo, other, batch_id="b-1")
    # A crash after the log was replaced but before the inbox was cleaned: the files come back.
    for f in saved:
        shutil.copy(f, log.with_name(log.name + ".inbox"))
    again = compact(repo)
    assert (again.added, again.total) == (0, rows + 2)
    assert len(pd.read_parquet(log)) == rows + 2
    assert inbox_files(repo) == []


def test_read_events_includes_the_inbox(repo):
    append(repo, pa.Table.from_pandas(_new_events([9], T), preserve_index=False))
    events = read_events(repo, ["user_id", "event_timestamp"])
    assert ((events.user_id == 9) & (events.event_timestamp == T)).sum() == 1
    assert str(events.event_timestamp.dtype) == "datetime64[us, UTC]"


@pytest.mark.parametrize(("change", "message"), BAD_EVENTS, ids=[m for _, m in BAD_EVENTS])
def test_bad_files_are_refused_and_nothing_is_appended(repo, tmp_path, change, message):
    log = event_log_path(repo)
    before = log.read_bytes()
    bad = change(pd.read_parquet(log).head(3))
    path = tmp_path / "new.parquet"
    bad.to_parquet(path, index=False)
    result = CliRunner().invoke(main, ["--repo", str(repo.path), "events", "ingest", str(path)])
    assert result.exit_code == 1, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "new.parquet" in error[0] and message in result.output
    assert "Traceback" not in result.output
    assert log.read_bytes() == before and inbox_files(repo) == []


def test_a_corrupted_file_is_refused_with_a_report_of_every_problem(repo, tmp_path):
    from framework.errors import RefusedEvents

    good = _new_events([1, 2, 3, 4, 5, 6], T)
    bad = good.copy()
    bad.loc[1, "amount"] = -3.0
    bad.loc[2, "event_timestamp"] = pd.Timestamp("2099-01-01T00:00:00Z")
    bad.loc[3, "event_type"] = "pagevew"
    bad.loc[4, "event_type"] = "pagevew"
    bad["user_id"] = bad.user_id.astype("Int64")
    bad.loc[5, "user_id"] = pd.NA
    with pytest.raises(RefusedEvents) as info:
        append(repo, pa.Table.from_pandas(bad, preserve_index=False), origin="bad.parquet")
    found = {p.check.split(" (")[0]: p for p in info.value.violations}
    assert set(found) == {
        "user_id is missing",
        "amount below 0",
        "event_timestamp in the future",
        "unknown event_type",
    }
    assert [e["row"] for e in found["unknown event_type"].examples] == [4, 5]
    assert found["unknown event_type"].rows == 2
    assert found["amount below 0"].examples == [{"row": 2, "column": "amount", "value": -3.0}]
    assert "nothing was written" in str(info.value) and inbox_files(repo) == []
    # the same rows without the bad ones are accepted
    assert append(repo, pa.Table.from_pandas(good.head(1), preserve_index=False)) == 1


def test_cli_ingest_of_a_csv(repo, tmp_path):
    log = event_log_path(repo)
    rows = len(pd.read_parquet(log))
    path = tmp_path / "new.csv"
    path.write_text(
        "user_id,event_timestamp,event_type,source,amount\n"
        "11,2025-09-01T10:00:00Z,purchase,direct,12.5\n"
        "12,2025-09-01T11:00:00+02:00,conversion,email,\n"
    )
    args = ["--repo", str(repo.path), "events", "ingest", str(path), "--batch-id", "csv-1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Appended 2 of 2 events" in result.output
    result = CliRunner().invoke(main, args)  # re-run: the batch was taken
    assert result.exit_code == 0, result.output
    assert "Appended 0 of 2 events" in result.output
    log_frame = pd.read_parquet(log)
    assert len(log_frame) == rows + 2
    last = log_frame[log_frame.user_id == 12].iloc[-1]
    assert last.event_timestamp == pd.Timestamp("2025-09-01T09:00:00Z")
    assert pd.isna(last.amount) and last.event_type == "conversion"


def test_naive_timestamps_in_a_csv_are_refused(repo, tmp_path):
    path = tmp_path / "naive.csv"
    path.write_text(
        "user_id,event_timestamp,event_type,source,amount\n1,2025-09-01 10:00:00,page_view,google,\n"
    )
    with pytest.raises(DataError, match="timezone-naive"):
        from framework.collect.checks import read_table

        append(repo, read_table(path))
    assert inbox_files(repo) == []


def test_a_contract_without_a_future_limit_takes_any_time():
    """A max_future past the calendar's end means no limit (it used to overflow)."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    from framework.collect.checks import contract_violations
    from framework.declare.contracts import SourceContract

    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    table = pa.table(
        {
            "user_id": [1],
            "event_timestamp": pa.array([far], pa.timestamp("us", tz="UTC")),
            "event_type": ["page_view"],
            "source": ["google"],
            "amount": pa.array([None], pa.float64()),
        }
    )
    forever = SourceContract(source="events", max_future=timedelta(days=3_000_000))
    ts = "event_timestamp"
    assert contract_violations(table, forever, timestamp_field=ts) == []
    refused = contract_violations(table, SourceContract(source="events"), timestamp_field=ts)
    assert [v.check.split(" (")[0] for v in refused] == ["event_timestamp in the future"]


def test_the_datas_present_is_the_latest_event_of_every_log(tmp_path):
    path = copy_example_repo(tmp_path / "feature_repo", users=40, catalogue=True)
    repo = FeatureRepo(path)
    latest = max(
        pd.read_parquet(src.path, columns=[src.timestamp_field]).iloc[:, 0].max()
        for src in repo.event_sources.values()
    )
    assert len(repo.event_sources) == 2
    assert latest_event_time(repo) == latest
    ctx = click.Context(main, obj=Context(path, None))
    assert AwareTime().convert("data", None, ctx) == latest
    empty = FeatureRepo(copy_example_repo(tmp_path / "empty", users=None))
    with pytest.raises(DataError, match="holds no events yet"):
        latest_event_time(empty)
