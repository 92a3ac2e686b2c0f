"""Face collections: enroll, identify, verify, forget, shared by every replica.

The store (SQLite file or PostgreSQL) is the system of record; each replica
searches an in-memory copy kept current by a sync thread. No grpc, fastapi or
redis here: the servicer and the gateway translate. All methods block: call
them from asyncio via `asyncio.to_thread`. See README.md beside this file for
where encodings are kept and how to erase them.
"""

from face_service.gallery.errors import (
    AlreadyExists,
    CollectionExists,
    CollectionNotFound,
    FaceNotFound,
    StoreUnavailable,
    SubjectNotFound,
)
from face_service.gallery.index import Identification, Match, Verification
from face_service.gallery.service import Gallery, GalleryStats, open_store
from face_service.gallery.settings import GallerySettings
from face_service.gallery.sql import GalleryStore
from face_service.gallery.store import Box, Collection, NewFace, Page, StoredFace

__all__ = [
    "AlreadyExists",
    "Box",
    "Collection",
    "CollectionExists",
    "CollectionNotFound",
    "FaceNotFound",
    "Gallery",
    "GallerySettings",
    "GalleryStats",
    "GalleryStore",
    "Identification",
    "Match",
    "NewFace",
    "Page",
    "StoreUnavailable",
    "StoredFace",
    "SubjectNotFound",
    "Verification",
    "open_store",
]
