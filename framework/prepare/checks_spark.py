"""Check an event log on Spark: each partition against the source's contract, on the
executors; the uniqueness of event ids across the log with one aggregation.

The checks are those of the single-machine path (:func:`framework.prepare.source_checks.check_source`)
run on each partition; a violation raises on the executor and reaches the user as the
same ``DataError``. The driver reads only the schema and the duplicate ids found.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pyarrow as pa

from framework.common.spark import spark_errors, spark_session
from framework.declare.contracts import SourceContract
from framework.declare.repo import EventSource, FeatureRepo
from framework.declare.windows import WindowSpec
from framework.errors import DataError
from framework.prepare.source_checks import check_source

__all__ = ["check_source_spark"]


def _check_partition(
    specs: list[WindowSpec], source: EventSource, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    rows = 0
    for batch in batches:
        if batch.num_rows:
            check_source(specs, source, pa.Table.from_batches([batch]), unique=False)
            rows += batch.num_rows
    yield pa.RecordBatch.from_pydict({"rows": [rows]})


def check_source_spark(repo: FeatureRepo, source: EventSource) -> SourceContract:
    """Check ``source``'s log on Spark; return the contract to record (as ``check_source``)."""
    from pyspark.sql import functions as F

    from framework.declare.repo import infer_contract

    session = spark_session(repo.store.config)
    specs = repo.declared_window_specs
    with spark_errors(f"checking event source {source.name!r} ({source.path})"):
        log = session.read.parquet(source.path)
        counts = log.mapInArrow(partial(_check_partition, specs, source), "rows bigint")
        first = counts.agg(F.sum("rows")).first()
        total = (first[0] if first is not None else 0) or 0
    if total == 0:
        raise DataError(f"{source.path} is empty; it needs at least one row.")
    contract = source.contract
    if contract is None or contract.columns is None:
        inferred = infer_contract(source)
        if contract is not None:
            import dataclasses

            inferred = dataclasses.replace(
                contract, columns=inferred.columns, nullable=inferred.nullable
            )
        contract = inferred
    if contract.event_id:
        with spark_errors(f"checking the event ids of {source.name!r}"):
            repeated = (
                log.groupBy(contract.event_id).count().filter(F.col("count") > 1).limit(3).collect()
            )
        if repeated:
            ids = [r[contract.event_id] for r in repeated]
            raise DataError(
                f"{source.path}: column {contract.event_id!r} must be unique, but values "
                f"repeat, e.g. {ids}. Remove the duplicate events."
            )
    return contract
