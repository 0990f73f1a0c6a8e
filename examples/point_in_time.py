"""Point-in-time training features from Python: the library API behind the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from framework.common.scripts import load_script
from framework.declare.repo import FeatureRepo
from framework.features.historical import get_historical_features
from framework.prepare.apply import apply


def main() -> None:
    repo = FeatureRepo("feature_repo")
    if not (repo.data_dir / "events.parquet").exists():
        generator = load_script(Path(__file__).with_name("example_data.py"))
        generator.write_example_data(repo.data_dir, users=2_000)
    apply(repo)
    cutoffs = pd.date_range("2025-03-01", "2025-11-01", freq="28D", tz="UTC")
    users = np.arange(1, 201)
    rows = pd.DataFrame(
        {
            "user_id": np.tile(users, len(cutoffs)),
            "event_timestamp": np.repeat(cutoffs, len(users)),
        }
    )
    features = get_historical_features(repo, rows, "churn_model_v1")
    print(
        features.groupby("event_timestamp")[["user_events_count_30d", "user_amount_sum_30d"]].mean()
    )


if __name__ == "__main__":
    main()
