"""FaceService: protobuf <-> domain translation only. The engine does the work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc

from face_service.inference import (
    Face,
    FaceOptions,
    ImageFaces,
    check_encoding,
    compare_encodings,
)
from percept_runtime.errors import InvalidInput
from percept_runtime.fields import check, value
from percept_runtime.streaming import live_results, video_results
from percept_runtime.video import VideoPolicy

_DETECTORS = {pb.DETECTOR_UNSPECIFIED: "hog", pb.DETECTOR_HOG: "hog", pb.DETECTOR_CNN: "cnn"}
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


def face_to_proto(face: Face) -> pb.Face:
    box = face.box
    out = pb.Face(
        box=image_pb2.BoundingBox(left=box.left, top=box.top, right=box.right, bottom=box.bottom)
    )
    if face.landmarks is not None:
        for part in _LANDMARK_PARTS:
            getattr(out.landmarks, part).extend(
                image_pb2.Point(x=x, y=y) for x, y in face.landmarks.get(part, ())
            )
    if face.encoding is not None:
        out.encoding.extend(face.encoding.tolist())
    return out


def _faces(result: ImageFaces) -> list[pb.Face]:
    return [face_to_proto(face) for face in result.faces]


class FaceServicer(face_service_pb2_grpc.FaceServiceServicer):
    def __init__(self, engine: Engine, video_policy: VideoPolicy, window: int) -> None:
        self.engine = engine
        self.video_policy = video_policy
        self.window = window

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

        async def infer(frames: list[np.ndarray]) -> list[ImageFaces]:
            return [await self.engine.detect_frame(frame, opts) for frame in frames]

        async for frame, result, expected in video_results(
            request, self.video_policy, infer, window=self.window, method="DetectFacesInVideo"
        ):
            yield pb.DetectFacesInVideoResponse(
                frame_index=frame.index,
                timestamp=frame.timestamp,
                faces=_faces(result),
                image_width=result.width,
                image_height=result.height,
                expected_frames=expected,
            )

    async def StreamFaces(
        self, request_iterator: AsyncIterator[pb.StreamFacesRequest], context
    ) -> AsyncIterator[pb.StreamFacesResponse]:
        async for index, result in live_results(
            request_iterator,
            self.engine.detect_image,
            options_from_proto,
            window=self.window,
            method="StreamFaces",
        ):
            yield pb.StreamFacesResponse(
                frame_index=index,
                faces=_faces(result),
                image_width=result.width,
                image_height=result.height,
            )
