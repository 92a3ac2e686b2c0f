"""Face collections as the face service runs them: the model (worker processes)
finds and encodes faces, the gallery (this process) stores and searches them.

Plain Python and asyncio: no grpc here (the servicer translates). Gallery
calls block on database I/O or a search, so they run in a thread
(`asyncio.to_thread`); detection and encodings run in the engine's worker
processes. A request naming an unknown collection fails before any detection
is paid for. Encodings never leave this module except into the gallery, and
are never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from face_service.gallery import (
    Collection,
    Gallery,
    Identification,
    NewFace,
    Page,
    StoredFace,
    Verification,
)
from face_service.gallery.store import check_collection_id, check_new_subject, check_subject
from face_service.inference import ChosenFaces, Face, FaceOptions, ImageFaces

# The gallery searches at most this many probes per call.
_PROBES_PER_SEARCH = 100


class Engine(Protocol):
    async def detect_image(self, data: bytes, opts: FaceOptions) -> ImageFaces: ...

    async def largest_faces(
        self, data: bytes, opts: FaceOptions, max_faces: int, min_side: int, purpose: str
    ) -> ChosenFaces: ...


@dataclass(frozen=True)
class Search:
    """How to identify: against which collection, how many matches, how close.
    threshold None: the gallery's default (FACE_GALLERY_THRESHOLD)."""

    collection_id: str
    top_k: int = 1
    threshold: float | None = None


@dataclass
class IdentifiedFaces:
    """An image's faces, each with its identification (in the same order)."""

    image: ImageFaces
    identities: list[Identification]
    threshold: float


@dataclass
class Enrollment:
    faces: list[StoredFace]
    found: int
    width: int
    height: int


@dataclass
class Verified:
    verification: Verification
    face: Face
    threshold: float
    width: int
    height: int


class FaceCollections:
    """Enroll, list, forget, identify and verify, per tenant."""

    def __init__(self, engine: Engine, gallery: Gallery, min_enroll_face_px: int) -> None:
        self.engine = engine
        self.gallery = gallery
        self.min_enroll_face_px = min_enroll_face_px

    def threshold(self, threshold: float | None) -> float:
        return self.gallery.threshold(threshold)

    # --- collections ----------------------------------------------------------------

    async def create(self, tenant: str, collection_id: str, description: str) -> Collection:
        return await asyncio.to_thread(
            self.gallery.create_collection, tenant, collection_id, description
        )

    async def list(self, tenant: str, page_size: int, page_token: str) -> Page[Collection]:
        return await asyncio.to_thread(self.gallery.list_collections, tenant, page_size, page_token)

    async def describe(self, tenant: str, collection_id: str) -> Collection:
        return await asyncio.to_thread(self.gallery.get_collection, tenant, collection_id)

    async def delete(self, tenant: str, collection_id: str) -> None:
        await asyncio.to_thread(self.gallery.delete_collection, tenant, collection_id)

    async def require(self, tenant: str, collection_id: str) -> None:
        """NotFound (or Unavailable) now, before any detection is paid for."""
        check_collection_id(collection_id)
        await asyncio.to_thread(self.gallery.require_collection, tenant, collection_id)

    # --- faces ----------------------------------------------------------------------

    async def enroll(
        self,
        tenant: str,
        collection_id: str,
        data: bytes,
        subject: str,
        external_id: str | None,
        max_faces: int,
        opts: FaceOptions,
    ) -> Enrollment:
        """Enroll the largest face(s) of an image under `subject`."""
        check_new_subject(subject)
        await self.require(tenant, collection_id)
        opts = dataclasses.replace(opts, landmarks=False, encodings=True)
        chosen = await self.engine.largest_faces(
            data, opts, max_faces, self.min_enroll_face_px, "enrollment"
        )
        new = [
            NewFace(
                subject,
                face.encoding,
                face.box,
                external_id or None,
            )
            for face in chosen.faces
        ]
        stored = await asyncio.to_thread(self.gallery.add_faces, tenant, collection_id, new)
        for face in chosen.faces:
            face.encoding = None  # no copy lingers beyond the store and the index
        return Enrollment(stored, chosen.found, chosen.width, chosen.height)

    async def list_faces(
        self, tenant: str, collection_id: str, subject: str | None, page_size: int, token: str
    ) -> Page[StoredFace]:
        return await asyncio.to_thread(
            lambda: self.gallery.list_faces(
                tenant, collection_id, subject=subject, page_size=page_size, page_token=token
            )
        )

    async def delete_faces(
        self, tenant: str, collection_id: str, face_ids: Sequence[str]
    ) -> list[str]:
        return await asyncio.to_thread(self.gallery.delete_faces, tenant, collection_id, face_ids)

    async def delete_subject(self, tenant: str, collection_id: str, subject: str) -> int:
        return await asyncio.to_thread(self.gallery.delete_subject, tenant, collection_id, subject)

    # --- identification -------------------------------------------------------------

    async def identify(self, tenant: str, search: Search, image: ImageFaces) -> IdentifiedFaces:
        """Identify faces already detected with encodings."""
        encodings = [face.encoding for face in image.faces]
        identities: list[Identification] = []
        for start in range(0, len(encodings), _PROBES_PER_SEARCH):
            probes = np.stack(encodings[start : start + _PROBES_PER_SEARCH])
            identities += await asyncio.to_thread(
                lambda p=probes: self.gallery.identify(
                    tenant,
                    search.collection_id,
                    p,
                    top_k=search.top_k,
                    threshold=search.threshold,
                )
            )
        return IdentifiedFaces(image, identities, self.threshold(search.threshold))

    async def identify_image(
        self, tenant: str, search: Search, data: bytes, opts: FaceOptions
    ) -> IdentifiedFaces:
        await self.require(tenant, search.collection_id)
        image = await self.engine.detect_image(data, _with_encodings(opts))
        return _strip(await self.identify(tenant, search, image), opts)

    async def search(
        self, tenant: str, search: Search, face_id: str
    ) -> tuple[Identification, float]:
        identification = await asyncio.to_thread(
            lambda: self.gallery.identify_face(
                tenant,
                search.collection_id,
                face_id,
                top_k=search.top_k,
                threshold=search.threshold,
            )
        )
        return identification, self.threshold(search.threshold)

    async def verify(
        self,
        tenant: str,
        collection_id: str,
        subject: str,
        data: bytes,
        threshold: float | None,
        opts: FaceOptions,
    ) -> Verified:
        """Is the image's largest face the subject's?"""
        check_subject(subject)
        await self.require(tenant, collection_id)
        chosen = await self.engine.largest_faces(data, _with_encodings(opts), 1, 0, "verification")
        face = chosen.faces[0]
        verification = await asyncio.to_thread(
            lambda: self.gallery.verify(
                tenant, collection_id, subject, face.encoding, threshold=threshold
            )
        )
        if not opts.encodings:
            face.encoding = None
        return Verified(verification, face, self.threshold(threshold), chosen.width, chosen.height)


def _with_encodings(opts: FaceOptions) -> FaceOptions:
    return opts if opts.encodings else dataclasses.replace(opts, encodings=True)


def _strip(result: IdentifiedFaces, opts: FaceOptions) -> IdentifiedFaces:
    """Drop the encodings the caller did not ask for."""
    if not opts.encodings:
        for face in result.image.faces:
            face.encoding = None
    return result


class TrackIdentities:
    """Identification once per track, for one tracked video or stream.

    A track is searched from its first face, then again only when a clearly
    better face of it arrives (quality at least BETTER times the one it was
    identified from), or when a face of it no longer looks like the face it was
    identified from (encodings further apart than SAME_PERSON: the tracker
    joined two people, at a scene cut for instance). Every face of the track
    carries the track's current identity, so a name does not flicker from
    frame to frame. A face in no track (its first frame, or tracking off) is
    searched on its own. The track's identity goes into the scene's log for the
    summary. Encodings stay in this object, for the call's lifetime only."""

    BETTER = 1.25
    SAME_PERSON = 0.6  # face_recognition's tolerance

    def __init__(self, collections: FaceCollections, tenant: str, search: Search, scene) -> None:
        self.collections = collections
        self.tenant = tenant
        self.search = search
        self.scene = scene
        self.searches = 0
        self._identity: dict[int, Identification] = {}
        self._quality: dict[int, float] = {}
        self._reference: dict[int, np.ndarray] = {}

    def _needs_search(self, track_id: int, face: Face) -> bool:
        if not track_id or track_id not in self._identity:
            return True
        if (face.quality or 0.0) > self._quality[track_id] * self.BETTER:
            return True
        distance = float(np.linalg.norm(face.encoding - self._reference[track_id]))
        return distance > self.SAME_PERSON

    async def identify(self, image: ImageFaces, track_ids: list[int]) -> IdentifiedFaces:
        """Each face's identification (its track's), searching only where needed."""
        ids = track_ids or [0] * len(image.faces)
        wanted = [i for i, face in enumerate(image.faces) if self._needs_search(ids[i], face)]
        found: dict[int, Identification] = {}
        if wanted:
            probes = ImageFaces(image.width, image.height, [image.faces[i] for i in wanted])
            result = await self.collections.identify(self.tenant, self.search, probes)
            self.searches += len(wanted)
            found = dict(zip(wanted, result.identities, strict=True))
        identities = []
        for i, face in enumerate(image.faces):
            tid = ids[i]
            if tid and i in found:
                self._identity[tid] = found[i]
                self._quality[tid] = face.quality or 0.0
                self._reference[tid] = face.encoding
                self._record(tid, found[i])
            identities.append(self._identity[tid] if tid else found[i])
        return IdentifiedFaces(image, identities, self.threshold)

    def _record(self, track_id: int, identification: Identification) -> None:
        record = self.scene.log.tracks.get(track_id)
        if record is not None:
            best = identification.best
            record.subject = best.subject if best else ""
            record.face_id = best.face_id if best else ""
            record.distance = best.distance if best else 0.0

    @property
    def threshold(self) -> float:
        return self.collections.threshold(self.search.threshold)
