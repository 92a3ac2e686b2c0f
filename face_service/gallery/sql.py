"""The gallery store, written once for every SQL database it runs on.

`GalleryStore` holds the schema, every query and the transaction logic. The
few things the databases spell differently (placeholders, column types, face
ids as UUID or BLOB, lists of keys, timestamps, row locks, the change log's
lock and notification) are a `Dialect`; how to connect, run a transaction,
stream a snapshot and wait for changes is the subclass's: `sqlite.py` (one
file, the embedded default) and `postgres.py` (many replicas at scale).

Every mutation appends one row to the change log in the same transaction;
the subclass's transaction makes the log's seq order equal to commit order.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar, Protocol

from face_service.gallery.errors import (
    CollectionExists,
    CollectionNotFound,
    FaceNotFound,
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
    check_scope,
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

# Ordered migrations: index i brings the schema from version i to i + 1. The
# words in braces are the dialect's column types (Dialect.types).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE gallery_collections (
        pk {pk},
        tenant TEXT NOT NULL,
        collection_id {key_text} NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at {stamp},
        face_count {int} NOT NULL DEFAULT 0,
        subject_count {int} NOT NULL DEFAULT 0,
        UNIQUE (tenant, collection_id)
    );
    CREATE TABLE gallery_subjects (
        collection_pk {int} NOT NULL REFERENCES gallery_collections (pk) ON DELETE CASCADE,
        subject TEXT NOT NULL,
        face_count {int} NOT NULL,
        PRIMARY KEY (collection_pk, subject)
    ){without_rowid};
    CREATE TABLE gallery_faces (
        pk {pk},
        collection_pk {int} NOT NULL REFERENCES gallery_collections (pk) ON DELETE CASCADE,
        face_id {uuid} NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        external_id TEXT,
        box_left INTEGER,
        box_top INTEGER,
        box_right INTEGER,
        box_bottom INTEGER,
        created_at {stamp},
        encoding {bytes} NOT NULL
    );
    CREATE INDEX gallery_faces_by_collection ON gallery_faces (collection_pk, pk);
    CREATE INDEX gallery_faces_by_subject ON gallery_faces (collection_pk, subject, pk);
    CREATE TABLE gallery_changes (
        seq {pk},
        collection_pk {int} NOT NULL,
        tenant TEXT NOT NULL,
        collection_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        face_pks {int_list},
        created_at {instant}
    );
    CREATE TABLE gallery_meta (key TEXT PRIMARY KEY, value {int} NOT NULL);
    INSERT INTO gallery_meta (key, value) VALUES ('pruned_through', 0)
    """,
]


class Dialect:
    """How one database spells what the store says. Queries are written with
    `?` placeholders; `sql()` rewrites them for the driver."""

    types: ClassVar[dict[str, str]]  # the DDL words of MIGRATIONS
    for_update: ClassVar[str] = ""  # row lock on a collection a write depends on
    unique_violation: ClassVar[type[Exception]]

    def sql(self, query: str) -> str:
        return query

    def face_id(self, face_id: uuid.UUID) -> Any:
        """A face id as the driver binds it."""
        return face_id.bytes

    def face_id_bytes(self, column: str) -> str:
        """SQL giving `column` (a face id) as its 16 bytes."""
        return column

    def stamp(self, when: datetime) -> Any:
        """A creation time as stored."""
        return when

    def read_stamp(self, value: Any) -> datetime:
        return value

    def instant(self, epoch_s: float) -> Any:
        """A change-log time (seconds since the epoch) as stored."""
        return epoch_s

    def int_list(self, values: Sequence[int]) -> Any:
        """A list of keys as one bound value (a change's face_pks, an IN list)."""
        return [int(v) for v in values]

    def read_int_list(self, value: Any) -> tuple[int, ...]:
        return tuple(value)

    def in_int_list(self, column: str) -> str:
        """SQL: `column` is among the keys of one bound int_list()."""
        raise NotImplementedError

    def in_face_ids(self, column: str, face_ids: list[uuid.UUID]) -> tuple[str, tuple]:
        """(SQL: `column` is one of these face ids, its parameters)."""
        raise NotImplementedError

    def insert_returning(self, conn, query: str, rows: list[tuple]) -> list[int]:
        """Run an INSERT ... RETURNING <key> once per row; -> the keys, in order."""
        return [conn.execute(query, row).fetchone()[0] for row in rows]

    def lock_migrations(self, conn) -> None:
        """Serialize migrations run by many processes at once (held to commit)."""

    def lock_change_log(self, conn) -> None:
        """Held to commit: seqs are handed out in commit order."""

    def announce(self, conn, seq: int) -> None:
        """Tell listening replicas that change `seq` commits with this transaction."""


@lru_cache(maxsize=256)
def _face_columns(dialect: Dialect, encoding: bool) -> str:
    columns = (
        f"f.pk, {dialect.face_id_bytes('f.face_id')}, f.subject, f.external_id,"
        " f.box_left, f.box_top, f.box_right, f.box_bottom, f.created_at"
    )
    return columns + (", f.encoding" if encoding else "")


class Tx:
    """A connection inside one transaction, speaking the store's SQL."""

    def __init__(self, conn, dialect: Dialect) -> None:
        self.raw = conn
        self.dialect = dialect

    def execute(self, query: str, params: Sequence = ()):
        return self.raw.execute(self.dialect.sql(query), params)

    def insert_returning(self, query: str, rows: list[tuple]) -> list[int]:
        return self.dialect.insert_returning(self.raw, self.dialect.sql(query), rows)


class Listener(Protocol):
    """Wakes the sync loop when the store may have changed."""

    def wait(self, timeout: float) -> None:
        """Return when a change may have been committed, or after `timeout` seconds."""

    def head(self) -> Head:
        """The change log's head, read on the listener's own connection (a liveness check too)."""

    def close(self) -> None: ...


class GalleryStore:
    """The system of record. Every method blocks (call from threads); raises
    StoreUnavailable when the database cannot be reached. Subclasses connect."""

    dialect: ClassVar[Dialect]

    # ------------------------------------------------ what a subclass provides

    def _transaction(self, write: bool) -> AbstractContextManager[Any]:
        """A driver connection inside a transaction; connection failures -> StoreUnavailable."""
        raise NotImplementedError

    def _snapshot_transaction(self) -> AbstractContextManager[Any]:
        """A read-only transaction on a connection of its own that sees one
        snapshot for as long as it is open."""
        raise NotImplementedError

    def _stream(self, conn, query: str, chunk_size: int) -> Iterator[list]:
        """The rows of `query` in lists of at most chunk_size, without holding all of them."""
        raise NotImplementedError

    def _before_migrate(self) -> None:
        """Whatever must happen outside a transaction before migrating."""

    def _after_delete(self) -> None:
        """Called after a delete commits."""

    def close(self) -> None:
        raise NotImplementedError

    def erase_residue(self) -> None:
        """Ask the database to drop the physical remains of deleted rows now
        (SQLite: WAL checkpoint + VACUUM; PostgreSQL: VACUUM)."""
        raise NotImplementedError

    def open_listener(self, poll_interval_s: float) -> Listener:
        raise NotImplementedError

    def _where(self) -> str:
        """The database as error messages name it."""
        return "gallery database"

    # ------------------------------------------------------------------ core

    @contextmanager
    def _tx(self, write: bool) -> Iterator[Tx]:
        with self._transaction(write) as conn:
            yield Tx(conn, self.dialect)

    def migrate(self) -> int:
        """Create or upgrade the schema; returns its version. Safe to run from many
        processes at once."""
        self._before_migrate()
        with self._tx(write=True) as tx:
            self.dialect.lock_migrations(tx)
            tx.execute(
                "CREATE TABLE IF NOT EXISTS gallery_schema_version (version INTEGER NOT NULL)"
            )
            row = tx.execute("SELECT version FROM gallery_schema_version").fetchone()
            if row is None:
                tx.execute("INSERT INTO gallery_schema_version (version) VALUES (0)")
                version = 0
            else:
                version = row[0]
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self._where()} has schema v{version}, newer than this code's "
                    f"v{len(MIGRATIONS)}: upgrade the service"
                )
            for target in range(version + 1, len(MIGRATIONS) + 1):
                script = MIGRATIONS[target - 1].format(**self.dialect.types)
                for statement in script.split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute("UPDATE gallery_schema_version SET version = ?", (target,))
                logger.info("%s migrated to schema v%d", self._where(), target)
        return len(MIGRATIONS)

    def schema_version(self) -> int:
        with self._tx(write=False) as tx:
            return tx.execute("SELECT version FROM gallery_schema_version").fetchone()[0]

    def _face(self, row, include_encoding: bool) -> StoredFace:
        _pk, fid, subject, external_id, left, top, right, bottom, created = row[:9]
        return StoredFace(
            face_id=str(uuid.UUID(bytes=bytes(fid))),
            subject=subject,
            external_id=external_id,
            box=None if left is None else Box(left, top, right, bottom),
            created_at=self.dialect.read_stamp(created),
            encoding=encoding_from_bytes(bytes(row[9])) if include_encoding else None,
        )

    # A collection's row as `_collection` reads it.
    _COLLECTION_ROW = (
        "SELECT collection_id, description, created_at, face_count, subject_count"
        " FROM gallery_collections"
    )

    def _collection(self, row) -> Collection:
        cid, description, created, faces, subjects = row
        return Collection(cid, description, self.dialect.read_stamp(created), faces, subjects)

    # ------------------------------------------------------------ collections

    def _collection_pk(self, tx: Tx, tenant: str, collection_id: str, lock: bool = False) -> int:
        row = tx.execute(
            "SELECT pk FROM gallery_collections WHERE tenant = ? AND collection_id = ?"
            + (self.dialect.for_update if lock else ""),
            (tenant, collection_id),
        ).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {collection_id!r} does not exist")
        return row[0]

    def _log(self, tx: Tx, kind: ChangeKind, cpk: int, tenant: str, cid: str, pks=()) -> int:
        self.dialect.lock_change_log(tx)
        seq = tx.execute(
            "INSERT INTO gallery_changes (collection_pk, tenant, collection_id, kind, face_pks,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            (
                cpk,
                tenant,
                cid,
                kind.value,
                self.dialect.int_list(pks),
                self.dialect.instant(time.time()),
            ),
        ).fetchone()[0]
        self.dialect.announce(tx, seq)
        return seq

    def create_collection(
        self, tenant: str, collection_id: str, description: str = ""
    ) -> tuple[Collection, int]:
        """-> (the new collection, change seq). CollectionExists when the id is taken."""
        check_tenant(tenant)
        check_collection_id(collection_id, new=True)
        description = check_description(description)
        created = datetime.now(UTC)
        try:
            with self._tx(write=True) as tx:
                pk = tx.execute(
                    "INSERT INTO gallery_collections (tenant, collection_id, description,"
                    " created_at) VALUES (?, ?, ?, ?) RETURNING pk",
                    (tenant, collection_id, description, self.dialect.stamp(created)),
                ).fetchone()[0]
                seq = self._log(tx, ChangeKind.CREATE, pk, tenant, collection_id)
        except self.dialect.unique_violation:
            raise CollectionExists(f"collection {collection_id!r} already exists") from None
        return Collection(collection_id, description, created, 0, 0), seq

    def list_collections(
        self, tenant: str, page_size: int = 0, page_token: str = ""
    ) -> Page[Collection]:
        check_tenant(tenant)
        size = check_page_size(page_size)
        scope = ("collections", tenant)
        after = decode_page_token(page_token, scope, str) or ""
        with self._tx(write=False) as tx:
            rows = tx.execute(
                self._COLLECTION_ROW + " WHERE tenant = ? AND collection_id > ?"
                " ORDER BY collection_id LIMIT ?",
                (tenant, after, size + 1),
            ).fetchall()
        items = [self._collection(r) for r in rows[:size]]
        token = encode_page_token(scope, items[-1].collection_id) if len(rows) > size else ""
        return Page(items, token)

    def get_collection(self, tenant: str, collection_id: str) -> Collection:
        check_scope(tenant, collection_id)
        with self._tx(write=False) as tx:
            row = tx.execute(
                self._COLLECTION_ROW + " WHERE tenant = ? AND collection_id = ?",
                (tenant, collection_id),
            ).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {collection_id!r} does not exist")
        return self._collection(row)

    def delete_collection(self, tenant: str, collection_id: str) -> int:
        """Deletes the collection and every face in it; -> change seq."""
        check_scope(tenant, collection_id)
        with self._tx(write=True) as tx:
            pk = self._collection_pk(tx, tenant, collection_id, lock=True)
            tx.execute("DELETE FROM gallery_faces WHERE collection_pk = ?", (pk,))
            tx.execute("DELETE FROM gallery_subjects WHERE collection_pk = ?", (pk,))
            tx.execute("DELETE FROM gallery_collections WHERE pk = ?", (pk,))
            seq = self._log(tx, ChangeKind.DROP, pk, tenant, collection_id)
        self._after_delete()
        return seq

    # ------------------------------------------------------------------ faces

    def add_faces(
        self, tenant: str, collection_id: str, faces: Sequence[NewFace]
    ) -> tuple[list[StoredFace], int]:
        """-> (the stored faces with their new ids, in order; change seq)."""
        check_scope(tenant, collection_id)
        faces = check_new_faces(faces)
        created = datetime.now(UTC)
        stamp = self.dialect.stamp(created)
        fids = [uuid.uuid4() for _ in faces]
        rows = [
            (
                self.dialect.face_id(fid),
                face.subject,
                face.external_id,
                *((box.left, box.top, box.right, box.bottom) if (box := face.box) else (None,) * 4),
                stamp,
                encoding_bytes(face.encoding),
            )
            for fid, face in zip(fids, faces, strict=True)
        ]
        with self._tx(write=True) as tx:
            # The row lock: a concurrent delete of the collection waits for us (or we for it).
            cpk = self._collection_pk(tx, tenant, collection_id, lock=True)
            pks = tx.insert_returning(
                "INSERT INTO gallery_faces (collection_pk, face_id, subject, external_id,"
                " box_left, box_top, box_right, box_bottom, created_at, encoding)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING pk",
                [(cpk, *row) for row in rows],
            )
            new_subjects = 0
            # Sorted: concurrent writers lock subject rows in one order (no deadlock).
            for subject, count in sorted(Counter(f.subject for f in faces).items()):
                total = tx.execute(
                    "INSERT INTO gallery_subjects (collection_pk, subject, face_count)"
                    " VALUES (?, ?, ?) ON CONFLICT (collection_pk, subject)"
                    " DO UPDATE SET face_count = gallery_subjects.face_count + excluded.face_count"
                    " RETURNING face_count",
                    (cpk, subject, count),
                ).fetchone()[0]
                new_subjects += total == count
            tx.execute(
                "UPDATE gallery_collections SET face_count = face_count + ?,"
                " subject_count = subject_count + ? WHERE pk = ?",
                (len(faces), new_subjects, cpk),
            )
            seq = self._log(tx, ChangeKind.ADD, cpk, tenant, collection_id, sorted(pks))
        stored = [
            StoredFace(str(fid), f.subject, f.external_id, f.box, created)
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
        check_scope(tenant, collection_id)
        if subject is not None:
            check_subject(subject)
        size = check_page_size(page_size)
        columns = _face_columns(self.dialect, include_encodings)
        with self._tx(write=False) as tx:
            cpk = self._collection_pk(tx, tenant, collection_id)
            scope = ("faces", tenant, cpk, subject or "")
            after = decode_page_token(page_token, scope, int) or 0
            where, params = (" AND f.subject = ?", (subject,)) if subject is not None else ("", ())
            rows = tx.execute(
                f"SELECT {columns} FROM gallery_faces f WHERE f.collection_pk = ?{where}"
                " AND f.pk > ? ORDER BY f.pk LIMIT ?",
                (cpk, *params, after, size + 1),
            ).fetchall()
        items = [self._face(r, include_encodings) for r in rows[:size]]
        token = encode_page_token(scope, rows[size - 1][0]) if len(rows) > size else ""
        return Page(items, token)

    def get_face(
        self, tenant: str, collection_id: str, face_id: str, include_encoding: bool = False
    ) -> StoredFace:
        check_scope(tenant, collection_id)
        fid = parse_face_id(face_id)
        columns = _face_columns(self.dialect, include_encoding)
        with self._tx(write=False) as tx:
            cpk = self._collection_pk(tx, tenant, collection_id)
            row = tx.execute(
                f"SELECT {columns} FROM gallery_faces f WHERE f.face_id = ? AND f.collection_pk = ?",
                (self.dialect.face_id(fid), cpk),
            ).fetchone()
        if row is None:
            raise FaceNotFound(f"face {face_id} is not in collection {collection_id!r}")
        return self._face(row, include_encoding)

    @staticmethod
    def _forget_subjects(tx: Tx, cpk: int, subjects: Counter) -> int:
        """Lower per-subject counts after a delete; -> subjects that have no face left."""
        gone = 0
        for subject, count in sorted(subjects.items()):
            left = tx.execute(
                "UPDATE gallery_subjects SET face_count = face_count - ?"
                " WHERE collection_pk = ? AND subject = ? RETURNING face_count",
                (count, cpk, subject),
            ).fetchone()
            if left is not None and left[0] <= 0:
                tx.execute(
                    "DELETE FROM gallery_subjects WHERE collection_pk = ? AND subject = ?",
                    (cpk, subject),
                )
                gone += 1
        return gone

    def _removed(
        self, tx: Tx, cpk: int, tenant: str, collection_id: str, pks: list[int], subjects: int
    ) -> int:
        """Lower the collection's counts after a delete and log it; -> change seq."""
        tx.execute(
            "UPDATE gallery_collections SET face_count = face_count - ?,"
            " subject_count = subject_count - ? WHERE pk = ?",
            (len(pks), subjects, cpk),
        )
        return self._log(tx, ChangeKind.REMOVE, cpk, tenant, collection_id, sorted(pks))

    def delete_faces(
        self, tenant: str, collection_id: str, face_ids: Sequence[str]
    ) -> tuple[list[str], int]:
        """-> (ids that were deleted; unknown ones are skipped, change seq or 0)."""
        check_scope(tenant, collection_id)
        fids = parse_face_ids(face_ids)
        with self._tx(write=True) as tx:
            cpk = self._collection_pk(tx, tenant, collection_id, lock=True)
            among, params = self.dialect.in_face_ids("face_id", fids)
            rows = tx.execute(
                f"DELETE FROM gallery_faces WHERE collection_pk = ? AND {among}"
                f" RETURNING pk, {self.dialect.face_id_bytes('face_id')}, subject",
                (cpk, *params),
            ).fetchall()
            if not rows:
                return [], 0
            gone = self._forget_subjects(tx, cpk, Counter(r[2] for r in rows))
            seq = self._removed(tx, cpk, tenant, collection_id, [r[0] for r in rows], gone)
        self._after_delete()
        return [str(uuid.UUID(bytes=bytes(r[1]))) for r in rows], seq

    def delete_subject(self, tenant: str, collection_id: str, subject: str) -> tuple[int, int]:
        """-> (faces deleted, change seq). SubjectNotFound when it has none."""
        check_scope(tenant, collection_id)
        check_subject(subject)
        with self._tx(write=True) as tx:
            cpk = self._collection_pk(tx, tenant, collection_id, lock=True)
            rows = tx.execute(
                "DELETE FROM gallery_faces WHERE collection_pk = ? AND subject = ? RETURNING pk",
                (cpk, subject),
            ).fetchall()
            if not rows:
                raise SubjectNotFound(
                    f"collection {collection_id!r} has no face of subject {subject!r}"
                )
            tx.execute(
                "DELETE FROM gallery_subjects WHERE collection_pk = ? AND subject = ?",
                (cpk, subject),
            )
            seq = self._removed(tx, cpk, tenant, collection_id, [r[0] for r in rows], 1)
        self._after_delete()
        return len(rows), seq

    # ------------------------------------------------------- what sync needs

    @classmethod
    def _head(cls, conn) -> Head:
        """The change log's head on a driver connection (in or out of a transaction)."""
        seq, pruned = conn.execute(
            "SELECT (SELECT coalesce(max(seq), 0) FROM gallery_changes),"
            " (SELECT value FROM gallery_meta WHERE key = 'pruned_through')"
        ).fetchone()
        return Head(max(seq, pruned), pruned)

    def head(self) -> Head:
        with self._transaction(write=False) as conn:
            return self._head(conn)

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        with self._tx(write=False) as tx:
            rows = tx.execute(
                "SELECT seq, kind, collection_pk, tenant, collection_id, face_pks"
                " FROM gallery_changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        read = self.dialect.read_int_list
        return [Change(s, ChangeKind(k), cpk, t, cid, read(p)) for s, k, cpk, t, cid, p in rows]

    def _face_rows_query(self, where: str = "") -> str:
        return (
            f"SELECT collection_pk, pk, {self.dialect.face_id_bytes('face_id')}, subject,"
            f" encoding FROM gallery_faces{where} ORDER BY pk"
        )

    def faces_by_pks(self, pks: Sequence[int]) -> FaceRows:
        """The faces among `pks` that still exist, in pk order."""
        if not len(pks):
            return FaceRows.empty()
        query = self._face_rows_query(f" WHERE {self.dialect.in_int_list('pk')}")
        with self._tx(write=False) as tx:
            rows = tx.execute(query, (self.dialect.int_list(pks),)).fetchall()
        return FaceRows.from_rows(rows)

    @contextmanager
    def snapshot(self, chunk_size: int = 20_000) -> Iterator[Snapshot]:
        """Every collection, their faces (in chunks) and the seq they reflect, all
        read in one transaction that stays open while the caller loads."""
        with self._snapshot_transaction() as conn:
            head = self._head(conn)
            collections = [
                CollectionRef(*r)
                for r in conn.execute(
                    "SELECT pk, tenant, collection_id, face_count FROM gallery_collections"
                    " ORDER BY pk"
                ).fetchall()
            ]
            chunks = (
                FaceRows.from_rows(rows)
                for rows in self._stream(conn, self._face_rows_query(), chunk_size)
            )
            yield Snapshot(head.seq, collections, chunks)

    def prune_changes(self, older_than_s: float) -> int:
        """Delete change-log rows older than this, keeping the last; -> rows deleted."""
        cutoff = self.dialect.instant(time.time() - older_than_s)
        with self._tx(write=True) as tx:
            self.dialect.lock_change_log(tx)
            last = tx.execute(
                "SELECT max(seq) FROM gallery_changes WHERE created_at < ?"
                " AND seq < (SELECT max(seq) FROM gallery_changes)",
                (cutoff,),
            ).fetchone()[0]
            if last is None:
                return 0
            deleted = tx.execute("DELETE FROM gallery_changes WHERE seq <= ?", (last,)).rowcount
            tx.execute(
                "UPDATE gallery_meta SET value = ? WHERE key = 'pruned_through' AND value < ?",
                (last, last),
            )
        return deleted
