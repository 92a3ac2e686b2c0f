"""The embedded gallery store: one SQLite file (standard `sqlite3`), WAL mode.

Safe across processes on one machine: every write is one `BEGIN IMMEDIATE`
transaction (SQLite serializes writers, so change-log seqs commit in order),
readers never block in WAL mode, and each thread has its own connection.
`secure_delete` is on: a deleted row's bytes are overwritten in the file; a
WAL checkpoint after each delete moves that into the main file.

The queries are sql.py's; this module holds SQLite's dialect and connections.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from face_service.gallery.errors import StoreUnavailable
from face_service.gallery.sql import Dialect, GalleryStore
from face_service.gallery.store import Head

logger = logging.getLogger(__name__)


class SqliteDialect(Dialect):
    """SQLite: `?` placeholders, face ids as 16-byte BLOBs, ISO-8601 text
    timestamps, key lists as JSON text; BEGIN IMMEDIATE does all the locking."""

    types = {
        "pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "int": "INTEGER",
        "key_text": "TEXT",
        "stamp": "TEXT NOT NULL",
        "uuid": "BLOB",
        "bytes": "BLOB",
        "int_list": "TEXT NOT NULL DEFAULT '[]'",
        "instant": "REAL NOT NULL",
        "without_rowid": " WITHOUT ROWID",
    }
    unique_violation = sqlite3.IntegrityError

    def stamp(self, when: datetime) -> str:
        return when.isoformat()

    def read_stamp(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)

    def int_list(self, values: Sequence[int]) -> str:
        return json.dumps([int(v) for v in values])

    def read_int_list(self, value: Any) -> tuple[int, ...]:
        return tuple(json.loads(value))

    def in_int_list(self, column: str) -> str:
        return f"{column} IN (SELECT value FROM json_each(?))"

    def in_face_ids(self, column: str, face_ids: list[uuid.UUID]) -> tuple[str, tuple]:
        return f"{column} IN ({','.join('?' * len(face_ids))})", tuple(f.bytes for f in face_ids)


SQLITE = SqliteDialect()


def path_from_url(url: str) -> Path:
    """`sqlite:///abs/path`, `sqlite:///rel/path` (relative) or a plain path."""
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///") :]
    elif url.startswith("sqlite://"):
        url = url[len("sqlite://") :]
    return Path(url).expanduser()


def _failed(exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"the gallery database failed: {exc}")


class SqliteStore(GalleryStore):
    """GalleryStore on a SQLite file. Blocking: call from threads."""

    dialect = SQLITE

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path).expanduser()
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def _where(self) -> str:
        return f"gallery database {self.path}"

    # ------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA synchronous = FULL")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(
                f"cannot open the gallery database {self.path}: {exc} (FACE_GALLERY_URL "
                "names it: a sqlite:///path this user can write, or a postgresql:// URL)"
            ) from None
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreUnavailable("the gallery store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(sqlite3.Error):  # in use by another thread at shutdown
                conn.close()

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the gallery database is busy or unreadable: {exc}") from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise _failed(exc) from None
            raise

    @contextmanager
    def _snapshot_transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()  # its own connection: the read transaction spans the load
        try:
            conn.execute("BEGIN")  # the first read fixes the snapshot (WAL)
            yield conn
        except sqlite3.OperationalError as exc:
            raise _failed(exc) from None
        finally:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            conn.close()

    def _stream(self, conn, query: str, chunk_size: int) -> Iterator[list]:
        cursor = conn.execute(query)
        while rows := cursor.fetchmany(chunk_size):
            yield rows

    def _before_migrate(self) -> None:
        # Switching to WAL takes an exclusive lock and does not wait on the busy
        # timeout: replicas starting together on one file retry it for a while.
        conn = self._conn()
        deadline = time.monotonic() + 10.0
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise StoreUnavailable(f"cannot open the gallery database: {exc}") from None
                time.sleep(0.05)
        if mode.lower() != "wal":
            logger.warning("gallery database %s is in %s mode, not WAL", self.path, mode)

    def _after_delete(self) -> None:
        self._checkpoint()

    def _checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the WAL (holding the zeroed pages of deleted rows) into the main file."""
        try:
            self._conn().execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # best effort: a later checkpoint does it
            logger.debug("gallery WAL checkpoint skipped: %s", exc)

    def erase_residue(self) -> None:
        self._checkpoint("TRUNCATE")

    def open_listener(self, poll_interval_s: float) -> _PollListener:
        return _PollListener(self, poll_interval_s)


class _PollListener:
    """SQLite has no notifications: the sync loop polls the change log's head,
    one indexed read, every `poll_interval_s`."""

    def __init__(self, store: SqliteStore, poll_interval_s: float) -> None:
        self._interval = poll_interval_s
        self._closed = threading.Event()
        self._conn = store._connect()

    def wait(self, timeout: float) -> None:
        self._closed.wait(min(timeout, self._interval))

    def head(self) -> Head:
        try:
            return SqliteStore._head(self._conn)
        except sqlite3.Error as exc:
            raise _failed(exc) from None

    def close(self) -> None:
        self._closed.set()
        with suppress(sqlite3.Error):
            self._conn.close()
