"""Writing a year-ahead forecast run: rows/s into SQLite (and PostgreSQL when reachable).

    .venv/bin/python benchmarks/forecast.py [--products 200 1000] [--postgres URL]

For P products x 365 target days, it times ``write_forecasts`` (one transaction,
replacing the earlier run) against pandas ``DataFrame.to_sql`` of the same rows into
the same database, in the same process, and prints rows/s and the ratio. Target:
at least 100k rows/s into SQLite.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from framework.common.database import engine_url
from framework.deploy.forecast import write_forecasts


def _columns(products: int, days: int = 365) -> tuple[dict, int]:
    n = products * days
    ids = np.repeat([f"sku_{i:05d}" for i in range(products)], days).tolist()
    as_of = datetime(2025, 12, 31, tzinfo=UTC)
    target = pd.date_range("2026-01-01", periods=days, freq="D").date
    return {
        "run_id": str(uuid.uuid4()),
        "problem": "demand",
        "model_version": "v1",
        "entity_key": "product_id",
        "entity_id": ids,
        "as_of": as_of,
        "target_date": list(np.tile(target, products)),
        "horizon_days": np.tile(np.arange(1, days + 1), products).tolist(),
        "forecast": np.random.default_rng(0).random(n).tolist(),
        "created_at": datetime.now(UTC),
        "product_id": ids,
    }, n


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run(url: str, products: int) -> None:
    columns, n = _columns(products)
    kinds = {"product_id": "string"}
    ours = _best(lambda: write_forecasts(url, kinds, columns, n))
    frame = pd.DataFrame({k: v if isinstance(v, list) else [v] * n for k, v in columns.items()})
    engine = sa.create_engine(url)

    def pandas_to_sql() -> None:
        with engine.begin() as conn:
            frame.to_sql(
                "forecasts_pandas", conn, if_exists="replace", index=False, chunksize=50_000
            )

    theirs = _best(pandas_to_sql)
    engine.dispose()
    where = url.split("@")[-1] if "@" in url else "SQLite"
    print(
        f"{where:<24} {n:>9,} rows: write_forecasts {ours:6.2f} s = {n / ours / 1e3:7.1f}k rows/s; "
        f"pandas to_sql {theirs:6.2f} s = {n / theirs / 1e3:7.1f}k rows/s; ratio {theirs / ours:4.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, nargs="+", default=[200, 1000])
    parser.add_argument(
        "--postgres", default=None, help="e.g. postgresql://postgres@127.0.0.1/test"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for products in args.products:
            run(engine_url(str(Path(tmp) / f"forecasts-{products}.db")), products)
            if args.postgres:
                run(engine_url(args.postgres), products)


if __name__ == "__main__":
    main()
