"""FaceService: protobuf <-> domain translation only. The engine does the work;
face collections (face_service/collections.py) store and search faces.

Collections belong to the tenant named by the call's `x-percept-tenant`
metadata ("default" without it): the replicas trust it, since only the
gateway (with the shared token or a client certificate) can reach them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np
from google.protobuf import timestamp_pb2
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc

from face_service.collections import FaceCollections, IdentifiedFaces, Search, TrackIdentities
from face_service.gallery import Collection, Identification, StoredFace
from face_service.gallery.store import check_tenant
from face_service.inference import (
    Face,
    FaceOptions,
    ImageFaces,
    check_encoding,
    compare_encodings,
)
from percept_runtime import streaming
from percept_runtime.errors import InvalidInput, Unavailable
from percept_runtime.fields import check, value
from percept_runtime.tracking import Scene
from percept_runtime.video import VideoPolicy

_DETECTORS = {pb.DETECTOR_UNSPECIFIED: "hog", pb.DETECTOR_HOG: "hog", pb.DETECTOR_CNN: "cnn"}
TENANT_KEY = "x-percept-tenant"
DEFAULT_TENANT = "default"
_LANDMARK_PARTS = (
    "chin", "left_eyebrow", "right_eyebrow", "nose_bridge", "nose_tip",
    "left_eye", "right_eye", "top_lip", "bottom_lip",
)  # fmt: skip


class Engine(Protocol):
    async def detect_image(self, data: bytes, opts: FaceOptions) -> ImageFaces: ...

    async def detect_frame(self, rgb: np.ndarray, opts: FaceOptions) -> ImageFaces: ...


def options_from_proto(msg: pb.FaceOptions, *, encodings: bool | None = None) -> FaceOptions:
    """Domain options from FaceOptions (checked against the proto's rules);
    unset fields take the proto's defaults."""
    check(msg, "options")
    return FaceOptions(
        detector=_DETECTORS[msg.detector],
        upsample=value(msg, "upsample"),
        landmarks=msg.return_landmarks,
        encodings=msg.return_encodings if encodings is None else encodings,
        detection_max_side=value(msg, "detection_max_side"),
        num_jitters=value(msg, "num_jitters"),
    )


def tenant_of(context) -> str:
    """The call's tenant (`x-percept-tenant` metadata), "default" without one."""
    for key, val in context.invocation_metadata() or ():
        if key == TENANT_KEY:
            return check_tenant(val if isinstance(val, str) else val.decode("utf-8", "replace"))
    return DEFAULT_TENANT


def _timestamp(when) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


def collection_to_proto(c: Collection) -> pb.Collection:
    return pb.Collection(
        collection_id=c.collection_id,
        description=c.description,
        created_at=_timestamp(c.created_at),
        face_count=c.face_count,
        subject_count=c.subject_count,
    )


def stored_face_to_proto(f: StoredFace) -> pb.EnrolledFace:
    out = pb.EnrolledFace(
        face_id=f.face_id,
        subject=f.subject,
        external_id=f.external_id or "",
        created_at=_timestamp(f.created_at),
    )
    if f.box is not None:
        out.box.CopyFrom(
            image_pb2.BoundingBox(
                left=f.box.left, top=f.box.top, right=f.box.right, bottom=f.box.bottom
            )
        )
    return out


def matches_to_proto(identification: Identification) -> list[pb.IdentityMatch]:
    return [
        pb.IdentityMatch(face_id=m.face_id, subject=m.subject, distance=m.distance)
        for m in identification.matches
    ]


def search_from_proto(request) -> Search:
    """The identification fields of a request (collection_id, top_k, threshold)."""
    return Search(
        request.collection_id,
        value(request, "top_k"),
        request.threshold if request.HasField("threshold") else None,
    )


def _identified(result: IdentifiedFaces) -> list[pb.Face]:
    return [
        face_to_proto(face, identity)
        for face, identity in zip(result.image.faces, result.identities, strict=True)
    ]


def face_to_proto(
    face: Face, identification: Identification | None = None, track_id: int = 0
) -> pb.Face:
    box = face.box
    out = pb.Face(
        box=image_pb2.BoundingBox(left=box.left, top=box.top, right=box.right, bottom=box.bottom),
        track_id=track_id,
    )
    if face.landmarks is not None:
        for part in _LANDMARK_PARTS:
            getattr(out.landmarks, part).extend(
                image_pb2.Point(x=x, y=y) for x, y in face.landmarks.get(part, ())
            )
    if face.encoding is not None:
        out.encoding.extend(face.encoding.tolist())
    if identification is not None:
        out.matches.extend(matches_to_proto(identification))
    return out


def _faces(result: ImageFaces) -> list[pb.Face]:
    return [face_to_proto(face) for face in result.faces]


def _run_options(opts: FaceOptions, scene: Scene, search: Search | None) -> FaceOptions:
    """What a tracked frame needs computed: each face's quality (a track's best
    face), and its encoding when identifying."""
    return dataclasses.replace(
        opts,
        quality=scene.enabled,
        encodings=opts.encodings or search is not None,
    )


@dataclasses.dataclass(frozen=True)
class _LiveFaces:
    """A StreamFaces call's tracker and whom it identifies against, from its first message."""

    scene: Scene
    search: Search | None
    identities: TrackIdentities | None

    def close(self) -> None:
        self.scene.close()


def _track_faces(scene: Scene, index: int, timestamp: float, image: ImageFaces) -> list[int]:
    """The frame's faces through the call's tracker (in frame order); a face's
    quality ranks its track's sightings. Faces score 1: dlib gives no score."""
    if not scene.enabled:
        return []
    boxes = [(f.box.left, f.box.top, f.box.right, f.box.bottom) for f in image.faces]
    n = len(boxes)
    ranks = [f.quality or 0.0 for f in image.faces]
    return scene.update(index, timestamp, boxes, [1.0] * n, [0] * n, ranks)


async def _tracked_faces(
    image: ImageFaces,
    track_ids: list[int],
    identities: TrackIdentities | None,
    opts: FaceOptions,
) -> list[pb.Face]:
    ids = track_ids or [0] * len(image.faces)
    found = await identities.identify(image, track_ids) if identities else None
    if not opts.encodings:
        for face in image.faces:
            face.encoding = None  # computed to identify; not asked for
    return [
        face_to_proto(face, found.identities[i] if found else None, ids[i])
        for i, face in enumerate(image.faces)
    ]


class FaceServicer(face_service_pb2_grpc.FaceServiceServicer):
    def __init__(
        self,
        engine: Engine,
        video_policy: VideoPolicy,
        window: int,
        collections: FaceCollections | None = None,
    ) -> None:
        self.engine = engine
        self.video_policy = video_policy
        self.window = window
        self._collections = collections

    @property
    def collections(self) -> FaceCollections:
        if self._collections is None:
            raise Unavailable("this server keeps no face collections")
        return self._collections

    async def DetectFaces(self, request: pb.DetectFacesRequest, context) -> pb.DetectFacesResponse:
        opts = options_from_proto(request.options)
        result = await self.engine.detect_image(request.image.content, opts)
        return pb.DetectFacesResponse(
            faces=_faces(result), image_width=result.width, image_height=result.height
        )

    async def CompareFaces(
        self, request: pb.CompareFacesRequest, context
    ) -> pb.CompareFacesResponse:
        check(request)
        opts = options_from_proto(request.options, encodings=True)
        tolerance = value(request, "tolerance")
        which = request.WhichOneof("reference")
        if which is None:
            raise InvalidInput("set a reference: reference_image or reference_encodings")
        if which == "reference_encodings":
            if not request.reference_encodings.encodings:
                raise InvalidInput(
                    "reference_encodings is empty: give at least one 128-float encoding"
                )
            references = [
                check_encoding(e.values, f"reference_encodings[{i}]")
                for i, e in enumerate(request.reference_encodings.encodings)
            ]
            probe = await self.engine.detect_image(request.probe.content, opts)
            reference_faces: list[Face] = []
        else:
            probe, reference = await asyncio.gather(
                self.engine.detect_image(request.probe.content, opts),
                self.engine.detect_image(request.reference_image.content, opts),
            )
            reference_faces = reference.faces
            references = [face.encoding for face in reference_faces]
        matches = compare_encodings([face.encoding for face in probe.faces], references, tolerance)
        return pb.CompareFacesResponse(
            probe_faces=_faces(probe),
            reference_faces=[face_to_proto(face) for face in reference_faces],
            matches=[
                pb.FaceMatch(
                    probe_index=m.probe_index,
                    reference_index=m.reference_index,
                    distance=m.distance,
                    match=m.match,
                )
                for m in matches
            ],
            tolerance=tolerance,
        )

    async def DetectFacesInVideo(
        self, request: pb.DetectFacesInVideoRequest, context
    ) -> AsyncIterator[pb.DetectFacesInVideoResponse]:
        check(request)
        opts = options_from_proto(request.options)
        config = streaming.tracker_config(request.tracker)
        search = None
        if request.collection_id:
            tenant, search = tenant_of(context), search_from_proto(request)
            await self.collections.require(tenant, search.collection_id)
        with Scene(config) as scene:
            run_opts = _run_options(opts, scene, search)
            per_track = TrackIdentities(self.collections, tenant, search, scene) if search else None

            async def infer(frames: list[np.ndarray]) -> list[ImageFaces]:
                return [await self.engine.detect_frame(frame, run_opts) for frame in frames]

            async for frame, result, expected in streaming.video_results(
                request, self.video_policy, infer, window=self.window,
                method="DetectFacesInVideo",
            ):  # fmt: skip
                ids = _track_faces(scene, frame.index, frame.timestamp, result)
                yield pb.DetectFacesInVideoResponse(
                    frame_index=frame.index,
                    timestamp=frame.timestamp,
                    faces=await _tracked_faces(result, ids, per_track, opts),
                    image_width=result.width,
                    image_height=result.height,
                    expected_frames=expected,
                    summary=streaming.summary_message(
                        frame,
                        scene if scene.enabled else None,
                        gallery_searches=per_track.searches if per_track else 0,
                    ),
                )

    async def StreamFaces(
        self, request_iterator: AsyncIterator[pb.StreamFacesRequest], context
    ) -> AsyncIterator[pb.StreamFacesResponse]:
        async def live_call(first: pb.StreamFacesRequest) -> _LiveFaces:
            check(first)
            wanted = identities = None
            if first.collection_id:
                tenant, wanted = tenant_of(context), search_from_proto(first)
                await self.collections.require(tenant, wanted.collection_id)
            scene = Scene(streaming.tracker_config(first.tracker))
            if wanted:
                identities = TrackIdentities(self.collections, tenant, wanted, scene)
            return _LiveFaces(scene, wanted, identities)

        with streaming.FirstMessage(request_iterator, live_call) as call:

            async def infer(content: bytes, opts: FaceOptions):
                run_opts = _run_options(opts, call.state.scene, call.state.search)
                return await self.engine.detect_image(content, run_opts), opts

            async for index, (result, opts), request in streaming.live_results(
                call.requests(), infer, options_from_proto, window=self.window, method="StreamFaces"
            ):
                scene, identities = call.state.scene, call.state.identities
                ids = _track_faces(scene, index, 0.0, result)
                faces = await _tracked_faces(result, ids, identities, opts)
                yield pb.StreamFacesResponse(
                    frame_index=index,
                    faces=faces,
                    image_width=result.width,
                    image_height=result.height,
                    summary=(
                        streaming.stream_summary(
                            scene, gallery_searches=identities.searches if identities else 0
                        )
                        if request.summarize
                        else None
                    ),
                )

    # --- collections ------------------------------------------------------------------

    async def CreateCollection(
        self, request: pb.CreateCollectionRequest, context
    ) -> pb.CreateCollectionResponse:
        collection = await self.collections.create(
            tenant_of(context), request.collection_id, request.description
        )
        return pb.CreateCollectionResponse(collection=collection_to_proto(collection))

    async def ListCollections(
        self, request: pb.ListCollectionsRequest, context
    ) -> pb.ListCollectionsResponse:
        check(request)
        page = await self.collections.list(
            tenant_of(context), value(request, "page_size"), request.page_token
        )
        return pb.ListCollectionsResponse(
            collections=[collection_to_proto(c) for c in page.items],
            next_page_token=page.next_page_token,
        )

    async def DescribeCollection(
        self, request: pb.DescribeCollectionRequest, context
    ) -> pb.DescribeCollectionResponse:
        collection = await self.collections.describe(tenant_of(context), request.collection_id)
        return pb.DescribeCollectionResponse(collection=collection_to_proto(collection))

    async def DeleteCollection(
        self, request: pb.DeleteCollectionRequest, context
    ) -> pb.DeleteCollectionResponse:
        await self.collections.delete(tenant_of(context), request.collection_id)
        return pb.DeleteCollectionResponse()

    async def EnrollFaces(self, request: pb.EnrollFacesRequest, context) -> pb.EnrollFacesResponse:
        check(request)
        enrolled = await self.collections.enroll(
            tenant_of(context),
            request.collection_id,
            request.image.content,
            request.subject,
            request.external_id,
            value(request, "max_faces"),
            options_from_proto(request.options),
        )
        return pb.EnrollFacesResponse(
            faces=[stored_face_to_proto(f) for f in enrolled.faces],
            faces_found=enrolled.found,
            image_width=enrolled.width,
            image_height=enrolled.height,
        )

    async def ListFaces(self, request: pb.ListFacesRequest, context) -> pb.ListFacesResponse:
        check(request)
        page = await self.collections.list_faces(
            tenant_of(context),
            request.collection_id,
            request.subject or None,
            value(request, "page_size"),
            request.page_token,
        )
        return pb.ListFacesResponse(
            faces=[stored_face_to_proto(f) for f in page.items],
            next_page_token=page.next_page_token,
        )

    async def DeleteFaces(self, request: pb.DeleteFacesRequest, context) -> pb.DeleteFacesResponse:
        check(request)
        deleted = await self.collections.delete_faces(
            tenant_of(context), request.collection_id, list(request.face_ids)
        )
        return pb.DeleteFacesResponse(deleted_face_ids=deleted)

    async def DeleteSubject(
        self, request: pb.DeleteSubjectRequest, context
    ) -> pb.DeleteSubjectResponse:
        count = await self.collections.delete_subject(
            tenant_of(context), request.collection_id, request.subject
        )
        return pb.DeleteSubjectResponse(deleted_faces=count)

    async def IdentifyFaces(
        self, request: pb.IdentifyFacesRequest, context
    ) -> pb.IdentifyFacesResponse:
        check(request)
        result = await self.collections.identify_image(
            tenant_of(context),
            search_from_proto(request),
            request.image.content,
            options_from_proto(request.options),
        )
        return pb.IdentifyFacesResponse(
            faces=_identified(result),
            image_width=result.image.width,
            image_height=result.image.height,
            threshold=result.threshold,
        )

    async def SearchFaces(self, request: pb.SearchFacesRequest, context) -> pb.SearchFacesResponse:
        check(request)
        identification, threshold = await self.collections.search(
            tenant_of(context), search_from_proto(request), request.face_id
        )
        return pb.SearchFacesResponse(matches=matches_to_proto(identification), threshold=threshold)

    async def VerifyFace(self, request: pb.VerifyFaceRequest, context) -> pb.VerifyFaceResponse:
        check(request)
        verified = await self.collections.verify(
            tenant_of(context),
            request.collection_id,
            request.subject,
            request.image.content,
            request.threshold if request.HasField("threshold") else None,
            options_from_proto(request.options),
        )
        v = verified.verification
        return pb.VerifyFaceResponse(
            match=v.match,
            distance=v.distance,
            face_id=v.face_id,
            face=face_to_proto(verified.face),
            threshold=verified.threshold,
            image_width=verified.width,
            image_height=verified.height,
        )
