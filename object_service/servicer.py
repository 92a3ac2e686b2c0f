"""ObjectService: protobuf <-> domain translation only. The engine does the work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import numpy as np
from percept.common.v1 import image_pb2
from percept.object.v1 import object_service_pb2 as pb
from percept.object.v1 import object_service_pb2_grpc

from object_service.inference import (
    DetectOptions,
    ImageDetections,
    ModelInfo,
)
from percept_runtime import streaming
from percept_runtime.errors import Unavailable
from percept_runtime.fields import check, value
from percept_runtime.tracking import Scene
from percept_runtime.video import VideoPolicy

_BACKENDS = {"pytorch": pb.BACKEND_PYTORCH, "onnxruntime": pb.BACKEND_ONNXRUNTIME}


class Engine(Protocol):
    info: ModelInfo | None
    video_batch: int

    async def detect_image(self, data: bytes, opts: DetectOptions) -> ImageDetections: ...

    async def detect_frames(
        self, frames: list[np.ndarray], opts: DetectOptions
    ) -> list[ImageDetections]: ...


def _detections(result: ImageDetections, track_ids: list[int] | None = None) -> list[pb.Detection]:
    ids = track_ids or [0] * len(result.detections)
    return [
        pb.Detection(
            label=d.label,
            class_id=d.class_id,
            confidence=d.confidence,
            box=image_pb2.BoundingBox(left=d.left, top=d.top, right=d.right, bottom=d.bottom),
            track_id=track_id,
        )
        for d, track_id in zip(result.detections, ids, strict=True)
    ]


def _track(scene: Scene, index: int, timestamp: float, result: ImageDetections) -> list[int]:
    """The frame's detections through the call's tracker (in frame order)."""
    if not scene.enabled:
        return []
    dets = result.detections
    return scene.update(
        index,
        timestamp,
        [(d.left, d.top, d.right, d.bottom) for d in dets],
        [d.confidence for d in dets],
        [d.class_id for d in dets],
    )


class ObjectServicer(object_service_pb2_grpc.ObjectServiceServicer):
    def __init__(self, engine: Engine, video_policy: VideoPolicy, window: int) -> None:
        self.engine = engine
        self.video_policy = video_policy
        self.window = window

    def _info(self) -> ModelInfo:
        if self.engine.info is None:
            raise Unavailable("the model is still loading; retry shortly")
        return self.engine.info

    def options_from_proto(self, msg: pb.DetectionOptions) -> DetectOptions:
        """Domain options from DetectionOptions (checked against the proto's rules
        and the model's classes); unset fields take the proto's defaults."""
        check(msg, "options")
        return DetectOptions(
            confidence=value(msg, "confidence_threshold"),
            iou=value(msg, "iou_threshold"),
            classes=self._info().resolve_classes(list(msg.class_names), list(msg.class_ids)),
            max_detections=value(msg, "max_detections"),
        )

    async def DetectObjects(
        self, request: pb.DetectObjectsRequest, context
    ) -> pb.DetectObjectsResponse:
        opts = self.options_from_proto(request.options)
        result = await self.engine.detect_image(request.image.content, opts)
        return pb.DetectObjectsResponse(
            detections=_detections(result), image_width=result.width, image_height=result.height
        )

    async def DetectObjectsInVideo(
        self, request: pb.DetectObjectsInVideoRequest, context
    ) -> AsyncIterator[pb.DetectObjectsInVideoResponse]:
        check(request)
        opts = self.options_from_proto(request.options)
        config = streaming.tracker_config(request.tracker)
        labels = self._info().class_names

        async def infer(frames: list[np.ndarray]) -> list[ImageDetections]:
            return await self.engine.detect_frames(frames, opts)

        with Scene(config) as scene:
            async for frame, result, expected in streaming.video_results(
                request,
                self.video_policy,
                infer,
                window=self.window,
                batch_size=self.engine.video_batch,
                method="DetectObjectsInVideo",
            ):
                ids = _track(scene, frame.index, frame.timestamp, result)
                yield pb.DetectObjectsInVideoResponse(
                    frame_index=frame.index,
                    timestamp=frame.timestamp,
                    detections=_detections(result, ids),
                    image_width=result.width,
                    image_height=result.height,
                    expected_frames=expected,
                    summary=streaming.summary_message(
                        frame, scene if scene.enabled else None, labels
                    ),
                )

    async def StreamObjects(
        self, request_iterator: AsyncIterator[pb.StreamObjectsRequest], context
    ) -> AsyncIterator[pb.StreamObjectsResponse]:
        def scene_of(first: pb.StreamObjectsRequest) -> Scene:
            return Scene(streaming.tracker_config(first.tracker))  # the call's tracker

        with streaming.FirstMessage(request_iterator, scene_of) as call:
            async for index, result, request in streaming.live_results(
                call.requests(),
                self.engine.detect_image,
                self.options_from_proto,
                window=self.window,
                method="StreamObjects",
            ):
                ids = _track(call.state, index, 0.0, result)
                yield pb.StreamObjectsResponse(
                    frame_index=index,
                    detections=_detections(result, ids),
                    image_width=result.width,
                    image_height=result.height,
                    summary=(
                        streaming.stream_summary(call.state, self._info().class_names)
                        if request.summarize
                        else None
                    ),
                )

    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest, context
    ) -> pb.GetModelInfoResponse:
        info = self._info()
        return pb.GetModelInfoResponse(
            model_name=info.name,
            backend=_BACKENDS.get(info.backend, pb.BACKEND_UNSPECIFIED),
            device=info.device,
            input_size=info.input_size,
            class_names=info.class_names,
            weights=Path(info.weights).name,
            task=info.task,
        )
