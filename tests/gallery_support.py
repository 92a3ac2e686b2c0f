"""Test helpers for the face gallery: throw-away PostgreSQL databases, a TCP
proxy that can cut the database off, and gallery replicas in their own processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path

import pytest

from tests.support import ROOT, free_port

PG_ADMIN_URL = os.environ.get(
    "PERCEPT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DB_PREFIX = "percept_gallery_test_"


def _admin():
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"these tests need PostgreSQL at {PG_ADMIN_URL} (set PERCEPT_TEST_POSTGRES_URL): {exc}"
        )


def postgres_url(dbname: str, host: str | None = None, port: int | None = None) -> str:
    """A postgresql:// URL (what GallerySettings.url takes) for a database."""
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    return (
        f"postgresql://{user}{password}@{host or info.get('host', '127.0.0.1')}:"
        f"{port or info.get('port', 5432)}/{dbname}"
    )


class PgDatabases:
    """Creates uniquely named databases and drops them at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def create(self) -> str:
        name = DB_PREFIX + uuid.uuid4().hex[:12]
        with _admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return name

    def drop_all(self) -> None:
        with _admin() as conn:
            for name in self.names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.names.clear()


@pytest.fixture(scope="session")
def pg_databases():
    dbs = PgDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def pg_session_db(pg_databases) -> str:
    return pg_databases.create()


@pytest.fixture
def pg_url(pg_session_db):
    """An empty PostgreSQL schema of one test's own, in a database of the session's
    own (a schema is made and dropped in milliseconds; a database takes seconds)."""
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_url(pg_session_db), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{postgres_url(pg_session_db)}?options=-c%20search_path%3D{schema}"
    with psycopg.connect(postgres_url(pg_session_db), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_empty_database_url(pg_databases) -> str:
    """A brand-new PostgreSQL database."""
    return postgres_url(pg_databases.create())


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    """The same test on both stores: an SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gallery.sqlite3'}"
    return request.getfixturevalue("pg_url")


def terminate_backends(url: str) -> int:
    """pg_terminate_backend every other connection to the database of `url`."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return len(
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        )


# ------------------------------------------------------------------ TCP proxy


class TcpProxy:
    """Forwards a local port to PostgreSQL; stop() cuts every connection and
    closes the port (the database looks unreachable), start() opens it again."""

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._server is not None:
            # shutdown() wakes the accept() blocked in the other thread; close()
            # alone would leave the port listening until the next connection.
            with suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


# ------------------------------------------------------------ replica process


class ReplicaProcess:
    """A gallery replica (store + in-memory index + sync) in its own process,
    driven over stdin/stdout by `tests/gallery_replica.py`."""

    def __init__(self, url: str, env: dict[str, str] | None = None) -> None:
        self.url = url
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ReplicaProcess:
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}",
            **self.env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(ROOT, "tests", "gallery_replica.py")), self.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
        )
        line = self.proc.stdout.readline()
        assert line, "the replica process died while starting"
        assert json.loads(line) == {"ready": True}
        return self

    def call(self, op: str, **args):
        assert self.proc is not None and self.proc.poll() is None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if not reply["ok"]:
            raise ReplicaError(reply["error"], reply["message"])
        return reply["result"]

    def stop(self) -> None:
        if self.proc is None:
            return
        with suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class ReplicaError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def within(seconds: float, check, interval: float = 0.02):
    """Poll `check()` until it returns a truthy value; -> (value, elapsed s).
    Fails the test when `seconds` pass first."""
    start = time.monotonic()
    while True:
        value = check()
        elapsed = time.monotonic() - start
        if value:
            return value, elapsed
        if elapsed > seconds:
            pytest.fail(f"not within {seconds} s")
        time.sleep(interval)
