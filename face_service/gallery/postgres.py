"""The gallery store on PostgreSQL (psycopg 3 + psycopg-pool), for many replicas.

Every write is one transaction that ends by appending its change-log row
under a transaction-scoped advisory lock and `pg_notify`: the lock makes the
change log's seq order equal to commit order (a replica reading `seq > last`
never skips a change that commits late), and the notification wakes every
replica's sync loop (LISTEN) within milliseconds. A replica that was
disconnected catches up from the log on reconnect.

The queries are sql.py's; this module holds PostgreSQL's dialect and connections.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
import psycopg_pool
from psycopg import sql

from face_service.gallery.errors import StoreUnavailable
from face_service.gallery.sql import Dialect, GalleryStore, Tx
from face_service.gallery.store import Head

logger = logging.getLogger(__name__)

CHANNEL = "percept_gallery"
# pg_advisory_xact_lock keys: b"PRCPTGAL" and b"PRCPTMIG" as big-endian int64.
CHANGE_LOCK = int.from_bytes(b"PRCPTGAL", "big", signed=True)
MIGRATION_LOCK = int.from_bytes(b"PRCPTMIG", "big", signed=True)

# Connection options: fail fast when the server is unreachable, and notice a
# dead peer (no RST) within seconds rather than at the OS default of hours.
_CONNECT_KWARGS = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 8000,
}

_UNAVAILABLE_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)


class PostgresDialect(Dialect):
    """PostgreSQL: `%s` placeholders, UUID face ids, TIMESTAMPTZ, BIGINT[] key
    lists, row locks, and an advisory lock + NOTIFY around the change log."""

    types = {
        "pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "int": "BIGINT",
        "key_text": 'TEXT COLLATE "C"',  # byte order, as the keyset paging compares
        "stamp": "TIMESTAMPTZ NOT NULL DEFAULT now()",
        "uuid": "UUID",
        "bytes": "BYTEA",
        "int_list": "BIGINT[] NOT NULL DEFAULT '{}'",
        "instant": "TIMESTAMPTZ NOT NULL DEFAULT now()",
        "without_rowid": "",
    }
    for_update = " FOR UPDATE"
    unique_violation = psycopg.errors.UniqueViolation

    def sql(self, query: str) -> str:
        return query.replace("?", "%s")

    def face_id(self, face_id: uuid.UUID) -> uuid.UUID:
        return face_id

    def face_id_bytes(self, column: str) -> str:
        return f"uuid_send({column})"

    def instant(self, epoch_s: float) -> datetime:
        return datetime.fromtimestamp(epoch_s, UTC)

    def in_int_list(self, column: str) -> str:
        return f"{column} = ANY(?)"

    def in_face_ids(self, column: str, face_ids: list[uuid.UUID]) -> tuple[str, tuple]:
        return f"{column} = ANY(?)", (face_ids,)

    def insert_returning(self, conn, query: str, rows: list[tuple]) -> list[int]:
        # One pipelined round trip for the batch, each row's RETURNING a result set.
        keys = []
        with conn.cursor() as cur:
            cur.executemany(query, rows, returning=True)
            while True:
                keys.append(cur.fetchone()[0])
                if not cur.nextset():
                    return keys

    def lock_migrations(self, conn: Tx) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    def lock_change_log(self, conn: Tx) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (CHANGE_LOCK,))

    def announce(self, conn: Tx, seq: int) -> None:
        conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, str(seq)))


POSTGRES = PostgresDialect()


def _unavailable(exc: BaseException) -> StoreUnavailable:
    # psycopg messages name the host and port, never data.
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailable(f"the gallery database is unreachable: {reason}")


class PostgresStore(GalleryStore):
    """GalleryStore on PostgreSQL. Blocking: call from threads."""

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        pool_min: int = 1,
        pool_max: int = 4,
        connect_timeout_s: float = 3.0,
        statement_timeout_s: float = 60.0,
    ) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._statement_timeout_ms = int(statement_timeout_s * 1000)
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=pool_min,
            max_size=pool_max,
            kwargs={**_CONNECT_KWARGS, "connect_timeout": max(1, int(connect_timeout_s))},
            configure=self._configure,
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=connect_timeout_s,
            # Give up a failing background reconnection quickly: the next request then
            # starts a fresh attempt, so the pool heals as soon as the server is back.
            reconnect_timeout=2.0,
            open=False,
            name="percept-gallery",
        )
        self._pool.open(wait=False)

    def __repr__(self) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        return f"PostgresStore(host={info.get('host')!r}, dbname={info.get('dbname')!r})"

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")
        conn.commit()

    def _connect(self, **kwargs) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self.url,
                **{**_CONNECT_KWARGS, "connect_timeout": max(1, int(self.connect_timeout_s))},
                **kwargs,
            )
        except _UNAVAILABLE_ERRORS as exc:
            raise _unavailable(exc) from None

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[psycopg.Connection]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except _UNAVAILABLE_ERRORS as exc:
            raise _unavailable(exc) from None

    @contextmanager
    def _snapshot_transaction(self) -> Iterator[psycopg.Connection]:
        conn = self._connect()  # its own connection: the read transaction spans the load
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            yield conn
        except _UNAVAILABLE_ERRORS as exc:
            raise _unavailable(exc) from None
        finally:
            conn.close()

    def _stream(self, conn, query: str, chunk_size: int) -> Iterator[list]:
        with conn.cursor(name="gallery_snapshot", binary=True) as cur:
            cur.itersize = chunk_size
            cur.execute(query)
            while rows := cur.fetchmany(chunk_size):
                yield rows

    def close(self) -> None:
        self._pool.close(timeout=2)

    def erase_residue(self) -> None:
        """VACUUM the face table so dead row versions (deleted encodings) are
        reclaimed now rather than at autovacuum's pace."""
        conn = self._connect(autocommit=True)
        try:
            conn.execute("VACUUM gallery_faces")
        except _UNAVAILABLE_ERRORS as exc:
            raise _unavailable(exc) from None
        finally:
            conn.close()

    def open_listener(self, poll_interval_s: float) -> _NotifyListener:
        return _NotifyListener(self)


class _NotifyListener:
    """LISTEN on its own autocommit connection: wait() returns as soon as a
    change commits anywhere; head() reads on the same connection, which also
    proves it is alive."""

    def __init__(self, store: PostgresStore) -> None:
        self._conn = store._connect(autocommit=True)
        self._closed = threading.Event()
        try:
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        except _UNAVAILABLE_ERRORS as exc:
            self._conn.close()
            raise _unavailable(exc) from None

    def wait(self, timeout: float) -> None:
        if self._closed.is_set():
            return
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                pass
        except _UNAVAILABLE_ERRORS as exc:
            raise _unavailable(exc) from None

    def head(self) -> Head:
        try:
            return PostgresStore._head(self._conn)
        except _UNAVAILABLE_ERRORS as exc:
            raise _unavailable(exc) from None

    def close(self) -> None:
        self._closed.set()
        self._conn.close()
