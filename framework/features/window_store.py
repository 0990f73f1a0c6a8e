"""Where the online window states live: beside Feast's tables, in the same online store.

Each windowed view has *generations*: a materialization writes every entity's state
under a new generation number, then publishes it in the view's meta record
(generation, T0, B, the spec's digest) together with the tokens of the inbox
files it merged (appended frames of those batches are already in the base and
are skipped by readers), then deletes older generations. Readers and appenders
always use the published generation, read in the same transaction (SQLite) or the
same script (Redis) as the states, so a reader never mixes two generations and an
append never lands in a generation that is being replaced.

- SQLite: tables ``lifecycle_window_meta``, ``lifecycle_window_state`` and
  ``lifecycle_window_merged`` in Feast's online database file. An append is one
  ``INSERT ... ON CONFLICT DO UPDATE SET state = state || excluded.state`` per
  entity, in one write transaction with the generation read.
- Redis: a hash ``lifecycle:<project>:wmeta:<view>``, strings
  ``lifecycle:<project>:w:<view>:<gen>:<entity>`` (appends are ``APPEND``), a set
  ``lifecycle:<project>:wmerged:<view>:<gen>``; reads and appends are Lua scripts
  (atomic, one round trip).

Stock Feast never reads these: its own tables keep the values as of the last
materialization.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from framework.errors import StoreError

__all__ = ["Meta", "RedisWindowStore", "SqliteWindowStore", "WindowStore", "window_store"]

_WRITE_BATCH = 2_000


@dataclass(frozen=True)
class Meta:
    """A view's published generation."""

    gen: int
    t0: int  # us: materialization time; reads are exact at t >= t0
    base: int  # us: B
    digest: str  # spec_digest of the declaration the states were built for


class WindowStore:
    """The interface both stores implement."""

    def meta(self, view: str) -> Meta | None:
        raise NotImplementedError

    def new_generation(self, view: str) -> int:
        raise NotImplementedError

    def write_states(self, view: str, gen: int, states: dict[str, bytes]) -> None:
        raise NotImplementedError

    def publish(self, view: str, meta: Meta, merged: Iterable[bytes]) -> None:
        raise NotImplementedError

    def drop_old(self, view: str, gen: int) -> None:
        raise NotImplementedError

    def merged(self, view: str, gen: int) -> frozenset[bytes]:
        raise NotImplementedError

    def append(self, frames: dict[tuple[str, str], dict[str, bytes]]) -> int:
        """Append the frames of each (view, spec digest) to the view's published
        generation (views not materialized with that spec are skipped); return the
        frames written."""
        raise NotImplementedError

    def read(self, keys: dict[str, list[str]]) -> dict[str, tuple[Meta | None, list[bytes | None]]]:
        """Per view, its meta and the state of each key (None: no state)."""
        raise NotImplementedError


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS lifecycle_window_meta (project TEXT NOT NULL, "
    "view TEXT NOT NULL, gen INTEGER NOT NULL, t0 INTEGER NOT NULL, base INTEGER NOT NULL, "
    "digest TEXT NOT NULL, PRIMARY KEY (project, view))",
    "CREATE TABLE IF NOT EXISTS lifecycle_window_state (project TEXT NOT NULL, "
    "view TEXT NOT NULL, gen INTEGER NOT NULL, key TEXT NOT NULL, state BLOB NOT NULL, "
    "PRIMARY KEY (project, view, gen, key))",
    "CREATE TABLE IF NOT EXISTS lifecycle_window_merged (project TEXT NOT NULL, "
    "view TEXT NOT NULL, gen INTEGER NOT NULL, token BLOB NOT NULL, "
    "PRIMARY KEY (project, view, gen, token)) WITHOUT ROWID",
)


class SqliteWindowStore(WindowStore):
    """The states in Feast's SQLite online database (one connection per thread)."""

    def __init__(self, path: str, project: str) -> None:
        self.path = path
        self.project = project
        self._local = threading.local()
        self._ready = False

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            if not self._ready:
                for sql in _SCHEMA:
                    conn.execute(sql)
                self._ready = True
            self._local.conn = conn
        return conn

    def _run(self, fn: Any, write: bool = False) -> Any:
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                out = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return out
        except sqlite3.Error as exc:
            raise StoreError(f"The online window state ({self.path}) failed: {exc}") from exc

    def meta(self, view: str) -> Meta | None:
        row = self._run(
            lambda c: c.execute(
                "SELECT gen, t0, base, digest FROM lifecycle_window_meta "
                "WHERE project = ? AND view = ?",
                (self.project, view),
            ).fetchone()
        )
        return Meta(*row) if row else None

    def new_generation(self, view: str) -> int:
        def fn(c: sqlite3.Connection) -> int:
            args = (self.project, view)
            a = c.execute(
                "SELECT max(gen) FROM lifecycle_window_meta WHERE project = ? AND view = ?", args
            ).fetchone()[0]
            b = c.execute(
                "SELECT max(gen) FROM lifecycle_window_state WHERE project = ? AND view = ?", args
            ).fetchone()[0]
            return max(a or 0, b or 0) + 1

        return int(self._run(fn))

    def write_states(self, view: str, gen: int, states: dict[str, bytes]) -> None:
        items = list(states.items())
        for lo in range(0, len(items), _WRITE_BATCH):
            rows = [(self.project, view, gen, k, s) for k, s in items[lo : lo + _WRITE_BATCH]]
            self._run(
                lambda c, rows=rows: c.executemany(
                    "INSERT OR REPLACE INTO lifecycle_window_state VALUES (?, ?, ?, ?, ?)", rows
                ),
                write=True,
            )

    def publish(self, view: str, meta: Meta, merged: Iterable[bytes]) -> None:
        tokens = [(self.project, view, meta.gen, t) for t in set(merged)]

        def fn(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT OR IGNORE INTO lifecycle_window_merged VALUES (?, ?, ?, ?)", tokens
            )
            c.execute(
                "INSERT OR REPLACE INTO lifecycle_window_meta VALUES (?, ?, ?, ?, ?, ?)",
                (self.project, view, meta.gen, meta.t0, meta.base, meta.digest),
            )

        self._run(fn, write=True)

    def drop_old(self, view: str, gen: int) -> None:
        def fn(c: sqlite3.Connection) -> None:
            for table in ("lifecycle_window_state", "lifecycle_window_merged"):
                c.execute(
                    f"DELETE FROM {table} WHERE project = ? AND view = ? AND gen != ?",
                    (self.project, view, gen),
                )

        self._run(fn, write=True)

    def merged(self, view: str, gen: int) -> frozenset[bytes]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT token FROM lifecycle_window_merged WHERE project = ? AND view = ? "
                "AND gen = ?",
                (self.project, view, gen),
            ).fetchall()
        )
        return frozenset(bytes(r[0]) for r in rows)

    def append(self, frames: dict[tuple[str, str], dict[str, bytes]]) -> int:
        def fn(c: sqlite3.Connection) -> int:
            written = 0
            for (view, digest), by_key in frames.items():
                row = c.execute(
                    "SELECT gen FROM lifecycle_window_meta WHERE project = ? AND view = ? "
                    "AND digest = ?",
                    (self.project, view, digest),
                ).fetchone()
                if row is None or not by_key:
                    continue
                c.executemany(
                    "INSERT INTO lifecycle_window_state VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (project, view, gen, key) DO UPDATE "
                    "SET state = CAST(state || excluded.state AS BLOB)",
                    [(self.project, view, row[0], k, f) for k, f in by_key.items()],
                )
                written += len(by_key)
            return written

        return int(self._run(fn, write=True))

    def read(self, keys: dict[str, list[str]]) -> dict[str, tuple[Meta | None, list[bytes | None]]]:
        # One statement per view: the meta and its generation's states in one snapshot.
        try:
            conn = self._conn()
            out: dict[str, tuple[Meta | None, list[bytes | None]]] = {}
            for view, wanted in keys.items():
                meta: Meta | None = None
                found: dict[str, bytes] = {}
                for lo in range(0, max(len(wanted), 1), 500):
                    part = wanted[lo : lo + 500]
                    marks = ", ".join("?" * len(part))
                    rows = conn.execute(
                        "SELECT m.gen, m.t0, m.base, m.digest, s.key, s.state "
                        "FROM lifecycle_window_meta m LEFT JOIN lifecycle_window_state s "
                        "ON s.project = m.project AND s.view = m.view AND s.gen = m.gen "
                        f"AND s.key IN ({marks}) WHERE m.project = ? AND m.view = ?",
                        (*part, self.project, view),
                    ).fetchall()
                    for gen, t0, base, digest, key, state in rows:
                        if meta is not None and meta.gen != gen:  # published between parts
                            return self.read(keys)
                        meta = Meta(gen, t0, base, digest)
                        if key is not None:
                            found[key] = state
                out[view] = (meta, [found.get(k) for k in wanted])
            return out
        except sqlite3.Error as exc:
            raise StoreError(f"The online window state ({self.path}) failed: {exc}") from exc


_READ = """
local prefix = ARGV[1]
local out = {}
local i = 3
for v = 1, tonumber(ARGV[2]) do
  local view = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  local meta = redis.call('HMGET', prefix .. 'wmeta:' .. view, 'gen', 't0', 'base', 'digest')
  for j = 1, 4 do out[#out + 1] = meta[j] end
  for j = 0, n - 1 do
    if meta[1] then
      out[#out + 1] = redis.call('GET', prefix .. 'w:' .. view .. ':' .. meta[1] .. ':' .. ARGV[i + j])
    else
      out[#out + 1] = false
    end
  end
  i = i + n
end
return out
"""

_APPEND = """
local prefix = ARGV[1]
local written = 0
local i = 3
for v = 1, tonumber(ARGV[2]) do
  local view = ARGV[i]
  local digest = ARGV[i + 1]
  local n = tonumber(ARGV[i + 2])
  i = i + 3
  local meta = redis.call('HMGET', prefix .. 'wmeta:' .. view, 'gen', 'digest')
  local gen = meta[1]
  if gen and meta[2] == digest then
    for j = 0, n - 1 do
      redis.call('APPEND', prefix .. 'w:' .. view .. ':' .. gen .. ':' .. ARGV[i + 2 * j],
                 ARGV[i + 2 * j + 1])
      written = written + 1
    end
  end
  i = i + 2 * n
end
return written
"""


class RedisWindowStore(WindowStore):
    """The states in Feast's Redis online store (same connection settings)."""

    def __init__(self, client: Any, project: str) -> None:
        self.client = client
        self.prefix = f"lifecycle:{project}:"
        self._read = client.register_script(_READ)
        self._append = client.register_script(_APPEND)

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:  # any client error: the store is unavailable
            raise StoreError(f"The online window state (Redis) failed: {exc}") from exc

    def meta(self, view: str) -> Meta | None:
        raw = self._call(
            lambda: self.client.hmget(f"{self.prefix}wmeta:{view}", "gen", "t0", "base", "digest")
        )
        return _meta(raw)

    def new_generation(self, view: str) -> int:
        return int(self._call(lambda: self.client.incr(f"{self.prefix}wgen:{view}")))

    def write_states(self, view: str, gen: int, states: dict[str, bytes]) -> None:
        items = list(states.items())
        for lo in range(0, len(items), _WRITE_BATCH):
            part = {f"{self.prefix}w:{view}:{gen}:{k}": s for k, s in items[lo : lo + _WRITE_BATCH]}
            self._call(lambda part=part: self.client.mset(part))

    def publish(self, view: str, meta: Meta, merged: Iterable[bytes]) -> None:
        def fn() -> None:
            pipe = self.client.pipeline(transaction=True)
            key = f"{self.prefix}wmerged:{view}:{meta.gen}"
            pipe.delete(key)
            tokens = list(set(merged))
            if tokens:
                pipe.sadd(key, *tokens)
            pipe.hset(
                f"{self.prefix}wmeta:{view}",
                mapping={"gen": meta.gen, "t0": meta.t0, "base": meta.base, "digest": meta.digest},
            )
            pipe.execute()

        self._call(fn)

    def drop_old(self, view: str, gen: int) -> None:
        def fn() -> None:
            keep = f"{self.prefix}w:{view}:{gen}:".encode()
            keep_merged = f"{self.prefix}wmerged:{view}:{gen}".encode()
            for pattern in (f"{self.prefix}w:{view}:*", f"{self.prefix}wmerged:{view}:*"):
                batch: list[bytes] = []
                for key in self.client.scan_iter(match=pattern, count=1000):
                    raw = key if isinstance(key, bytes) else str(key).encode()
                    if not raw.startswith(keep) and raw != keep_merged:
                        batch.append(raw)
                    if len(batch) >= 1000:
                        self.client.unlink(*batch)
                        batch = []
                if batch:
                    self.client.unlink(*batch)

        self._call(fn)

    def merged(self, view: str, gen: int) -> frozenset[bytes]:
        members = self._call(lambda: self.client.smembers(f"{self.prefix}wmerged:{view}:{gen}"))
        return frozenset(m if isinstance(m, bytes) else str(m).encode() for m in members)

    def append(self, frames: dict[tuple[str, str], dict[str, bytes]]) -> int:
        args: list[Any] = [self.prefix, len(frames)]
        for (view, digest), by_key in frames.items():
            args += [view, digest, len(by_key)]
            for k, f in by_key.items():
                args += [k, f]
        return int(self._call(lambda: self._append(keys=[], args=args)))

    def read(self, keys: dict[str, list[str]]) -> dict[str, tuple[Meta | None, list[bytes | None]]]:
        args: list[Any] = [self.prefix, len(keys)]
        for view, wanted in keys.items():
            args += [view, len(wanted), *wanted]
        raw = self._call(lambda: self._read(keys=[], args=args))
        out: dict[str, tuple[Meta | None, list[bytes | None]]] = {}
        pos = 0
        for view, wanted in keys.items():
            meta = _meta(raw[pos : pos + 4])
            pos += 4
            out[view] = (meta, list(raw[pos : pos + len(wanted)]))
            pos += len(wanted)
        return out


def _meta(raw: list[Any]) -> Meta | None:
    if not raw or raw[0] is None:
        return None
    gen, t0, base, digest = raw
    text = digest.decode() if isinstance(digest, bytes) else str(digest)
    return Meta(int(gen), int(t0), int(base), text)


_STORES: dict[tuple[str, str], WindowStore] = {}
_LOCK = threading.Lock()


def window_store(store: Any) -> WindowStore | None:
    """The window store beside a Feast store's online store (None: neither SQLite nor
    Redis, and windowed views are read from Feast's values as of materialization)."""
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    config = store.config
    online = store._get_provider().online_store
    if isinstance(online, SqliteOnlineStore):
        path = online._get_db_path(config)
        key = ("sqlite", f"{path}|{config.project}")
        with _LOCK:
            if key not in _STORES:
                _STORES[key] = SqliteWindowStore(path, config.project)
            return _STORES[key]
    if isinstance(online, RedisOnlineStore):
        client = online._get_client(config.online_store)
        return RedisWindowStore(client, config.project)
    return None
