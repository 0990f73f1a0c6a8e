"""The stores the two profiles use: Redis, PostgreSQL (a schema per test), Spark and Java,
and a TCP switch that takes a database away and gives it back."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import uuid

REDIS = os.environ.get("LIFECYCLE_TEST_REDIS", "127.0.0.1:6379")


REDIS_DB = 15


PROFILE_REDIS_DB = 14  # the production profile's online store (flushed after the run)


POSTGRES = os.environ.get("LIFECYCLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


PROFILES = ("embedded", "production")


PROFILE: dict = {"name": "embedded", "schemas": []}  # the schemas are dropped after the run


def pg_admin():
    import sqlalchemy as sa

    return sa.create_engine("postgresql+psycopg://" + POSTGRES.split("://", 1)[1])


def new_pg_schema(prefix: str = "t") -> str:
    """A PostgreSQL URL (the test database) whose tables land in a new, empty schema."""
    import sqlalchemy as sa

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    engine = pg_admin()
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    PROFILE["schemas"].append(schema)
    return f"{POSTGRES}?options=-csearch_path%3D{schema}"


def production() -> bool:
    return PROFILE["name"] == "production"


def redis_unavailable() -> str | None:
    try:
        import redis

        host, _, port = REDIS.partition(":")
        redis.Redis(host=host, port=int(port or 6379), db=REDIS_DB, socket_timeout=2).ping()
        return None
    except Exception as exc:  # any failure means: no usable server
        return f"Redis at {REDIS} is not reachable ({type(exc).__name__}: {exc})"


def postgres_unavailable() -> str | None:
    try:
        import psycopg

        psycopg.connect(POSTGRES, connect_timeout=3).close()
        return None
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES} is not reachable ({type(exc).__name__}: {exc})"


def spark_unavailable() -> str | None:
    """Why the Spark tests cannot run here (None: they can)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -c constraints.txt -e '.[dev,spark]')"
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "no Java runtime on PATH (Spark needs Java 17: openjdk-17-jre-headless)"
    return None


class TcpSwitch:
    """A TCP proxy on loopback to ``target`` that can be switched off (every connection
    dropped, new ones refused) and on again, on the same port: a database that becomes
    unreachable for a while."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.on()

    def url(self, postgres_url: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(postgres_url)
        return postgres_url.replace(parts.netloc, f"{parts.username}@127.0.0.1:{self.port}")

    def on(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def off(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(OSError):  # wakes the accepting thread (Linux)
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
