"""The repo stays a stock Feast repository: Feast's CLI and SDK work on it unchanged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from framework.features.materialize import materialize
from framework.features.online import get_online_features
from tests.helpers import clone_repo

FEAST = str(Path(sys.executable).with_name("feast"))


@pytest.mark.slow  # a fresh Python process for each of four Feast commands
def test_feast_cli_applies_and_lists_the_repo(applied_repo, tmp_path):
    clone = tmp_path / "repo"
    shutil.copytree(applied_repo.path, clone)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [FEAST, "-c", str(clone), "apply"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    listed = subprocess.run(
        [FEAST, "-c", str(clone), "feature-views", "list"], capture_output=True, text=True, env=env
    )
    assert listed.returncode == 0, listed.stderr
    for name in ("user_activity", "user_profile", "event_dates"):
        assert name in listed.stdout
    services = subprocess.run(
        [FEAST, "-c", str(clone), "feature-services", "list"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "churn_model_v1" in services.stdout


def test_stock_materialize_gives_the_same_online_state_as_ours(applied_repo, tmp_path):
    T = pd.Timestamp("2025-10-01T08:00:00Z")
    ours, stock = (clone_repo(applied_repo, tmp_path / name) for name in ("ours", "stock"))
    materialize(ours, end=T)
    stock.store.materialize(
        start_date=pd.Timestamp("2023-01-01T00:00:00Z").to_pydatetime(), end_date=T.to_pydatetime()
    )
    users = pd.read_parquet(ours.data_dir / "users.parquet").user_id.tolist()
    rows = [{"user_id": u, "event_timestamp": T} for u in users]
    a = get_online_features(ours, rows, "churn_model_v1")
    b = get_online_features(stock, rows, "churn_model_v1")
    assert (a.feature_status == "ok").sum() > len(users) / 2
    # Stock materialize writes no window state, so `stock` reads Feast's values: equal at T
    # up to float rounding; feature_status may differ (see test_fast_online_reads_...).
    a, b = a.drop(columns="feature_status"), b.drop(columns="feature_status")
    pdt.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-9)
