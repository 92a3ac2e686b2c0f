"""The gallery's system of record: its dataclasses, input checks and page tokens.

`sql.py` keeps them in a database (`GalleryStore`, on `sqlite.py`, the
embedded default, or `postgres.py`, for many replicas at scale).
Everything is scoped by a tenant: a collection id is unique per tenant and
another tenant's collection answers CollectionNotFound.

Every mutation also appends one row to a change log (a monotonic `seq`, the
collection, and the ids of the faces it touched; never an encoding), in the
same transaction; `sync.py` replays it into each replica's in-memory index.

The store's methods block (sqlite3 / psycopg): from asyncio call them
through `asyncio.to_thread`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

import numpy as np

from face_service.gallery.errors import (
    AlreadyExists,
    CollectionExists,
    CollectionNotFound,
    FaceNotFound,
    InvalidInput,
    NotFound,
    StoreUnavailable,
    SubjectNotFound,
    Unavailable,
)
from face_service.inference import ENCODING_SIZE, Box  # the model's face, as enrolled
from percept_runtime import ids

__all__ = [
    "AlreadyExists",
    "Box",
    "Change",
    "ChangeKind",
    "Collection",
    "CollectionExists",
    "CollectionNotFound",
    "CollectionRef",
    "FaceNotFound",
    "FaceRows",
    "Head",
    "InvalidInput",
    "NewFace",
    "NotFound",
    "Page",
    "Snapshot",
    "StoreUnavailable",
    "StoredFace",
    "SubjectNotFound",
    "Unavailable",
]


MAX_TENANT_CHARS = 128
MAX_SUBJECT_CHARS = 256
MAX_EXTERNAL_ID_CHARS = 256
MAX_DESCRIPTION_CHARS = 1024
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_FACES_PER_ADD = 1000
# Largest |component| accepted in an encoding; face_recognition's are below 1.
MAX_ENCODING_COMPONENT = 100.0


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class NewFace:
    """A face to enroll: whose it is, its 128-d encoding, and where it was."""

    subject: str
    encoding: np.ndarray
    box: Box | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class Collection:
    """A tenant's named set of enrolled faces."""

    collection_id: str
    description: str
    created_at: datetime
    face_count: int
    subject_count: int


@dataclass(frozen=True, eq=False)
class StoredFace:
    """An enrolled face. `encoding` is None unless it was asked for."""

    face_id: str
    subject: str
    external_id: str | None
    box: Box | None
    created_at: datetime
    encoding: np.ndarray | None = None


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass `next_page_token` back for the next ("" at the end)."""

    items: list[T]
    next_page_token: str = ""


class ChangeKind(enum.StrEnum):
    CREATE = "create"  # a collection was created
    ADD = "add"  # faces were added (face_pks)
    REMOVE = "remove"  # faces were deleted (face_pks)
    DROP = "drop"  # a collection and all its faces were deleted


@dataclass(frozen=True)
class Change:
    """One committed mutation, in commit order. Holds ids only, never encodings."""

    seq: int
    kind: ChangeKind
    collection_pk: int
    tenant: str
    collection_id: str
    face_pks: tuple[int, ...] = ()


@dataclass(frozen=True)
class Head:
    """Where the change log stands: its last seq, and the last seq pruned from it."""

    seq: int
    pruned_through: int


@dataclass(frozen=True)
class CollectionRef:
    """A collection as the index knows it: its internal key and its names."""

    pk: int
    tenant: str
    collection_id: str
    face_count: int = 0  # at snapshot time: lets the loader size its arrays once


@dataclass(eq=False)
class FaceRows:
    """Faces as columns, for loading the index: internal keys, face ids as two
    uint64 words (the UUID's 16 bytes), subjects, float32 encodings."""

    collection_pks: np.ndarray  # int64 (n,)
    pks: np.ndarray  # int64 (n,)
    face_ids: np.ndarray  # uint64 (n, 2)
    subjects: list[str]
    encodings: np.ndarray  # float32 (n, 128)

    def __len__(self) -> int:
        return len(self.pks)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[int, int, bytes, str, bytes]]) -> FaceRows:
        """rows: (collection_pk, pk, face_id 16 bytes, subject, encoding 512 bytes)."""
        n = len(rows)
        if n == 0:
            return cls.empty()
        cpks, pks, fids, subjects, encs = zip(*rows, strict=True)
        encodings = np.frombuffer(b"".join(encs), dtype="<f4").reshape(n, ENCODING_SIZE)
        return cls(
            collection_pks=np.fromiter(cpks, dtype=np.int64, count=n),
            pks=np.fromiter(pks, dtype=np.int64, count=n),
            face_ids=np.frombuffer(b"".join(fids), dtype="<u8").reshape(n, 2).copy(),
            subjects=list(subjects),
            encodings=encodings.astype(np.float32, copy=True),
        )

    @classmethod
    def empty(cls) -> FaceRows:
        return cls(
            collection_pks=np.zeros(0, np.int64),
            pks=np.zeros(0, np.int64),
            face_ids=np.zeros((0, 2), np.uint64),
            subjects=[],
            encodings=np.zeros((0, ENCODING_SIZE), np.float32),
        )

    def select(self, mask: np.ndarray) -> FaceRows:
        idx = np.flatnonzero(mask)
        return FaceRows(
            collection_pks=self.collection_pks[idx],
            pks=self.pks[idx],
            face_ids=self.face_ids[idx],
            subjects=[self.subjects[i] for i in idx],
            encodings=self.encodings[idx],
        )


@dataclass
class Snapshot:
    """A consistent view of the whole store, for a replica's start-up load:
    every collection, their faces (in chunks), and the change-log seq it reflects."""

    seq: int
    collections: list[CollectionRef]
    chunks: Iterator[FaceRows] = field(default_factory=lambda: iter(()))


# ------------------------------------------------------------------ input checks


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not tenant or len(tenant) > MAX_TENANT_CHARS:
        raise InvalidInput(f"tenant must be 1-{MAX_TENANT_CHARS} characters")
    if not tenant.isprintable():
        raise InvalidInput("tenant must not contain control characters")
    return tenant


def check_collection_id(collection_id: str, *, new: bool = False) -> str:
    """The shared id rule (percept_runtime.ids): a new id must not be only dots."""
    return ids.check_collection_id(collection_id, new=new)


def check_scope(tenant: str, collection_id: str) -> None:
    """The tenant and the existing collection every call on one collection names."""
    check_tenant(tenant)
    check_collection_id(collection_id)


def check_description(description: str | None) -> str:
    description = description or ""
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(f"description is longer than {MAX_DESCRIPTION_CHARS} characters")
    return description


def check_subject(subject: str) -> str:
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidInput("subject must be a non-empty name")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise InvalidInput(f"subject is longer than {MAX_SUBJECT_CHARS} characters")
    if not subject.isprintable():
        raise InvalidInput("subject must not contain control characters")
    return subject


def check_new_subject(subject: str) -> str:
    """A new face's subject: check_subject, and one a URL path can carry (not only dots)."""
    check_subject(subject)
    problem = ids.subject_problem(subject)
    if problem is not None:
        raise InvalidInput(problem)
    return subject


def check_encoding(values, where: str = "encoding") -> np.ndarray:
    """A finite float32 vector of 128 values (the caller's value is never echoed)."""
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where} must be {ENCODING_SIZE} numbers") from None
    if array.shape != (ENCODING_SIZE,):
        raise InvalidInput(f"{where} must have {ENCODING_SIZE} values, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.abs(array).max() > MAX_ENCODING_COMPONENT:
        raise InvalidInput(
            f"{where} must be finite numbers of magnitude <= {MAX_ENCODING_COMPONENT:g}"
        )
    return array


def check_box(box: Box | None) -> Box | None:
    if box is None:
        return None
    values = (box.left, box.top, box.right, box.bottom)
    if not all(isinstance(v, int | np.integer) for v in values):
        raise InvalidInput("box coordinates must be integers")
    if box.right < box.left or box.bottom < box.top:
        raise InvalidInput("box must have right >= left and bottom >= top")
    if any(abs(int(v)) > 2**31 - 1 for v in values):
        raise InvalidInput("box coordinates are out of range")
    return Box(int(box.left), int(box.top), int(box.right), int(box.bottom))


def check_new_faces(faces: Sequence[NewFace]) -> list[NewFace]:
    faces = list(faces)
    if not faces:
        raise InvalidInput("no face to add")
    if len(faces) > MAX_FACES_PER_ADD:
        raise InvalidInput(f"at most {MAX_FACES_PER_ADD} faces per call, got {len(faces)}")
    checked = []
    for i, face in enumerate(faces):
        external_id = face.external_id or None
        if external_id is not None and len(external_id) > MAX_EXTERNAL_ID_CHARS:
            raise InvalidInput(
                f"external_id must be at most {MAX_EXTERNAL_ID_CHARS} characters "
                f"(got {len(external_id)})"
            )
        if external_id is not None and not external_id.isprintable():
            raise InvalidInput("external_id must be printable characters (no control characters)")
        checked.append(
            NewFace(
                subject=check_new_subject(face.subject),
                encoding=check_encoding(face.encoding, f"faces[{i}].encoding"),
                box=check_box(face.box),
                external_id=external_id,
            )
        )
    return checked


def parse_face_id(face_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(face_id))
    except ValueError:
        raise InvalidInput(f"face id {str(face_id)[:80]!r} is not a face id (a UUID)") from None


def parse_face_ids(face_ids: Sequence[str]) -> list[uuid.UUID]:
    if isinstance(face_ids, str):
        face_ids = [face_ids]
    ids = [parse_face_id(f) for f in face_ids]
    if not ids:
        raise InvalidInput("no face id given")
    if len(ids) > MAX_PAGE_SIZE:
        raise InvalidInput(f"at most {MAX_PAGE_SIZE} face ids per call")
    return list(dict.fromkeys(ids))


def check_page_size(page_size: int) -> int:
    if not page_size:
        return DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size is {page_size}: it must be in [1, {MAX_PAGE_SIZE}]")
    return int(page_size)


def encoding_bytes(encoding: np.ndarray) -> bytes:
    return np.ascontiguousarray(encoding, dtype="<f4").tobytes()


def encoding_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def face_id_words(face_id: uuid.UUID) -> tuple[int, int]:
    """A face id as the two uint64 words the in-memory index keeps."""
    lo, hi = np.frombuffer(face_id.bytes, dtype="<u8")
    return int(lo), int(hi)


def face_id_from_words(words: np.ndarray) -> str:
    return str(uuid.UUID(bytes=np.asarray(words, dtype="<u8").tobytes()))


# ------------------------------------------------------------------- page tokens
#
# A token is opaque to callers: base64url of a small JSON object naming the
# listing it belongs to (a hash of tenant/collection/filter) and the last key
# seen. Keyset paging: stable under concurrent inserts and deletes.


def _scope(*parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:16]


def encode_page_token(scope_parts: tuple, after: str | int) -> str:
    body = json.dumps({"s": _scope(*scope_parts), "a": after}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_page_token(token: str, scope_parts: tuple, kind: type) -> str | int | None:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = body["a"]
        ok = body["s"] == _scope(*scope_parts) and isinstance(after, kind)
    except (ValueError, KeyError, TypeError, binascii.Error):
        ok = False
    if not ok:
        raise InvalidInput(
            "page_token is not a token of this listing: pass next_page_token as given"
        )
    return after
