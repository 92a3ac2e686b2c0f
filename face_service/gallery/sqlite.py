"""The embedded gallery store: one SQLite file (standard `sqlite3`), WAL mode.

Safe across processes on one machine: every write is one `BEGIN IMMEDIATE`
transaction (SQLite serializes writers, so change-log seqs commit in order),
readers never block in WAL mode, and each thread has its own connection.
`secure_delete` is on: a deleted row's bytes are overwritten in the file; a
WAL checkpoint after each delete moves that into the main file.

All SQL of this store lives in this module.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

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

# Ordered migrations: index i brings the schema from version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE gallery_collections (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        collection_id TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        face_count INTEGER NOT NULL DEFAULT 0,
        subject_count INTEGER NOT NULL DEFAULT 0,
        UNIQUE (tenant, collection_id)
    );
    CREATE TABLE gallery_subjects (
        collection_pk INTEGER NOT NULL REFERENCES gallery_collections (pk) ON DELETE CASCADE,
        subject TEXT NOT NULL,
        face_count INTEGER NOT NULL,
        PRIMARY KEY (collection_pk, subject)
    ) WITHOUT ROWID;
    CREATE TABLE gallery_faces (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        collection_pk INTEGER NOT NULL REFERENCES gallery_collections (pk) ON DELETE CASCADE,
        face_id BLOB NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        external_id TEXT,
        box_left INTEGER,
        box_top INTEGER,
        box_right INTEGER,
        box_bottom INTEGER,
        created_at TEXT NOT NULL,
        encoding BLOB NOT NULL
    );
    CREATE INDEX gallery_faces_by_collection ON gallery_faces (collection_pk, pk);
    CREATE INDEX gallery_faces_by_subject ON gallery_faces (collection_pk, subject, pk);
    CREATE TABLE gallery_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        collection_pk INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        collection_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        face_pks TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL
    );
    CREATE TABLE gallery_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO gallery_meta (key, value) VALUES ('pruned_through', 0);
    """,
]

_FACE_COLUMNS = (
    "f.pk, f.face_id, f.subject, f.external_id, f.box_left, f.box_top, f.box_right, "
    "f.box_bottom, f.created_at"
)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _face(row, include_encoding: bool) -> StoredFace:
    _pk, fid, subject, external_id, left, top, right, bottom, created = row[:9]
    return StoredFace(
        face_id=str(uuid.UUID(bytes=fid)),
        subject=subject,
        external_id=external_id,
        box=None if left is None else Box(left, top, right, bottom),
        created_at=datetime.fromisoformat(created),
        encoding=encoding_from_bytes(row[9]) if include_encoding else None,
    )


def _collection(row) -> Collection:
    cid, description, created, faces, subjects = row
    return Collection(cid, description, datetime.fromisoformat(created), faces, subjects)


def path_from_url(url: str) -> Path:
    """`sqlite:///abs/path`, `sqlite:///rel/path` (relative) or a plain path."""
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///") :]
    elif url.startswith("sqlite://"):
        url = url[len("sqlite://") :]
    return Path(url).expanduser()


class SqliteStore:
    """GalleryStore on a SQLite file. Blocking: call from threads."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path).expanduser()
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

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
    def _tx(self, write: bool):
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
                raise StoreUnavailable(f"the gallery database failed: {exc}") from None
            raise

    # ------------------------------------------------------------- migrations

    def migrate(self) -> int:
        conn = self._conn()
        # Switching to WAL takes an exclusive lock and does not wait on the busy
        # timeout: replicas starting together on one file retry it for a while.
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
        with self._tx(write=True) as conn:
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
                    f"gallery database {self.path} has schema v{version}, newer than this "
                    f"code's v{len(MIGRATIONS)}: upgrade the service"
                )
            for target in range(version + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[target - 1].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("UPDATE gallery_schema_version SET version = ?", (target,))
                logger.info("gallery database %s migrated to schema v%d", self.path, target)
        return len(MIGRATIONS)

    def schema_version(self) -> int:
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT version FROM gallery_schema_version").fetchone()
        return row[0]

    # ------------------------------------------------------------ collections

    @staticmethod
    def _collection_pk(conn, tenant: str, collection_id: str) -> int:
        row = conn.execute(
            "SELECT pk FROM gallery_collections WHERE tenant = ? AND collection_id = ?",
            (tenant, collection_id),
        ).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {collection_id!r} does not exist")
        return row[0]

    @staticmethod
    def _log(conn, kind: ChangeKind, cpk: int, tenant: str, cid: str, pks=()) -> int:
        return conn.execute(
            "INSERT INTO gallery_changes (collection_pk, tenant, collection_id, kind, face_pks,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            (cpk, tenant, cid, kind.value, json.dumps(list(pks)), time.time()),
        ).fetchone()[0]

    def create_collection(
        self, tenant: str, collection_id: str, description: str = ""
    ) -> tuple[Collection, int]:
        check_tenant(tenant)
        check_collection_id(collection_id, new=True)
        description = check_description(description)
        created = _now()
        try:
            with self._tx(write=True) as conn:
                pk = conn.execute(
                    "INSERT INTO gallery_collections (tenant, collection_id, description,"
                    " created_at) VALUES (?, ?, ?, ?) RETURNING pk",
                    (tenant, collection_id, description, created),
                ).fetchone()[0]
                seq = self._log(conn, ChangeKind.CREATE, pk, tenant, collection_id)
        except sqlite3.IntegrityError:
            raise CollectionExists(f"collection {collection_id!r} already exists") from None
        return Collection(collection_id, description, datetime.fromisoformat(created), 0, 0), seq

    def list_collections(
        self, tenant: str, page_size: int = 0, page_token: str = ""
    ) -> Page[Collection]:
        check_tenant(tenant)
        size = check_page_size(page_size)
        scope = ("collections", tenant)
        after = decode_page_token(page_token, scope, str) or ""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT collection_id, description, created_at, face_count, subject_count"
                " FROM gallery_collections WHERE tenant = ? AND collection_id > ?"
                " ORDER BY collection_id LIMIT ?",
                (tenant, after, size + 1),
            ).fetchall()
        items = [_collection(r) for r in rows[:size]]
        token = encode_page_token(scope, items[-1].collection_id) if len(rows) > size else ""
        return Page(items, token)

    def get_collection(self, tenant: str, collection_id: str) -> Collection:
        check_tenant(tenant)
        check_collection_id(collection_id)
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT collection_id, description, created_at, face_count, subject_count"
                " FROM gallery_collections WHERE tenant = ? AND collection_id = ?",
                (tenant, collection_id),
            ).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {collection_id!r} does not exist")
        return _collection(row)

    def delete_collection(self, tenant: str, collection_id: str) -> int:
        check_tenant(tenant)
        check_collection_id(collection_id)
        with self._tx(write=True) as conn:
            pk = self._collection_pk(conn, tenant, collection_id)
            conn.execute("DELETE FROM gallery_faces WHERE collection_pk = ?", (pk,))
            conn.execute("DELETE FROM gallery_subjects WHERE collection_pk = ?", (pk,))
            conn.execute("DELETE FROM gallery_collections WHERE pk = ?", (pk,))
            seq = self._log(conn, ChangeKind.DROP, pk, tenant, collection_id)
        self._checkpoint()
        return seq

    # ------------------------------------------------------------------ faces

    def add_faces(
        self, tenant: str, collection_id: str, faces: Sequence[NewFace]
    ) -> tuple[list[StoredFace], int]:
        check_tenant(tenant)
        check_collection_id(collection_id)
        faces = check_new_faces(faces)
        created = _now()
        stored, pks = [], []
        with self._tx(write=True) as conn:
            cpk = self._collection_pk(conn, tenant, collection_id)
            for face in faces:
                fid = uuid.uuid4()
                box = face.box
                pks.append(
                    conn.execute(
                        "INSERT INTO gallery_faces (collection_pk, face_id, subject, external_id,"
                        " box_left, box_top, box_right, box_bottom, created_at, encoding)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING pk",
                        (
                            cpk,
                            fid.bytes,
                            face.subject,
                            face.external_id,
                            box.left if box else None,
                            box.top if box else None,
                            box.right if box else None,
                            box.bottom if box else None,
                            created,
                            encoding_bytes(face.encoding),
                        ),
                    ).fetchone()[0]
                )
                stored.append(
                    StoredFace(
                        str(fid),
                        face.subject,
                        face.external_id,
                        box,
                        datetime.fromisoformat(created),
                    )
                )
            new_subjects = 0
            for subject, count in Counter(f.subject for f in faces).items():
                total = conn.execute(
                    "INSERT INTO gallery_subjects (collection_pk, subject, face_count)"
                    " VALUES (?, ?, ?) ON CONFLICT (collection_pk, subject)"
                    " DO UPDATE SET face_count = face_count + excluded.face_count"
                    " RETURNING face_count",
                    (cpk, subject, count),
                ).fetchone()[0]
                new_subjects += total == count
            conn.execute(
                "UPDATE gallery_collections SET face_count = face_count + ?,"
                " subject_count = subject_count + ? WHERE pk = ?",
                (len(faces), new_subjects, cpk),
            )
            seq = self._log(conn, ChangeKind.ADD, cpk, tenant, collection_id, pks)
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
        with self._tx(write=False) as conn:
            cpk = self._collection_pk(conn, tenant, collection_id)
            scope = ("faces", tenant, cpk, subject or "")
            after = decode_page_token(page_token, scope, int) or 0
            if subject is None:
                rows = conn.execute(
                    f"SELECT {columns} FROM gallery_faces f WHERE f.collection_pk = ?"
                    " AND f.pk > ? ORDER BY f.pk LIMIT ?",
                    (cpk, after, size + 1),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {columns} FROM gallery_faces f WHERE f.collection_pk = ?"
                    " AND f.subject = ? AND f.pk > ? ORDER BY f.pk LIMIT ?",
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
        with self._tx(write=False) as conn:
            cpk = self._collection_pk(conn, tenant, collection_id)
            row = conn.execute(
                f"SELECT {columns} FROM gallery_faces f WHERE f.face_id = ? AND f.collection_pk = ?",
                (fid.bytes, cpk),
            ).fetchone()
        if row is None:
            raise FaceNotFound(f"face {face_id} is not in collection {collection_id!r}")
        return _face(row, include_encoding)

    @staticmethod
    def _forget_subjects(conn, cpk: int, subjects: Counter) -> int:
        """Lower per-subject counts after a delete; -> subjects that have no face left."""
        gone = 0
        for subject, count in subjects.items():
            left = conn.execute(
                "UPDATE gallery_subjects SET face_count = face_count - ?"
                " WHERE collection_pk = ? AND subject = ? RETURNING face_count",
                (count, cpk, subject),
            ).fetchone()
            if left is not None and left[0] <= 0:
                conn.execute(
                    "DELETE FROM gallery_subjects WHERE collection_pk = ? AND subject = ?",
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
        with self._tx(write=True) as conn:
            cpk = self._collection_pk(conn, tenant, collection_id)
            rows = conn.execute(
                "DELETE FROM gallery_faces WHERE collection_pk = ? AND face_id IN"
                f" ({','.join('?' * len(fids))}) RETURNING pk, face_id, subject",
                (cpk, *(f.bytes for f in fids)),
            ).fetchall()
            if not rows:
                return [], 0
            gone = self._forget_subjects(conn, cpk, Counter(r[2] for r in rows))
            conn.execute(
                "UPDATE gallery_collections SET face_count = face_count - ?,"
                " subject_count = subject_count - ? WHERE pk = ?",
                (len(rows), gone, cpk),
            )
            seq = self._log(
                conn, ChangeKind.REMOVE, cpk, tenant, collection_id, sorted(r[0] for r in rows)
            )
        self._checkpoint()
        return [str(uuid.UUID(bytes=r[1])) for r in rows], seq

    def delete_subject(self, tenant: str, collection_id: str, subject: str) -> tuple[int, int]:
        check_tenant(tenant)
        check_collection_id(collection_id)
        check_subject(subject)
        with self._tx(write=True) as conn:
            cpk = self._collection_pk(conn, tenant, collection_id)
            rows = conn.execute(
                "DELETE FROM gallery_faces WHERE collection_pk = ? AND subject = ? RETURNING pk",
                (cpk, subject),
            ).fetchall()
            if not rows:
                raise SubjectNotFound(
                    f"collection {collection_id!r} has no face of subject {subject!r}"
                )
            conn.execute(
                "DELETE FROM gallery_subjects WHERE collection_pk = ? AND subject = ?",
                (cpk, subject),
            )
            conn.execute(
                "UPDATE gallery_collections SET face_count = face_count - ?,"
                " subject_count = subject_count - 1 WHERE pk = ?",
                (len(rows), cpk),
            )
            seq = self._log(
                conn, ChangeKind.REMOVE, cpk, tenant, collection_id, sorted(r[0] for r in rows)
            )
        self._checkpoint()
        return len(rows), seq

    def _checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the WAL (holding the zeroed pages of deleted rows) into the main file."""
        try:
            self._conn().execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # best effort: a later checkpoint does it
            logger.debug("gallery WAL checkpoint skipped: %s", exc)

    def erase_residue(self) -> None:
        self._checkpoint("TRUNCATE")

    # ------------------------------------------------------- what sync needs

    @staticmethod
    def _head(conn) -> Head:
        seq, pruned = conn.execute(
            "SELECT (SELECT coalesce(max(seq), 0) FROM gallery_changes),"
            " (SELECT value FROM gallery_meta WHERE key = 'pruned_through')"
        ).fetchone()
        return Head(max(seq, pruned), pruned)

    def head(self) -> Head:
        with self._tx(write=False) as conn:
            return self._head(conn)

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT seq, kind, collection_pk, tenant, collection_id, face_pks"
                " FROM gallery_changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [
            Change(s, ChangeKind(k), cpk, t, cid, tuple(json.loads(p)))
            for s, k, cpk, t, cid, p in rows
        ]

    def faces_by_pks(self, pks: Sequence[int]) -> FaceRows:
        if not pks:
            return FaceRows.empty()
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT collection_pk, pk, face_id, subject, encoding FROM gallery_faces"
                " WHERE pk IN (SELECT value FROM json_each(?)) ORDER BY pk",
                (json.dumps([int(p) for p in pks]),),
            ).fetchall()
        return FaceRows.from_rows(rows)

    @contextmanager
    def snapshot(self, chunk_size: int = 20_000) -> Iterator[Snapshot]:
        conn = self._connect()  # its own connection: the read transaction spans the load
        try:
            conn.execute("BEGIN")
            head = self._head(conn)  # the first read fixes the snapshot (WAL)
            collections = [
                CollectionRef(*r)
                for r in conn.execute(
                    "SELECT pk, tenant, collection_id, face_count FROM gallery_collections"
                    " ORDER BY pk"
                )
            ]

            def chunks() -> Iterator[FaceRows]:
                cursor = conn.execute(
                    "SELECT collection_pk, pk, face_id, subject, encoding FROM gallery_faces"
                    " ORDER BY pk"
                )
                while rows := cursor.fetchmany(chunk_size):
                    yield FaceRows.from_rows(rows)

            yield Snapshot(head.seq, collections, chunks())
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the gallery database failed: {exc}") from None
        finally:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            conn.close()

    def open_listener(self, poll_interval_s: float) -> _PollListener:
        return _PollListener(self, poll_interval_s)

    def prune_changes(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        with self._tx(write=True) as conn:
            last = conn.execute(
                "SELECT max(seq) FROM gallery_changes WHERE created_at < ?"
                " AND seq < (SELECT max(seq) FROM gallery_changes)",
                (cutoff,),
            ).fetchone()[0]
            if last is None:
                return 0
            deleted = conn.execute("DELETE FROM gallery_changes WHERE seq <= ?", (last,)).rowcount
            conn.execute(
                "UPDATE gallery_meta SET value = max(value, ?) WHERE key = 'pruned_through'",
                (last,),
            )
        return deleted


class _PollListener:
    """SQLite has no notifications: the sync loop polls the change log's head,
    one indexed read, every `poll_interval_s`."""

    def __init__(self, store: SqliteStore, poll_interval_s: float) -> None:
        self._store = store
        self._interval = poll_interval_s
        self._closed = threading.Event()
        self._conn = store._connect()

    def wait(self, timeout: float) -> None:
        self._closed.wait(min(timeout, self._interval))

    def head(self) -> Head:
        try:
            return SqliteStore._head(self._conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the gallery database failed: {exc}") from None

    def close(self) -> None:
        self._closed.set()
        with suppress(sqlite3.Error):
            self._conn.close()
