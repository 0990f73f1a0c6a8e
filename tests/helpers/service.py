"""The prediction service under test: a loopback server, requests to it, its metrics,
the CLI through click's runner, and the rows of a batch run."""

from __future__ import annotations

import socket
import threading
import time

import pandas as pd
import requests

T = pd.Timestamp("2025-09-17T13:45:10Z")  # the materialization time of the served repo


def serve_app(app):
    """Run ``app`` under uvicorn on a free loopback port: (server, thread, base URL)."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def cli(repo, *args):
    """``lifecycle --repo REPO ARGS`` through click's test runner."""
    from click.testing import CliRunner

    from framework.cli import main

    return CliRunner().invoke(main, ["--repo", str(repo.path), *map(str, args)])


def post_predict(url: str, ids: list[int], problem: str = "churn", at=None) -> requests.Response:
    """One ``POST /predict`` for ``ids`` with their request time (default: ``T``)."""
    stamp = int((T if at is None else at).timestamp())
    body = {"problem": problem, "entities": [{"user_id": u, "event_timestamp": stamp} for u in ids]}
    return requests.post(f"{url}/predict", json=body, timeout=60)


def predict_all(url: str, problem: str, ids: list[int], at=None) -> list[dict]:
    """The predictions of every id, 50 per request; every answer must be a 200."""
    out = []
    for lo in range(0, len(ids), 50):
        response = post_predict(url, ids[lo : lo + 50], problem, at)
        assert response.status_code == 200, response.text
        out += response.json()["predictions"]
    return out


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """``GET /metrics``, parsed: sample name -> {sorted label pairs: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    response = requests.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def batch_runs(url: str, as_of) -> pd.DataFrame:
    """The rows of the run(s) at ``as_of`` (every column, the key columns too), read
    through the table as the database reflects it."""
    import sqlalchemy as sa

    from framework.common.database import engine_url

    engine = sa.create_engine(engine_url(url))
    table = sa.Table("predictions", sa.MetaData(), autoload_with=engine)
    query = (
        sa.select(table)
        .where(table.c.as_of == pd.Timestamp(as_of).to_pydatetime())
        .order_by(table.c.entity_id)
    )
    with engine.connect() as conn:
        result = conn.execute(query)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    engine.dispose()
    return frame
