"""The Spark profile: is it selected, and the session it runs on.

A repo selects Spark by configuration only: its ``feature_store.yaml`` (or the file
``LIFECYCLE_FS_YAML`` names) says ``offline_store: type: spark`` with a
``spark_conf`` (``spark.master``: ``local[*]`` on a laptop, a cluster's master URL
in production), and ``batch_engine: type: spark.engine`` for materialization.
Nothing imports pyspark unless a repo selects it.

The session is Feast's own: the offline store's ``spark_conf`` plus the defaults
below (UTC session time zone, Arrow transfers, the driver's Python for the Python
workers of a local master), created once per process and shared with Feast.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from framework.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["is_spark", "move_output", "spark_errors", "spark_session"]

DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    # tables Spark writes read back as pyarrow and DuckDB write them: UTC microseconds
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


def is_spark(store_config: Any) -> bool:
    """Does this Feast repo config select the Spark offline store?"""
    return getattr(store_config.offline_store, "type", "") == "spark"


def _check_runtime() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "The repo selects the Spark profile (offline_store: type: spark), but pyspark "
            "is not installed. Install the extra: pip install -c constraints.txt "
            "'lifecycle-framework[spark]' (pyspark 4, which needs a Java 17 runtime)."
        ) from exc
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise ConfigError(
            "The Spark profile needs a Java 17 runtime and none is on PATH (nor JAVA_HOME "
            "set); install one, e.g. Debian's openjdk-17-jre-headless."
        )


def spark_session(store_config: Any) -> SparkSession:
    """The process's Spark session, started from the offline store's ``spark_conf``."""
    _check_runtime()
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    conf = dict(DEFAULTS)
    conf.update(getattr(store_config.offline_store, "spark_conf", None) or {})
    master = conf.setdefault("spark.master", "local[*]")
    if master.startswith("local"):
        # Python workers of a local master run this interpreter (the venv's packages).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf.setdefault("spark.pyspark.python", sys.executable)
    conf.setdefault("spark.app.name", f"lifecycle-{store_config.project}")
    try:
        session = SparkSession.builder.config(
            conf=SparkConf().setAll(list(conf.items()))
        ).getOrCreate()
    except Exception as exc:  # py4j / JVM start-up errors
        raise ConfigError(f"Starting Spark (master {master}) failed: {exc}") from exc
    session.sparkContext.setLogLevel("FATAL")  # our errors name the failure
    return session


def move_output(session: SparkSession, tmp: str, final: str) -> None:
    """Replace ``final`` (a file or a directory) with the directory ``tmp`` Spark wrote,
    on whatever file system the path names (local, HDFS, object stores through Hadoop)."""
    context: Any = session.sparkContext
    jvm = context._jvm
    hconf = context._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path
    fs = path(final).getFileSystem(hconf)
    old = path(final + f".old-{os.getpid()}")
    target = path(final)
    had = fs.exists(target)
    if had:
        fs.rename(target, old)
    if not fs.rename(path(tmp), target):
        if had:
            fs.rename(old, target)
        raise ConfigError(f"Could not move Spark's output {tmp} to {final}.")
    if had:
        fs.delete(old, True)


@contextlib.contextmanager
def spark_errors(what: str) -> Iterator[None]:
    """Re-raise Spark's errors as ours: an error our code raised on an executor keeps
    its class (a DataError in the events stays a DataError), others become StoreError."""
    from framework import errors

    try:
        yield
    except errors.LifecycleError:
        raise
    except Exception as exc:
        text = str(exc)
        found = re.search(r"framework\.errors\.(\w+): ", text)
        cls = getattr(errors, found.group(1), None) if found else None
        if found and isinstance(cls, type) and issubclass(cls, errors.LifecycleError):
            lines = []
            for line in text[found.end() :].splitlines():
                if not line.strip() or line.startswith(("\tat ", "Traceback", "JVM stacktrace")):
                    break
                lines.append(line.rstrip())
            message = "\n".join(lines)
            try:
                raise cls(message) from exc
            except TypeError:  # a class built from parts (RefusedEvents): its base
                raise errors.DataError(message) from exc
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise errors.StoreError(f"Spark failed while {what}: {first}") from exc
