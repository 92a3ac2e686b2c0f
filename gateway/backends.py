"""gRPC clients for the face and object replicas.

One channel per backend, round-robin over every replica: a comma-separated
host:port list (names resolved at start), or one gRPC target such as
`dns:///face:50051` that the channel re-resolves (the services cap connection
age, so new replicas get traffic). Client-side health checking skips replicas
that are not SERVING, UNAVAILABLE is retried through the service config, and
every call has a deadline.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from percept.common.v1 import image_pb2, video_pb2
from percept.face.v1 import face_service_pb2 as face_pb
from percept.face.v1 import face_service_pb2_grpc as face_grpc
from percept.object.v1 import object_service_pb2 as object_pb
from percept.object.v1 import object_service_pb2_grpc as object_grpc

from gateway import results
from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

FACE_SERVICE = "percept.face.v1.FaceService"
OBJECT_SERVICE = "percept.object.v1.ObjectService"
_DETECTORS = {"hog": face_pb.DETECTOR_HOG, "cnn": face_pb.DETECTOR_CNN}


def channel_target(spec: str) -> str:
    """A gRPC target for a replica list ("h1:p,h2:p") or a target URI."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError("no replica addresses given")
    if len(parts) == 1 and (
        ":///" in parts[0] or parts[0].split(":", 1)[0] in ("dns", "ipv4", "ipv6", "unix")
    ):
        return parts[0]
    v4: list[str] = []
    v6: list[str] = []
    for part in parts:
        host, _, port = part.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ValueError(f"replica address {part!r} is not host:port")
        try:
            ips = [ipaddress.ip_address(host)]
        except ValueError:
            if len(parts) == 1:
                return f"dns:///{part}"  # one name: let the channel resolve and re-resolve it
            ips = sorted(
                {
                    ipaddress.ip_address(info[4][0])
                    for info in socket.getaddrinfo(host, int(port), proto=socket.IPPROTO_TCP)
                }
            )
        for ip in ips:
            (v4 if ip.version == 4 else v6).append(
                f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}"
            )
    if v4 and v6:
        raise ValueError(
            "mixing IPv4 and IPv6 replicas in one list is not supported; use a dns:/// target"
        )
    return ("ipv4:" + ",".join(v4)) if v4 else ("ipv6:" + ",".join(v6))


def service_config(service: str) -> str:
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "healthCheckConfig": {"serviceName": service},
            "methodConfig": [
                {
                    "name": [{"service": service}],
                    "waitForReady": True,
                    "retryPolicy": {
                        "maxAttempts": 5,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


def make_channel(spec: str, service: str, max_message_bytes: int) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        channel_target(spec),
        options=[
            ("grpc.service_config", service_config(service)),
            ("grpc.enable_retries", 1),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.dns_min_time_between_resolutions_ms", 2_000),
        ],
    )


def face_options(o: dict[str, Any]) -> face_pb.FaceOptions:
    return face_pb.FaceOptions(
        detector=_DETECTORS[o.get("detector", "hog")],
        upsample=o.get("upsample", 1),
        return_landmarks=o.get("landmarks", False),
        return_encodings=o.get("encodings", False),
        detection_max_side=o.get("detection_max_side", 0),
        num_jitters=o.get("num_jitters", 1),
    )


def object_options(o: dict[str, Any]) -> object_pb.DetectionOptions:
    return object_pb.DetectionOptions(
        confidence_threshold=o.get("confidence_threshold", 0.25),
        iou_threshold=o.get("iou_threshold", 0.7),
        class_names=o.get("class_names", []),
        class_ids=o.get("class_ids", []),
        max_detections=o.get("max_detections", 300),
    )


OnFrame = Callable[[dict[str, Any], int, int], Awaitable[None]]


class Backends:
    """The gRPC side of the gateway: runs one task's call against its backend."""

    def __init__(self, settings: GatewaySettings) -> None:
        limit = max(settings.max_video_bytes, settings.max_image_bytes) + 1024 * 1024
        self.face_channel = make_channel(settings.face_targets, FACE_SERVICE, limit)
        self.object_channel = make_channel(settings.object_targets, OBJECT_SERVICE, limit)
        self.face = face_grpc.FaceServiceStub(self.face_channel)
        self.object = object_grpc.ObjectServiceStub(self.object_channel)
        self.image_deadline = settings.image_deadline_s
        self.video_deadline = settings.video_deadline_s
        self._classes: list[str] | None = None

    async def close(self) -> None:
        await self.face_channel.close()
        await self.object_channel.close()

    async def run(
        self, kind: str, media: str, options: dict[str, Any], data: bytes, on_frame: OnFrame
    ) -> dict:
        """Run a task's call; video frames are handed to on_frame as they come."""
        image = image_pb2.Image(content=data)
        video = video_pb2.VideoSource(content=data)
        stride, max_frames = options.get("frame_stride", 1), options.get("max_frames", 0)
        if kind == "face_detection" and media == "image":
            request = face_pb.DetectFacesRequest(image=image, options=face_options(options))
            return results.image_result(
                await self.face.DetectFaces(request, timeout=self.image_deadline)
            )
        if kind == "object_detection" and media == "image":
            request = object_pb.DetectObjectsRequest(image=image, options=object_options(options))
            return results.image_result(
                await self.object.DetectObjects(request, timeout=self.image_deadline)
            )
        if kind == "face_detection":
            call = self.face.DetectFacesInVideo(
                face_pb.DetectFacesInVideoRequest(
                    video=video,
                    frame_stride=stride,
                    max_frames=max_frames,
                    options=face_options(options),
                ),
                timeout=self.video_deadline,
            )
        else:
            call = self.object.DetectObjectsInVideo(
                object_pb.DetectObjectsInVideoRequest(
                    video=video,
                    frame_stride=stride,
                    max_frames=max_frames,
                    options=object_options(options),
                ),
                timeout=self.video_deadline,
            )
        done = 0
        async for response in call:
            done += 1
            await on_frame(results.frame_result(response), done, response.expected_frames)
        return {"frames": []}  # the dispatcher fills in the frames it collected

    async def ready(self) -> dict[str, bool]:
        """Whether each backend has at least one SERVING replica."""
        out = {}
        for name, channel, service in (
            ("face", self.face_channel, FACE_SERVICE),
            ("object", self.object_channel, OBJECT_SERVICE),
        ):
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service),
                    timeout=1.0,
                    wait_for_ready=False,
                )
                out[name] = reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.aio.AioRpcError:
                out[name] = False
        return out

    async def object_classes(self) -> list[str] | None:
        """The object model's class names (cached), or None when unreachable."""
        if self._classes is None:
            try:
                info = await self.object.GetModelInfo(
                    object_pb.GetModelInfoRequest(), timeout=2.0, wait_for_ready=False
                )
                self._classes = list(info.class_names)
            except grpc.aio.AioRpcError:
                return None
        return self._classes
