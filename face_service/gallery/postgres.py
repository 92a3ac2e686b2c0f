"""The gallery store on PostgreSQL (psycopg 3 + psycopg-pool), for many replicas.

Every write is one transaction that ends by appending its change-log row
under a transaction-scoped advisory lock and `pg_notify`: the lock makes the
change log's seq order equal to commit order (a replica reading `seq > last`
never skips a change that commits late), and the notification wakes every
replica's sync loop (LISTEN) within milliseconds. A replica that was
disconnected catches up from the log on reconnect.

All SQL of this store lives in this module.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
import psycopg_pool
from psycopg import sql

from face_service.gallery.errors import (
    CollectionExists,
    CollectionNotFound,
    FaceNotFound,
    StoreUnavailable,
    SubjectNotFound,
)
from face_service.gallery.store import (
    Box,
    Change,
    ChangeKind,
    Collection,
    CollectionRef,
    FaceRows,
    Head,
    NewFace,
    Page,
    Snapshot,
    StoredFace,
    check_collection_id,
    check_description,
    check_new_faces,
    check_page_size,
    check_subject,
    check_tenant,
    decode_page_token,
    encode_page_token,
    encoding_bytes,
    encoding_from_bytes,
    parse_face_id,
    parse_face_ids,
)

logger = logging.getLogger(__name__)

CHANNEL = "percept_gallery"
# pg_advisory_xact_lock keys: b"PRCPTGAL" and b"PRCPTMIG" as big-endian int64.
CHANGE_LOCK = int.from_bytes(b"PRCPTGAL", "big", signed=True)
MIGRATION_LOCK = int.from_bytes(b"PRCPTMIG", "big", signed=True)

# Ordered migrations: index i brings the schema from version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE gallery_collections (
        pk BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant TEXT NOT NULL,
        collection_id TEXT COLLATE "C" NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        face_count BIGINT NOT NULL DEFAULT 0,
        subject_count BIGINT NOT NULL DEFAULT 0,
        UNIQUE (tenant, collection_id)
    );
    CREATE TABLE gallery_subjects (
        collection_pk BIGINT NOT NULL REFERENCES gallery_collections (pk) ON DELETE CASCADE,
        subject TEXT NOT NULL,
        face_count BIGINT NOT NULL,
        PRIMARY KEY (collection_pk, subject)
    );
    CREATE TABLE gallery_faces (
        pk BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection_pk BIGINT NOT NULL REFERENCES gallery_collections (pk) ON DELETE CASCADE,
        face_id UUID NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        external_id TEXT,
        box_left INTEGER,
        box_top INTEGER,
        box_right INTEGER,
        box_bottom INTEGER,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        encoding BYTEA NOT NULL
    );
    CREATE INDEX gallery_faces_by_collection ON gallery_faces (collection_pk, pk);
    CREATE INDEX gallery_faces_by_subject ON gallery_faces (collection_pk, subject, pk);
    CREATE TABLE gallery_changes (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection_pk BIGINT NOT NULL,
        tenant TEXT NOT NULL,
        collection_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        face_pks BIGINT[] NOT NULL DEFAULT '{}',
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE gallery_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
    INSERT INTO gallery_meta (key, value) VALUES ('pruned_through', 0);
    """,
]

_FACE_COLUMNS = (
    "f.pk, uuid_send(f.face_id), f.subject, f.external_id, f.box_left, f.box_top, f.box_right,"
    " f.box_bottom, f.created_at"
)

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


def _face(row, include_encoding: bool) -> StoredFace:
    _pk, fid, subject, external_id, left, top, right, bottom, created = row[:9]
    return StoredFace(
        face_id=str(uuid.UUID(bytes=bytes(fid))),
        subject=subject,
        external_id=external_id,
        box=None if left is None else Box(left, top, right, bottom),
        created_at=created,
        encoding=encoding_from_bytes(bytes(row[9])) if include_encoding else None,
    )


def _unavailable(exc: BaseException) -> StoreUnavailable:
    # psycopg messages name the host and port, never data.
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailable(f"the gallery database is unreachable: {reason}")


class PostgresStore:
    """GalleryStore on PostgreSQL. Blocking: call from threads."""

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
    def _tx(self):
        """One transaction on a pooled connection; connection failures -> StoreUnavailable."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except _UNAVAILABLE_ERRORS as exc:
            raise _unavailable(exc) from None

    def close(self) -> None:
        self._pool.close(timeout=2)

    # ------------------------------------------------------------- migrations

    def migrate(self) -> int:
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS gallery_schema_version (version INTEGER NOT NULL)"
            )
            row = conn.execute("SELECT version FROM gallery_schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO gallery_schema_version (version) VALUES (0)")
                version = 0
            else:
                version = row[0]
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"gallery database has schema v{version}, newer than this code's "
                    f"v{len(MIGRATIONS)}: upgrade the service"
                )
            for target in range(version + 1, len(MIGRATIONS) + 1):
                conn.execute(MIGRATIONS[target - 1])
                conn.execute("UPDATE gallery_schema_version SET version = %s", (target,))
                logger.info("gallery database migrated to schema v%d", target)
        return len(MIGRATIONS)

    def schema_version(self) -> int:
        with self._tx() as conn:
            return conn.execute("SELECT version FROM gallery_schema_version").fetchone()[0]

    # ------------------------------------------------------------ collections

    @staticmethod
    def _collection_pk(conn, tenant: str, collection_id: str, lock: bool = False) -> int:
        row = conn.execute(
            "SELECT pk FROM gallery_collections WHERE tenant = %s AND collection_id = %s"
            + (" FOR UPDATE" if lock else ""),
            (tenant, collection_id),
        ).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {collection_id!r} does not exist")
        return row[0]

    @staticmethod
    def _log(conn, kind: ChangeKind, cpk: int, tenant: str, cid: str, pks=()) -> int:
        # Held to commit: seqs are handed out in commit order.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGE_LOCK,))
        seq = conn.execute(
            "INSERT INTO gallery_changes (collection_pk, tenant, collection_id, kind, face_pks)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING seq",
            (cpk, tenant, cid, kind.value, list(pks)),
        ).fetchone()[0]
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(seq)))
        return seq

    def create_collection(
        self, tenant: str, collection_id: str, description: str = ""
    ) -> tuple[Collection, int]:
        check_tenant(tenant)
        check_collection_id(collection_id, new=True)
        description = check_description(description)
        try:
            with self._tx() as conn:
                pk, created = conn.execute(
                    "INSERT INTO gallery_collections (tenant, collection_id, description)"
                    " VALUES (%s, %s, %s) RETURNING pk, created_at",
                    (tenant, collection_id, description),
                ).fetchone()
                seq = self._log(conn, ChangeKind.CREATE, pk, tenant, collection_id)
        except psycopg.errors.UniqueViolation:
            raise CollectionExists(f"collection {collection_id!r} already exists") from None
        return Collection(collection_id, description, created, 0, 0), seq

    def list_collections(
        self, tenant: str, page_size: int = 0, page_token: str = ""
    ) -> Page[Collection]:
        check_tenant(tenant)
        size = check_page_size(page_size)
        scope = ("collections", tenant)
        after = decode_page_token(page_token, scope, str) or ""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT collection_id, description, created_at, face_count, subject_count"
                " FROM gallery_collections WHERE tenant = %s AND collection_id > %s"
                " ORDER BY collection_id LIMIT %s",
                (tenant, after, size + 1),
            ).fetchall()
        items = [Collection(*r) for r in rows[:size]]
        token = encode_page_token(scope, items[-1].collection_id) if len(rows) > size else ""
        return Page(items, token)

    def get_collection(self, tenant: str, collection_id: str) -> Collection:
        check_tenant(tenant)
        check_collection_id(collection_id)
        with self._tx() as conn:
            row = conn.execute(
                "SELECT collection_id, description, created_at, face_count, subject_count"
                " FROM gallery_collections WHERE tenant = %s AND collection_id = %s",
                (tenant, collection_id),
            ).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {collection_id!r} does not exist")
        return Collection(*row)

    def delete_collection(self, tenant: str, collection_id: str) -> int:
        check_tenant(tenant)
        check_collection_id(collection_id)
        with self._tx() as conn:
            pk = self._collection_pk(conn, tenant, collection_id, lock=True)
            conn.execute("DELETE FROM gallery_faces WHERE collection_pk = %s", (pk,))
            conn.execute("DELETE FROM gallery_subjects WHERE collection_pk = %s", (pk,))
            conn.execute("DELETE FROM gallery_collections WHERE pk = %s", (pk,))
            return self._log(conn, ChangeKind.DROP, pk, tenant, collection_id)

    # ------------------------------------------------------------------ faces

    def add_faces(
        self, tenant: str, collection_id: str, faces: Sequence[NewFace]
    ) -> tuple[list[StoredFace], int]:
        check_tenant(tenant)
        check_collection_id(collection_id)
        faces = check_new_faces(faces)
        fids = [uuid.uuid4() for _ in faces]
        with self._tx() as conn:
            # FOR UPDATE: a concurrent delete of the collection waits for us (or we for it).
            cpk = self._collection_pk(conn, tenant, collection_id, lock=True)
            rows = conn.execute(
                "INSERT INTO gallery_faces (collection_pk, face_id, subject, external_id,"
                " box_left, box_top, box_right, box_bottom, encoding)"
                " SELECT %s, * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::int[],"
                " %s::int[], %s::int[], %s::int[], %s::bytea[])"
                " RETURNING face_id, pk, created_at",
                (
                    cpk,
                    fids,
                    [f.subject for f in faces],
                    [f.external_id for f in faces],
                    [f.box.left if f.box else None for f in faces],
                    [f.box.top if f.box else None for f in faces],
                    [f.box.right if f.box else None for f in faces],
                    [f.box.bottom if f.box else None for f in faces],
                    [encoding_bytes(f.encoding) for f in faces],
                ),
            ).fetchall()
            inserted = {fid: (pk, created) for fid, pk, created in rows}
            new_subjects = 0
            for subject, count in sorted(Counter(f.subject for f in faces).items()):
                total = conn.execute(
                    "INSERT INTO gallery_subjects (collection_pk, subject, face_count)"
                    " VALUES (%s, %s, %s) ON CONFLICT (collection_pk, subject)"
                    " DO UPDATE SET face_count = gallery_subjects.face_count + excluded.face_count"
                    " RETURNING face_count",
                    (cpk, subject, count),
                ).fetchone()[0]
                new_subjects += total == count
            conn.execute(
                "UPDATE gallery_collections SET face_count = face_count + %s,"
                " subject_count = subject_count + %s WHERE pk = %s",
                (len(faces), new_subjects, cpk),
            )
            pks = sorted(pk for pk, _ in inserted.values())
            seq = self._log(conn, ChangeKind.ADD, cpk, tenant, collection_id, pks)
        stored = [
            StoredFace(str(fid), f.subject, f.external_id, f.box, inserted[fid][1])
            for fid, f in zip(fids, faces, strict=True)
        ]
        return stored, seq

    def list_faces(
        self,
        tenant: str,
        collection_id: str,
        *,
        subject: str | None = None,
        page_size: int = 0,
        page_token: str = "",
        include_encodings: bool = False,
    ) -> Page[StoredFace]:
        check_tenant(tenant)
        check_collection_id(collection_id)
        if subject is not None:
            check_subject(subject)
        size = check_page_size(page_size)
        columns = _FACE_COLUMNS + (", f.encoding" if include_encodings else "")
        with self._tx() as conn:
            cpk = self._collection_pk(conn, tenant, collection_id)
            scope = ("faces", tenant, cpk, subject or "")
            after = decode_page_token(page_token, scope, int) or 0
            if subject is None:
                rows = conn.execute(
                    f"SELECT {columns} FROM gallery_faces f WHERE f.collection_pk = %s"
                    " AND f.pk > %s ORDER BY f.pk LIMIT %s",
                    (cpk, after, size + 1),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {columns} FROM gallery_faces f WHERE f.collection_pk = %s"
                    " AND f.subject = %s AND f.pk > %s ORDER BY f.pk LIMIT %s",
                    (cpk, subject, after, size + 1),
                ).fetchall()
        items = [_face(r, include_encodings) for r in rows[:size]]
        token = encode_page_token(scope, rows[size - 1][0]) if len(rows) > size else ""
        return Page(items, token)

    def get_face(
        self, tenant: str, collection_id: str, face_id: str, include_encoding: bool = False
    ) -> StoredFace:
        check_tenant(tenant)
        check_collection_id(collection_id)
        fid = parse_face_id(face_id)
        columns = _FACE_COLUMNS + (", f.encoding" if include_encoding else "")
        with self._tx() as conn:
            cpk = self._collection_pk(conn, tenant, collection_id)
            row = conn.execute(
                f"SELECT {columns} FROM gallery_faces f"
                " WHERE f.face_id = %s AND f.collection_pk = %s",
                (fid, cpk),
            ).fetchone()
        if row is None:
            raise FaceNotFound(f"face {face_id} is not in collection {collection_id!r}")
        return _face(row, include_encoding)

    @staticmethod
    def _forget_subjects(conn, cpk: int, subjects: Counter) -> int:
        gone = 0
        for subject, count in sorted(subjects.items()):
            left = conn.execute(
                "UPDATE gallery_subjects SET face_count = face_count - %s"
                " WHERE collection_pk = %s AND subject = %s RETURNING face_count",
                (count, cpk, subject),
            ).fetchone()
            if left is not None and left[0] <= 0:
                conn.execute(
                    "DELETE FROM gallery_subjects WHERE collection_pk = %s AND subject = %s",
                    (cpk, subject),
                )
                gone += 1
        return gone

    def delete_faces(
        self, tenant: str, collection_id: str, face_ids: Sequence[str]
    ) -> tuple[list[str], int]:
        check_tenant(tenant)
        check_collection_id(collection_id)
        fids = parse_face_ids(face_ids)
        with self._tx() as conn:
            cpk = self._collection_pk(conn, tenant, collection_id, lock=True)
            rows = conn.execute(
                "DELETE FROM gallery_faces WHERE collection_pk = %s AND face_id = ANY(%s)"
                " RETURNING pk, face_id, subject",
                (cpk, fids),
            ).fetchall()
            if not rows:
                return [], 0
            gone = self._forget_subjects(conn, cpk, Counter(r[2] for r in rows))
            conn.execute(
                "UPDATE gallery_collections SET face_count = face_count - %s,"
                " subject_count = subject_count - %s WHERE pk = %s",
                (len(rows), gone, cpk),
            )
            seq = self._log(
                conn, ChangeKind.REMOVE, cpk, tenant, collection_id, sorted(r[0] for r in rows)
            )
        return [str(r[1]) for r in rows], seq

    def delete_subject(self, tenant: str, collection_id: str, subject: str) -> tuple[int, int]:
        check_tenant(tenant)
        check_collection_id(collection_id)
        check_subject(subject)
        with self._tx() as conn:
            cpk = self._collection_pk(conn, tenant, collection_id, lock=True)
            rows = conn.execute(
                "DELETE FROM gallery_faces WHERE collection_pk = %s AND subject = %s RETURNING pk",
                (cpk, subject),
            ).fetchall()
            if not rows:
                raise SubjectNotFound(
                    f"collection {collection_id!r} has no face of subject {subject!r}"
                )
            conn.execute(
                "DELETE FROM gallery_subjects WHERE collection_pk = %s AND subject = %s",
                (cpk, subject),
            )
            conn.execute(
                "UPDATE gallery_collections SET face_count = face_count - %s,"
                " subject_count = subject_count - 1 WHERE pk = %s",
                (len(rows), cpk),
            )
            seq = self._log(
                conn, ChangeKind.REMOVE, cpk, tenant, collection_id, sorted(r[0] for r in rows)
            )
        return len(rows), seq

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

    # ------------------------------------------------------- what sync needs

    @staticmethod
    def _head(conn) -> Head:
        seq, pruned = conn.execute(
            "SELECT (SELECT coalesce(max(seq), 0) FROM gallery_changes),"
            " (SELECT value FROM gallery_meta WHERE key = 'pruned_through')"
        ).fetchone()
        return Head(max(seq, pruned), pruned)

    def head(self) -> Head:
        with self._tx() as conn:
            return self._head(conn)

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT seq, kind, collection_pk, tenant, collection_id, face_pks"
                " FROM gallery_changes WHERE seq > %s ORDER BY seq LIMIT %s",
                (seq, limit),
            ).fetchall()
        return [Change(s, ChangeKind(k), cpk, t, cid, tuple(p)) for s, k, cpk, t, cid, p in rows]

    def faces_by_pks(self, pks: Sequence[int]) -> FaceRows:
        if not len(pks):
            return FaceRows.empty()
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT collection_pk, pk, uuid_send(face_id), subject, encoding"
                " FROM gallery_faces WHERE pk = ANY(%s) ORDER BY pk",
                ([int(p) for p in pks],),
                binary=True,
            ).fetchall()
        return FaceRows.from_rows(rows)

    @contextmanager
    def snapshot(self, chunk_size: int = 20_000) -> Iterator[Snapshot]:
        conn = self._connect()  # its own connection: the read transaction spans the load
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            head = self._head(conn)
            collections = [
                CollectionRef(*r)
                for r in conn.execute(
                    "SELECT pk, tenant, collection_id, face_count FROM gallery_collections"
                    " ORDER BY pk"
                )
            ]

            def chunks() -> Iterator[FaceRows]:
                try:
                    with conn.cursor(name="gallery_snapshot", binary=True) as cur:
                        cur.itersize = chunk_size
                        cur.execute(
                            "SELECT collection_pk, pk, uuid_send(face_id), subject, encoding"
                            " FROM gallery_faces ORDER BY pk"
                        )
                        while rows := cur.fetchmany(chunk_size):
                            yield FaceRows.from_rows(rows)
                except _UNAVAILABLE_ERRORS as exc:
                    raise _unavailable(exc) from None

            yield Snapshot(head.seq, collections, chunks())
        except _UNAVAILABLE_ERRORS as exc:
            raise _unavailable(exc) from None
        finally:
            conn.close()

    def open_listener(self, poll_interval_s: float) -> _NotifyListener:
        return _NotifyListener(self)

    def prune_changes(self, older_than_s: float) -> int:
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGE_LOCK,))
            last = conn.execute(
                "SELECT max(seq) FROM gallery_changes"
                " WHERE created_at < now() - make_interval(secs => %s)"
                " AND seq < (SELECT max(seq) FROM gallery_changes)",
                (older_than_s,),
            ).fetchone()[0]
            if last is None:
                return 0
            deleted = conn.execute("DELETE FROM gallery_changes WHERE seq <= %s", (last,)).rowcount
            conn.execute(
                "UPDATE gallery_meta SET value = greatest(value, %s) WHERE key = 'pruned_through'",
                (last,),
            )
        return deleted


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
