"""The face gallery as one replica serves it: the store (system of record)
plus the in-memory index that the sync thread keeps current.

Writes go to the store, then this replica applies its own change at once
(read-your-writes); every other replica applies it within a second. Searches
run on memory only, and refuse (StoreUnavailable) while this replica cannot
reach the store, so a deleted face can never keep matching on a cut-off
replica.

Every method blocks (database I/O, or a numpy search holding a core for a
few milliseconds): from asyncio, call them via `asyncio.to_thread`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from face_service.gallery.errors import CollectionNotFound, StoreUnavailable
from face_service.gallery.index import (
    CollectionIndex,
    GalleryIndex,
    Identification,
    Verification,
    check_probes,
    check_search,
)
from face_service.gallery.settings import GallerySettings
from face_service.gallery.sql import GalleryStore
from face_service.gallery.store import (
    Collection,
    NewFace,
    Page,
    StoredFace,
    check_encoding,
    check_scope,
)
from face_service.gallery.sync import GallerySync

logger = logging.getLogger(__name__)


def open_store(settings: GallerySettings) -> GalleryStore:
    """The store named by settings.url (PostgreSQL is imported only when used)."""
    url = settings.url
    if url.startswith(("postgresql://", "postgres://")):
        from face_service.gallery.postgres import PostgresStore

        return PostgresStore(
            url,
            pool_max=settings.pool_max,
            connect_timeout_s=settings.connect_timeout_s,
            statement_timeout_s=settings.statement_timeout_s,
        )
    from face_service.gallery.sqlite import SqliteStore, path_from_url

    return SqliteStore(path_from_url(url))


@dataclass(frozen=True)
class GalleryStats:
    collections: int
    faces: int
    memory_bytes: int
    approximate_collections: int
    seq: int
    load_seconds: float | None
    available: bool


class Gallery:
    """Collections of known faces: enroll, list, forget (store) and identify,
    verify (memory). Blocking methods: call via asyncio.to_thread."""

    def __init__(
        self,
        store: GalleryStore,
        settings: GallerySettings | None = None,
        on_availability: Callable[[bool], None] | None = None,
    ) -> None:
        self.settings = settings or GallerySettings()
        self.store = store
        self.index = GalleryIndex(self.settings.index_settings())
        self.sync = GallerySync(
            store, self.index, self.settings.sync_settings(), on_availability=on_availability
        )

    @classmethod
    def open(
        cls,
        settings: GallerySettings | None = None,
        on_availability: Callable[[bool], None] | None = None,
    ) -> Gallery:
        settings = settings or GallerySettings()
        return cls(open_store(settings), settings, on_availability)

    # ------------------------------------------------------------- lifecycle

    def start(self, wait_s: float | None = None) -> bool:
        """Start the sync thread (migrate, load, follow). With wait_s, block up to
        that long for the load; -> whether it is loaded."""
        self.sync.start()
        return self.sync.wait_ready(wait_s) if wait_s is not None else self.sync.ready

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.sync.wait_ready(timeout)

    def close(self) -> None:
        """Stop following, zero the in-memory encodings, close the store."""
        self.sync.stop()
        self.index.close()
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def available(self) -> bool:
        """Loaded and in touch with the store: report SERVING only while True."""
        return self.sync.available

    def stats(self) -> GalleryStats:
        collections = self.index.collections()
        return GalleryStats(
            collections=len(collections),
            faces=sum(len(c) for c in collections),
            memory_bytes=sum(c.nbytes for c in collections),
            approximate_collections=sum(c.approximate for c in collections),
            seq=self.sync.seq,
            load_seconds=self.sync.load_seconds,
            available=self.sync.available,
        )

    def _call(self, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except StoreUnavailable as exc:
            self.sync.report_failure(exc)
            raise

    # ----------------------------------------------------------- collections

    def create_collection(
        self, tenant: str, collection_id: str, description: str = ""
    ) -> Collection:
        collection, seq = self._call(
            self.store.create_collection, tenant, collection_id, description
        )
        self.sync.wait_applied(seq)
        return collection

    def list_collections(
        self, tenant: str, page_size: int = 0, page_token: str = ""
    ) -> Page[Collection]:
        return self._call(self.store.list_collections, tenant, page_size, page_token)

    def get_collection(self, tenant: str, collection_id: str) -> Collection:
        """The collection with its face and subject counts."""
        return self._call(self.store.get_collection, tenant, collection_id)

    def delete_collection(self, tenant: str, collection_id: str) -> None:
        """Delete the collection and every face in it, from the store and from
        every replica's memory."""
        seq = self._call(self.store.delete_collection, tenant, collection_id)
        self.sync.wait_applied(seq)

    # ----------------------------------------------------------------- faces

    def add_faces(
        self, tenant: str, collection_id: str, faces: Sequence[NewFace]
    ) -> list[StoredFace]:
        """Enroll faces (at most 1000 per call); -> them with their new face ids, in order."""
        stored, seq = self._call(self.store.add_faces, tenant, collection_id, faces)
        self.sync.wait_applied(seq)
        return stored

    def list_faces(self, tenant: str, collection_id: str, **options) -> Page[StoredFace]:
        """A page of the collection's faces; `options` are GalleryStore.list_faces's
        (subject, page_size, page_token, include_encodings)."""
        return self._call(self.store.list_faces, tenant, collection_id, **options)

    def delete_faces(self, tenant: str, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        """Delete faces by id; -> the ids that existed (and are now gone everywhere)."""
        deleted, seq = self._call(self.store.delete_faces, tenant, collection_id, face_ids)
        self.sync.wait_applied(seq)
        return deleted

    def delete_subject(self, tenant: str, collection_id: str, subject: str) -> int:
        """Delete every face of a subject; -> how many. SubjectNotFound when none."""
        count, seq = self._call(self.store.delete_subject, tenant, collection_id, subject)
        self.sync.wait_applied(seq)
        return count

    # ---------------------------------------------------------------- search

    def _collection(self, tenant: str, collection_id: str) -> CollectionIndex:
        check_scope(tenant, collection_id)
        self.sync.check_available()
        index = self.index.get(tenant, collection_id)
        if index is None:
            # Created on another replica in the last instant? One cheap look at the log.
            try:
                self.sync.catch_up()
            except StoreUnavailable as exc:
                self.sync.report_failure(exc)
                raise
            index = self.index.get(tenant, collection_id)
        if index is None:
            raise CollectionNotFound(f"collection {collection_id!r} does not exist")
        return index

    def require_collection(self, tenant: str, collection_id: str) -> None:
        """Raise CollectionNotFound (or StoreUnavailable) now, from memory, so a
        request that would fail anyway costs no detection first."""
        self._collection(tenant, collection_id)

    def threshold(self, threshold: float | None) -> float:
        """The distance a match must be within: the caller's, else the setting."""
        return self.settings.threshold if threshold is None else threshold

    def _search(
        self, top_k: int, threshold: float | None, distinct_subjects: bool, exact: bool | None
    ) -> dict:
        """The checked options of a search, as CollectionIndex.search takes them."""
        threshold = self.threshold(threshold)
        check_search(top_k, threshold)
        return {
            "top_k": top_k,
            "threshold": threshold,
            "distinct_subjects": distinct_subjects,
            "exact": exact,
        }

    def identify(
        self,
        tenant: str,
        collection_id: str,
        encodings,
        *,
        top_k: int = 1,
        threshold: float | None = None,
        distinct_subjects: bool = False,
        exact: bool | None = None,
    ) -> list[Identification]:
        """Who are these faces? encodings: one (128,) or many (m, 128). For each,
        up to top_k enrolled faces within the threshold, best first; none = unknown.
        distinct_subjects: at most one face per subject. exact: None = approximate
        when the collection has that index, True = always exact."""
        search = self._search(top_k, threshold, distinct_subjects, exact)
        probes = check_probes(encodings)
        return self._collection(tenant, collection_id).search(probes, **search)

    def identify_face(
        self,
        tenant: str,
        collection_id: str,
        face_id: str,
        *,
        top_k: int = 1,
        threshold: float | None = None,
        distinct_subjects: bool = False,
        exact: bool | None = None,
    ) -> Identification:
        """Search with an enrolled face (by id); the face itself is not among the matches."""
        search = self._search(top_k, threshold, distinct_subjects, exact)
        return self._collection(tenant, collection_id).search_face(face_id, **search)

    def verify(
        self,
        tenant: str,
        collection_id: str,
        subject: str,
        encoding,
        *,
        threshold: float | None = None,
    ) -> Verification:
        """Is this face the claimed subject? Compares with each of the subject's faces."""
        threshold = self.threshold(threshold)
        check_search(1, threshold)
        probe = check_encoding(encoding, "encoding")
        index = self._collection(tenant, collection_id)
        return index.verify(subject, np.asarray(probe), threshold)
