"""Online lookups without Feast's per-request registry work: the read path of serving.

Windowed views with a published online state (:mod:`framework.features.window_state`)
are answered exactly at each row's time from that state, all of them in one store
call; other views are read from Feast's tables as below.

Feast's ``FeatureStore.get_online_features`` rebuilds the feature service's view
objects from registry protos on every call (about 10 ms here, whatever the
number of entities). ``OnlineReader(repo, service)`` resolves the service once,
then per request asks the online store itself (``provider.online_read``: the
same SQLite or Redis reads Feast makes) for each stored view and runs each
on-demand view's own transformation, as the offline engine does.

``reader(repo, service)`` keeps one reader per service and builds a new one when
the registry changes (its file's modification time; a SQL registry is re-read
every ``REGISTRY_TTL_S`` seconds, as ``feast serve`` does).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from framework.declare.repo import FeatureRepo
from framework.errors import DataError, StoreError
from framework.features.window_eval import Evaluator
from framework.features.window_state import DamagedState, decode_frames, spec_digest
from framework.features.window_store import window_store

__all__ = ["DAMAGED_STATES", "REGISTRY_TTL_S", "OnlineReader", "reader"]

_log = logging.getLogger(__name__)


class _Tally:
    """A count shared by the process's threads."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


# Online-store values that did not decode as a window state (a shared Redis written by
# someone else, a truncated value): the entity's features of that view are absent (its
# feature_status says defaults or partial), a warning names the view and key, and
# /metrics counts them (lifecycle_online_state_damaged_total).
DAMAGED_STATES = _Tally()


def _damaged(view: str, key: str, exc: Exception) -> None:
    DAMAGED_STATES.add()
    _log.warning(
        "The online state of view %s for entity %s is damaged (%s: %s): its features are "
        "absent; `lifecycle materialize` rewrites it.",
        view,
        key,
        type(exc).__name__,
        exc,
    )


REGISTRY_TTL_S = 60
_SCALARS = frozenset(
    ("int32_val", "int64_val", "double_val", "float_val", "string_val", "bool_val")
)


def _python(value: Any) -> Any:
    """A stored ValueProto as the Python value Feast's ``to_dict`` gives."""
    kind = value.WhichOneof("val")
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind is None or kind == "null_val":
        return None
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value)


class OnlineReader:
    """Reads one feature service (or the given views) from the online store."""

    def __init__(self, repo: FeatureRepo, views: list) -> None:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        self.repo = repo
        self.views = views
        self.stored = [vf for vf in views if not vf.on_demand]
        self.keys = {
            vf.view.name: [(c.name, c.dtype.to_value_type()) for c in vf.view.entity_columns]
            for vf in self.stored
        }
        store = repo.store
        self.config = store.config
        self.provider = store._get_provider()
        self._entity_key = EntityKey
        self._value = Value
        self.windowed = _windowed(self.stored)
        self._positions = {  # each read feature's position among its view's features
            vf.view.name: [
                self.windowed[vf.view.name][0].feature_names.index(f) for f in vf.features
            ]
            for vf in self.stored
            if vf.view.name in self.windowed
        }
        self.states = window_store(store) if self.windowed else None
        self._merged: dict[tuple[str, int], frozenset[bytes]] = {}

    @staticmethod
    def supports(views: list) -> bool:
        """Stored views keyed by integers or strings (one key or several), with any
        on-demand views."""
        from feast.value_type import ValueType

        kinds = (ValueType.INT64, ValueType.INT32, ValueType.STRING)
        return all(
            vf.on_demand or all(c.dtype.to_value_type() in kinds for c in vf.view.entity_columns)
            for vf in views
        )

    def _entity_keys(self, view: str, frame: pd.DataFrame) -> list:
        from feast.value_type import ValueType

        join = self.keys[view]
        names = [k for k, _ in join]
        columns = []
        for key, kind in join:
            values = frame[key].tolist()
            if kind == ValueType.STRING:
                columns.append([self._value(string_val=str(v)) for v in values])
            elif kind == ValueType.INT32:
                columns.append([self._value(int32_val=int(v)) for v in values])
            else:
                columns.append([self._value(int64_val=int(v)) for v in values])
        return [
            self._entity_key(join_keys=names, entity_values=list(vals))
            for vals in zip(*columns, strict=True)
        ]

    def read(
        self, frame: pd.DataFrame, early: str = "refuse"
    ) -> tuple[dict[str, Any], dict[str, list[bool]]]:
        """Values per feature for ``frame``'s rows (keys and event_timestamp): a list per
        stored feature, a Series per on-demand one; and per stored view whether the
        store had the entity."""
        out: dict[str, Any] = {}
        found: dict[str, list[bool]] = {}
        exact = self._read_windows(frame, out, found, early)
        for vf in self.stored:
            if vf.view.name in exact:
                continue
            # each distinct key once (a ranking's 100 candidates share one user)
            names = [k for k, _ in self.keys[vf.view.name]]
            codes, distinct = _distinct_rows(frame, names)
            entity_keys = self._entity_keys(vf.view.name, distinct)
            try:
                rows = self.provider.online_read(
                    config=self.config,
                    table=vf.view,
                    entity_keys=entity_keys,
                    requested_features=list(vf.features),  # Redis appends to it
                )
            except Exception as exc:  # any driver error: the store is unavailable
                raise StoreError(f"Reading the online store failed: {exc}") from exc
            columns = [
                [_python(values[name]) if values and name in values else None for _, values in rows]
                for name in vf.features
            ]
            if codes is not None:
                columns = [[column[c] for c in codes] for column in columns]
            out.update(zip(vf.features, columns, strict=True))
            # As Feast reports it: a view "has" the entity when any of its values is set
            # (Redis answers an unknown key with empty values, SQLite with nothing).
            found[vf.view.name] = [
                any(v is not None for v in row) for row in zip(*columns, strict=True)
            ]
        on_demand = [vf for vf in self.views if vf.on_demand]
        for vf in on_demand:
            produced = vf.view.feature_transformation.transform(frame)
            for name in vf.features:
                out[name] = pd.Series(produced[name].array, index=frame.index)
        return out, found

    def _read_windows(
        self,
        frame: pd.DataFrame,
        out: dict[str, Any],
        found: dict[str, list[bool]],
        early: str = "refuse",
    ) -> set[str]:
        """Exact values of the windowed views with a published state, at each row's
        time (one store call for all of them); returns the views answered."""
        if self.states is None or not len(frame):
            return set()
        from framework.features.resolve import TIMESTAMP

        texts: dict[str, list[str]] = {}
        by_keys: dict[tuple[str, ...], list[str]] = {}
        for name, (spec, _, _) in self.windowed.items():
            if spec.entity_keys not in by_keys:
                by_keys[spec.entity_keys] = _texts(frame, spec.entity_keys)
            texts[name] = by_keys[spec.entity_keys]
        distinct = {name: list(dict.fromkeys(keys)) for name, keys in texts.items()}
        got = self.states.read(distinct)  # each distinct key once
        times = frame[TIMESTAMP].array.as_unit("us").asi8.tolist()
        answered = set()
        for vf in self.stored:
            name = vf.view.name
            if name not in self.windowed:
                continue
            spec, digest, evaluate = self.windowed[name]
            meta, by_distinct = got[name]
            blobs = dict(zip(distinct[name], by_distinct, strict=True))
            if meta is None or meta.digest != digest:
                continue  # never materialized with this declaration: Feast's values
            if early == "clamp":
                view_times = [max(t, meta.t0) for t in times]
            else:
                _check_times(name, times, meta.t0)
                view_times = times
            merged = self._merged_tokens(name, meta.gen)
            wanted = self._positions[name]
            columns: list[list[Any]] = [[] for _ in wanted]
            has: list[bool] = []
            decoded: dict[str, Any] = {}
            memo: dict[tuple[str, int], list[Any]] = {}
            for key, t in zip(texts[name], view_times, strict=True):
                if key not in decoded:
                    blob = blobs[key]
                    try:
                        decoded[key] = decode_frames(blob, merged) if blob is not None else None
                    except DamagedState as exc:
                        _damaged(name, key, exc)
                        decoded[key] = None
                state = decoded[key]
                # As Feast reports it: the view knows the entity once it has an event
                known = state is not None and (
                    state.base is not None or (bool(state.times) and state.times[0] <= t)
                )
                has.append(known)
                if state is None:
                    for c in columns:
                        c.append(None)
                    continue
                values = memo.get((key, t))
                if values is None:
                    try:
                        values = memo[(key, t)] = evaluate(state, t)
                    except (
                        TypeError,
                        ValueError,
                        IndexError,
                        KeyError,
                        OverflowError,
                        StopIteration,
                    ) as exc:
                        # decoded, but not what this module writes (a crafted value)
                        _damaged(name, key, exc)
                        decoded[key], has[-1] = None, False
                        for c in columns:
                            c.append(None)
                        continue
                for c, i in zip(columns, wanted, strict=True):
                    c.append(values[i])
            out.update(zip(vf.features, columns, strict=True))
            found[name] = has
            answered.add(name)
        return answered

    def _merged_tokens(self, view: str, gen: int) -> frozenset[bytes]:
        key = (view, gen)
        if key not in self._merged:
            assert self.states is not None
            self._merged = {k: v for k, v in self._merged.items() if k[0] != view}
            self._merged[key] = self.states.merged(view, gen)
        return self._merged[key]


def _windowed(stored: list) -> dict[str, tuple[Any, str, Evaluator]]:
    """The windowed views among ``stored``: (spec, digest, evaluator) by view name."""
    from framework.declare.windows import WindowSpec

    out = {}
    for vf in stored:
        spec = WindowSpec.from_feature_view(vf.view)
        if spec is not None:
            out[vf.view.name] = (spec, spec_digest(spec), Evaluator(spec))
    return out


def _texts(frame: pd.DataFrame, keys: tuple[str, ...]) -> list[str]:
    """``entity_text`` of each row (one key: its value as text)."""
    from framework.common.keys import entity_text

    if len(keys) == 1:
        return [str(v) for v in frame[keys[0]].tolist()]
    columns = [frame[k].tolist() for k in keys]
    return [entity_text(list(row)) for row in zip(*columns, strict=True)]


def _check_times(view: str, times: list[int], t0: int) -> None:
    early = [t for t in times if t < t0]
    if early:
        import pandas as pd

        at = pd.Timestamp(min(early), unit="us", tz="UTC")
        since = pd.Timestamp(t0, unit="us", tz="UTC")
        raise DataError(
            f"event_timestamp {at} is before the last materialization of {view!r} "
            f"({since}); online values are exact from then on. Read at a later time, or "
            "use `lifecycle features historical` for earlier times."
        )


def _distinct_rows(frame: pd.DataFrame, names: list[str]) -> tuple[list[int] | None, pd.DataFrame]:
    """The distinct key rows of ``frame`` and each row's index among them (None: all
    rows are distinct already)."""
    if len(frame) < 2:
        return None, frame
    codes, uniques = pd.factorize(
        pd.MultiIndex.from_frame(frame[names]) if len(names) > 1 else frame[names[0]]
    )
    if len(uniques) == len(frame):
        return None, frame
    first = np.unique(codes, return_index=True)[1]  # codes number keys by first appearance
    return codes.tolist(), frame.iloc[first]


_READERS: dict[tuple[str, str, str | None], tuple[Any, OnlineReader | None]] = {}
_LOCK = threading.Lock()


def _registry_stamp(repo: FeatureRepo) -> Any:
    path = repo.store.config.registry.path
    if "://" not in str(path):
        full = path if os.path.isabs(path) else os.path.join(repo.path, path)
        try:
            return os.stat(full).st_mtime_ns
        except OSError:
            return None
    return int(time.monotonic() // REGISTRY_TTL_S)


def reader(
    repo: FeatureRepo, service: str | None, features: list[str] | None = None
) -> OnlineReader | None:
    """The cached reader of ``service`` (None when the views need Feast's general path)."""
    from framework.features.resolve import resolve_features

    key = (str(repo.fs_yaml), service or "", ",".join(features) if features else None)
    stamp = _registry_stamp(repo)
    hit = _READERS.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    with _LOCK:
        hit = _READERS.get(key)
        if hit is None or hit[0] != stamp:
            if stamp is not None and hit is not None:
                repo.store.refresh_registry()
            views = resolve_features(repo, service, features)
            built = OnlineReader(repo, views) if OnlineReader.supports(views) else None
            hit = (stamp, built)
            _READERS[key] = hit
    return hit[1]
