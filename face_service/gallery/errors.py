"""Errors of the face gallery, as subclasses of the runtime's domain errors.

The server's one error table maps the bases: NotFound -> NOT_FOUND / 404,
InvalidInput -> INVALID_ARGUMENT / 422, Unavailable -> UNAVAILABLE / 503, and
AlreadyExists -> ALREADY_EXISTS / 409. Messages are safe to show a
caller: they name collections, subjects and face ids, never encodings.
"""

from __future__ import annotations

from percept_runtime.errors import AlreadyExists, InvalidInput, NotFound, Unavailable

__all__ = [
    "AlreadyExists",
    "CollectionExists",
    "CollectionNotFound",
    "FaceNotFound",
    "InvalidInput",
    "NotFound",
    "StoreUnavailable",
    "SubjectNotFound",
    "Unavailable",
]


class CollectionExists(AlreadyExists):
    """A collection with this id already exists for this tenant."""


class CollectionNotFound(NotFound):
    """No collection with this id for this tenant (another tenant's is invisible)."""


class SubjectNotFound(NotFound):
    """The collection holds no face of this subject."""


class FaceNotFound(NotFound):
    """No face with this id in the collection."""


class StoreUnavailable(Unavailable):
    """The gallery's database cannot be reached, or this replica's copy may be stale."""
