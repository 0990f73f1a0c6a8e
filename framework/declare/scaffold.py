"""Start a feature repository, the way ``feast init`` does, from the user's own events.

``init_repo(folder)`` writes ``feature_store.yaml`` on the embedded stores
(DuckDB, SQLite, a file registry) and, given an event file, reads its schema
and writes the declarations: the source (the file is copied under ``data/``),
the entity for the key column, a starter windowed view (counts and sums of the
numeric columns over 7, 30 and 90 days, a filtered count for each of the top
values of every low-cardinality string column) and a feature service. Then
``lifecycle apply`` and ``lifecycle features historical`` work on the data.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from framework.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["InitResult", "init_repo"]

_TOP_VALUES = 3  # filtered counts per low-cardinality string column
_LOW_CARDINALITY = 20

_YAML = """\
# Embedded profile: no server needed (written by `lifecycle init`).
#   offline store: DuckDB over parquet files under data/
#   online store:  SQLite file data/online_store.db
#   registry:      file data/registry.db
project: {project}
provider: local
registry: data/registry.db
offline_store:
  type: duckdb
online_store:
  type: sqlite
  path: data/online_store.db
entity_key_serialization_version: 3
"""


@dataclass(frozen=True)
class InitResult:
    """What ``init_repo`` wrote, and the starter view's features."""

    folder: Path
    files: list[Path]
    features: list[str]


def _identifier(text: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    return name if name and name[0].isalpha() else f"x_{name}"


def _read_events(path: Path) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    if not path.exists():
        raise DataError(f"Event file {path} does not exist.")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"Event file {path} cannot be read: {exc}") from exc
    raise DataError(f"Event file {path} must be .parquet or .csv.")


def _guess(frame: pd.DataFrame, wanted: str | None, kind: str, what: str, flag: str) -> str:
    import pandas as pd

    if wanted is not None:
        if wanted not in frame.columns:
            import difflib

            close = difflib.get_close_matches(wanted, list(frame.columns), n=3)
            raise ConfigError(
                f"{flag} {wanted!r} is not a column of the events; close matches: {close}; "
                f"columns: {list(frame.columns)}."
            )
        return wanted
    if kind == "timestamp":
        found = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    else:
        found = [c for c in frame.columns if c.endswith("_id") or c == "id"]
    if len(found) == 1:
        return str(found[0])
    raise ConfigError(
        f"Which column is the {what}? Found {found or 'none'} among {list(frame.columns)}; "
        f"name it with {flag} COLUMN."
    )


def _localized(ts: pd.Series, column: str, timezone: str | None) -> pd.Series:
    """The event times with a zone: as stored, or naive ones read in ``timezone``."""
    import pandas as pd

    if not pd.api.types.is_datetime64_any_dtype(ts):
        raise DataError(f"{column!r} holds {ts.dtype}, not timestamps; pick the event time.")
    if getattr(ts.dt, "tz", None) is not None:
        if timezone is not None:
            raise ConfigError(
                f"--timezone is for timezone-naive times, but {column!r} already carries the "
                f"zone {ts.dt.tz}; drop --timezone."
            )
        return ts
    if timezone is None:
        raise DataError(
            f"{column!r} holds timezone-naive timestamps, refused as ambiguous; say which zone "
            "they are in with --timezone (e.g. --timezone UTC or --timezone Europe/Berlin), or "
            "store them with a zone."
        )
    try:
        return ts.dt.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
    except Exception as exc:  # unknown zone names and DST gaps/overlaps alike
        raise ConfigError(
            f"--timezone {timezone!r} cannot place {column!r}: {exc}. Give an IANA zone name "
            "such as UTC or Europe/Berlin."
        ) from exc


def init_repo(
    folder: str | Path,
    *,
    events: str | Path | None = None,
    key: str | None = None,
    timestamp: str | None = None,
    timezone: str | None = None,
) -> InitResult:
    """Write a new repo in ``folder`` (which must not hold a feature_store.yaml yet).

    Every check runs before anything is written: a refused input leaves ``folder``
    as it was, so the same command can run again once its input is fixed.
    Timezone-naive event times are refused unless ``timezone`` names their zone.
    """
    import pandas as pd

    root = Path(folder)
    if (root / "feature_store.yaml").exists():
        raise ConfigError(f"{root} already holds a feature_store.yaml; init starts a new repo.")
    project = _identifier(root.resolve().name) or "features"
    if events is None:
        if timezone is not None:
            raise ConfigError("--timezone applies to --events; give the event file too.")
        root.mkdir(parents=True, exist_ok=True)
        (root / "feature_store.yaml").write_text(_YAML.format(project=project))
        (root / "data").mkdir(exist_ok=True)
        return InitResult(root, [root / "feature_store.yaml"], [])
    frame = _read_events(Path(events))
    if frame.empty:
        raise DataError(f"{events} holds no rows; init reads the schema and values from them.")
    key = _guess(frame, key, "key", "entity key", "--key")
    timestamp = _guess(frame, timestamp, "timestamp", "event time", "--timestamp")
    ts = frame[timestamp]
    localized = _localized(ts, timestamp, timezone)
    rewrite = localized is not ts or Path(events).suffix.lower() != ".parquet"
    frame = frame.assign(**{timestamp: localized})
    name = _identifier(Path(events).stem)
    target = root / "data" / f"{name}.parquet"
    entity = _identifier(key[:-3] if key.endswith("_id") else key)
    is_int = pd.api.types.is_integer_dtype(frame[key])
    aggregates = ['        Aggregate("events", "count"),']
    features = ["events_count"]
    for col in frame.columns:
        if col in (key, timestamp):
            continue
        series = frame[col]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            aggregates.append(f'        Aggregate("{_identifier(col)}", "sum", column="{col}"),')
            features.append(f"{_identifier(col)}_sum")
        elif pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
            counts = series.dropna().astype(str).value_counts()
            if 0 < len(counts) <= _LOW_CARDINALITY:
                for value in counts.index[:_TOP_VALUES]:
                    label = _identifier(f"{col}_{value}")
                    if f"{label}_count" in features:
                        continue
                    text = value.replace("\\", "\\\\").replace("'", "\\'")
                    aggregates.append(
                        f'        Aggregate("{label}", "count", where=\'{col} == "{text}"\'),'
                    )
                    features.append(f"{label}_count")
    files = {
        "sources.py": f'''"""The event source (written by `lifecycle init` from {Path(events).name})."""

from pathlib import Path

from feast import FileSource

DATA = Path(__file__).resolve().parent / "data"

{name} = FileSource(
    name="{name}",
    path=str(DATA / "{target.name}"),
    timestamp_field="{timestamp}",
)
''',
        "entities.py": f'''"""Entities (written by `lifecycle init`)."""

from feast import Entity, ValueType

{entity} = Entity(
    name="{entity}",
    join_keys=["{key}"],
    value_type=ValueType.{"INT64" if is_int else "STRING"},
)
''',
        "features.py": f'''"""A starter windowed view (written by `lifecycle init`): edit the windows and aggregates."""

from entities import {entity}
from sources import {name}

from framework import Aggregate, WindowedFeatureView

{entity}_activity = WindowedFeatureView(
    name="{entity}_activity",
    entity={entity},
    source={name},
    windows=[7, 30, 90],
    aggregates=[
{chr(10).join(aggregates)}
    ],
)
''',
        "services.py": f'''"""Feature services (written by `lifecycle init`)."""

from feast import FeatureService
from features import {entity}_activity

{entity}_features_v1 = FeatureService(name="{entity}_features_v1", features=[{entity}_activity])
''',
    }
    # accepted: now write, the data first and feature_store.yaml last (its presence
    # is what marks the folder as a repo)
    target.parent.mkdir(parents=True, exist_ok=True)
    if rewrite:
        frame.to_parquet(target, index=False)
    else:
        shutil.copy(events, target)
    written = []
    for file, text in files.items():
        (root / file).write_text(text)
        written.append(root / file)
    (root / "feature_store.yaml").write_text(_YAML.format(project=project))
    written.insert(0, root / "feature_store.yaml")
    windows = ("7d", "30d", "90d")
    return InitResult(
        root, [*written, target], [f"{entity}_{f}_{w}" for f in features for w in windows]
    )
