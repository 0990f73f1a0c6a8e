"""Batch prediction on Spark: the population, its features and its scores never sit
whole on the driver.

1. The population (the spine rule's entities at T, or the entities given) is a Spark
   frame; Feast's Spark offline store joins the model's feature service to it point in
   time (``to_spark_df``: the join stays in Spark).
2. ``mapInPandas`` finishes each partition as the single-machine path does: on-demand
   views (rebuilt on the executor from their protos), the declared types and the zero
   fills, the model's validation suite, then the model (shipped once to each executor
   as a broadcast of its pickle, after the driver checked its signature).
3. The scores go to the ``predictions`` table in one transaction (the driver streams
   them a chunk at a time, as Arrow, while the transaction is open: a failure anywhere
   rolls the whole run back), or to a partitioned parquet dataset
   ``<output>/problem=<p>/model_version=<v>/as_of=<T>/``, written beside its place and
   moved in when complete (a rerun replaces the run).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from framework.common.spark import move_output, spark_errors, spark_session
from framework.declare.repo import FeatureRepo
from framework.errors import DataError, StoreError
from framework.tasks import task_of

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from framework.declare.problems import Problem
    from framework.deploy.batch_runs import BatchRun
    from framework.models.registry import ModelArtifact

__all__ = ["predict_batch_spark"]

_CHUNK_ROWS = 50_000


def _population(
    session: SparkSession, problem: Problem, kinds: dict[str, str], as_of_us: int
) -> DataFrame:
    """The spine rule's entities at ``as_of_us`` (as ``population_at``), on Spark."""
    from pyspark.sql import functions as F

    from framework.declare.problems import Cutoffs, LabelTable, WeeklyCutoffs

    spine = problem.spine
    source = (
        problem.label.source
        if isinstance(problem.label, LabelTable)
        else getattr(spine, "source", None) or problem.events
    )
    ts = F.unix_micros(F.col(source.timestamp_field or "event_timestamp").cast("timestamp"))
    low = as_of_us - spine.active_us if isinstance(spine, Cutoffs | WeeklyCutoffs) else -(2**62)
    keys = [
        F.col(k).cast("bigint" if kind == "int" else "string").alias(k) for k, kind in kinds.items()
    ]
    with spark_errors(f"reading the population of {problem.name!r}"):
        rows = session.read.parquet(str(source.path))
    return (
        rows.filter((ts > F.lit(low)) & (ts <= F.lit(as_of_us))).select(*keys).dropna().distinct()
    )


def _score_partition(
    plan: dict[str, Any], model: Any, frames: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    """Finish, check and score one partition's feature rows (runs on an executor)."""
    from feast import OnDemandFeatureView
    from feast.protos.feast.core.OnDemandFeatureView_pb2 import (
        OnDemandFeatureView as OnDemandFeatureViewProto,
    )

    from framework.common.keys import entity_texts
    from framework.errors import ValidationError
    from framework.features.resolve import finish_columns
    from framework.models import scoring
    from framework.training.validation import validate_features

    meta = plan["meta"]
    odfvs = []
    for blob in plan["on_demand"]:
        proto = OnDemandFeatureViewProto()
        proto.ParseFromString(blob)
        odfvs.append(OnDemandFeatureView.from_proto(proto))
    for frame in frames:
        if frame.empty:
            continue
        for view in odfvs:
            produced = view.feature_transformation.transform(frame)
            for name in plan["on_demand_features"][view.name]:
                frame[name] = produced[name].to_numpy()
        frame = finish_columns(frame, plan["types"])
        checked = validate_features(plan["problem"], frame, meta)
        if checked.failures:
            raise ValidationError(
                f"Batch input refused by model {plan['problem']} {plan['version']}'s "
                f"validation suite; nothing was written. {checked.report()}".replace("\n", " ")
            )
        model_obj = model.value
        score, label = scoring.score(meta, model_obj, frame)
        out = pd.DataFrame({k: frame[k].to_numpy() for k in plan["keys"]})
        out["entity_id"] = entity_texts(frame, plan["keys"])
        out["score"] = score.astype(float)
        out["label"] = pd.array(label if label is not None else [None] * len(out), dtype="Int32")
        out["predicted_class"] = pd.Series(
            task_of(meta.task).class_names(meta, label), index=out.index, dtype=object
        )
        yield out


def _to_ipc(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The partition's rows as Arrow IPC blobs of up to ``_CHUNK_ROWS`` rows each: the
    driver then streams a few blobs per partition instead of a Python object per row."""
    pending: list[pa.RecordBatch] = []
    held = 0

    def blob() -> pa.RecordBatch:
        sink = io.BytesIO()
        table = pa.Table.from_batches(pending)
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return pa.RecordBatch.from_pydict({"ipc": [sink.getvalue()]})

    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        if held >= _CHUNK_ROWS:
            yield blob()
            pending, held = [], 0
    if pending:
        yield blob()


def _scored(
    repo: FeatureRepo, problem: Problem, artifact: ModelArtifact, ts: pd.Timestamp, entities: Any
) -> DataFrame:
    from pyspark.sql import functions as F

    from framework.deploy.batch_runs import entity_rows
    from framework.features.resolve import feature_refs, resolve_features

    session = spark_session(repo.store.config)
    meta = artifact.meta
    kinds = repo.key_kinds(problem)
    keys = list(kinds)
    if entities is not None:
        population = session.createDataFrame(entity_rows(entities, kinds, problem.name))
    else:
        population = _population(session, problem, kinds, int(ts.value // 1_000))
    rows = population.withColumn("event_timestamp", F.lit(ts.to_pydatetime()))
    views = resolve_features(repo, meta.feature_service, None)
    batch_views = [vf for vf in views if not vf.on_demand]
    with spark_errors(f"joining the features of {problem.name!r}"):
        job = repo.store.get_historical_features(entity_df=rows, features=feature_refs(batch_views))
        features = job.to_spark_df()  # type: ignore[attr-defined]  # a SparkRetrievalJob
    model = artifact.load_model()  # checks the signature and the pickle's hash
    plan = {
        "problem": problem.name,
        "version": artifact.version,
        "meta": meta,
        "keys": keys,
        "types": [
            (n, vf.dtypes[n], n in vf.zero_fill, vf.fills.get(n))
            for vf in views
            for n in vf.features
        ],
        "on_demand": [vf.view.to_proto().SerializeToString() for vf in views if vf.on_demand],
        "on_demand_features": {vf.view.name: vf.features for vf in views if vf.on_demand},
    }
    shipped = session.sparkContext.broadcast(model)
    key_types = ", ".join(f"`{k}` {'bigint' if kinds[k] == 'int' else 'string'}" for k in keys)
    schema = f"{key_types}, entity_id string, score double, label int, predicted_class string"
    return features.mapInPandas(partial(_score_partition, plan, shipped), schema)


def _empty(run: dict[str, Any]) -> DataError:
    return DataError(
        f"No entities to score for {run['problem']!r} as of {run['as_of'].isoformat()}; "
        "nothing was written."
    )


def _write_db(
    repo: FeatureRepo,
    scored: DataFrame,
    run: dict[str, Any],
    kinds: dict[str, str],
    db: str | None,
) -> tuple[int, int]:
    import sqlalchemy as sa

    from framework.common.database import BASE_COLUMNS, engine_url, predictions_table, prepare_table
    from framework.deploy.batch_runs import delete_run
    from framework.deploy.bulk import BulkInsert

    url = engine_url(db or repo.prediction_db)
    table = predictions_table(sa, kinds)
    engine = sa.create_engine(url)
    blobs = scored.mapInArrow(_to_ipc, "ipc binary")
    rows = 0
    try:
        prepare_table(sa, engine, table)
        insert = BulkInsert(engine, table)
        with engine.begin() as conn, spark_errors(f"scoring {run['problem']!r}"):
            replaced = delete_run(conn, table, run["problem"], run["model_version"], run["as_of"])
            for row in blobs.toLocalIterator(prefetchPartitions=True):
                chunk = pa.ipc.open_stream(bytes(row["ipc"])).read_all().to_pandas()
                n = len(chunk)
                columns: dict[str, Any] = {
                    **run,
                    "entity_key": ",".join(kinds),
                    "entity_id": chunk["entity_id"].tolist(),
                    "score": chunk["score"].astype(float).tolist(),
                    "label": [None if pd.isna(v) else int(v) for v in chunk["label"]],
                    "predicted_class": chunk["predicted_class"].tolist(),
                    **{k: chunk[k].tolist() for k in kinds if k not in BASE_COLUMNS},
                }
                insert.write(conn, insert.columnar(columns, n))
                rows += n
            if rows == 0:  # raised inside the transaction: the earlier run stays
                raise _empty(run)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(
            f"Writing batch predictions to {url.split('@')[-1]} failed: {exc}"
        ) from exc
    finally:
        engine.dispose()
    return rows, replaced


def _write_parquet(
    session: SparkSession, scored: DataFrame, run: dict[str, Any], output: str
) -> tuple[int, int]:
    from pathlib import Path

    from pyspark.sql import functions as F

    as_of = run["as_of"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    final = str(
        Path(output)
        / f"problem={run['problem']}"
        / f"model_version={run['model_version']}"
        / f"as_of={as_of}"
    )
    Path(final).parent.mkdir(parents=True, exist_ok=True)
    tmp = str(Path(final).with_name(f".{Path(final).name}.{uuid.uuid4().hex}.tmp"))
    out = scored.select(
        F.lit(run["run_id"]).alias("run_id"),
        "*",
        F.lit(run["created_at"]).alias("created_at"),
    )
    with spark_errors(f"scoring {run['problem']!r}"):
        out.write.mode("error").parquet(tmp)
        rows = session.read.parquet(tmp).count()
    if rows == 0:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise _empty(run)
    replaced = 0
    if Path(final).exists():
        with spark_errors("reading the earlier run"):
            replaced = session.read.parquet(final).count()
    move_output(session, tmp, final)
    return rows, replaced


def predict_batch_spark(
    repo: FeatureRepo,
    problem: Problem,
    artifact: ModelArtifact,
    ts: pd.Timestamp,
    *,
    entities: Any = None,
    db: str | None = None,
    output: str | None = None,
) -> BatchRun:
    """Score the population of ``problem`` at ``ts`` on Spark; write the run to the
    database (default) or, with ``output``, to a partitioned parquet dataset."""
    from framework.deploy.batch_runs import BatchRun

    scored = _scored(repo, problem, artifact, ts, entities)
    run = {
        "run_id": str(uuid.uuid4()),
        "problem": problem.name,
        "model_version": artifact.version,
        "as_of": ts.to_pydatetime(),
        "created_at": datetime.now(UTC),
    }
    if output is not None:
        session = spark_session(repo.store.config)
        rows, replaced = _write_parquet(session, scored, run, output)
    else:
        rows, replaced = _write_db(repo, scored, run, repo.key_kinds(problem), db)
    return BatchRun(run["run_id"], problem.name, artifact.version, run["as_of"], rows, replaced)
