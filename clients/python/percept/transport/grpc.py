"""gRPC straight to the face and object services: `GrpcClient` and `AsyncGrpcClient`.

- Images: unary (`detect_faces`, `detect_objects`, `compare_faces`).
- Videos: server streaming (`detect_*_in_video`), one FrameResult per processed
  frame as soon as the service has it. The proto carries the whole file in one
  message (`VideoSource.content`, up to the service's message limit, 64 MiB by
  default), so a video given by path is read into memory; a `VideoURI` instead
  lets the service open a file under its allowed directories (or a stream URL
  whose scheme it allows) itself. Uploads of any size go through the REST
  gateway, which streams them from disk.
- Live frames: bidirectional (`stream_faces`, `stream_objects`): frames are
  sent as the caller's iterator yields them, results come back in order.
- Face collections: `create_collection`, `collections`, `collection`,
  `delete_collection`, `enroll`, `faces`, `delete_faces` / `delete_face`,
  `delete_subject`, `search`, `verify`, `identify` (unary), `identify_in_video`
  and `stream_faces(..., collection_id=...)` (every face with its matches).
  They act for `tenant=` (default "default"; the gateway passes each API
  key's tenant).

Targets: "host:port", a comma-separated list of replicas ("h1:p,h2:p",
round robin over them, skipping replicas whose health check is not SERVING), or
a gRPC target URI ("dns:///face:50051"). Calls are retried on UNAVAILABLE with
backoff (honouring a `retry-after` in the trailing metadata), within a deadline
that every call has; a video stream that breaks is reopened and continues after
the last frame it delivered. Live streams are not retried: the frames already
sent cannot be sent again.

Authentication: the services' gRPC token, `token=` (or PERCEPT_GRPC_TOKEN, or the
running `make run` stack's: see `percept.stack`), goes as `authorization: Bearer
<token>` metadata. It is not the gateway's REST API key (`api_key=`, deprecated,
is taken as the token).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import threading
import time
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from percept import inputs, stack
from percept.errors import Conflict, NotFound, PerceptError, from_grpc
from percept.face.v1 import face_service_pb2 as face_pb
from percept.face.v1 import face_service_pb2_grpc as face_grpc
from percept.inputs import Color, ImageInput, VideoInput
from percept.object.v1 import object_service_pb2 as object_pb
from percept.object.v1 import object_service_pb2_grpc as object_grpc
from percept.options import FaceOptions, ObjectOptions, merge
from percept.retry import Deadline, RetryPolicy
from percept.transport import _proto
from percept.transport._paging import awalk, walk
from percept.types import (
    Collection,
    CollectionPage,
    Comparison,
    EnrolledFace,
    Enrollment,
    FacePage,
    FrameResult,
    Health,
    Identification,
    ImageResult,
    Kind,
    ModelInfo,
    Verification,
    VideoURI,
)

DEFAULT_FACE_TARGET = stack.DEFAULT_FACE_TARGET
DEFAULT_OBJECT_TARGET = stack.DEFAULT_OBJECT_TARGET
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_DEFAULT: Any = object()  # "the client's default timeout" (None means no deadline)
_END: Any = object()  # the caller's frames are exhausted
FRAME_WAIT_S = 10.0  # at a live stream's end, how long to wait for the frame being read

logger = logging.getLogger(__name__)


def channel_target(spec: str) -> str:
    """A gRPC target for "host:port", a replica list ("h1:p,h2:p") or a target URI."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError("no address given")
    if len(parts) == 1:
        if ":///" in parts[0] or parts[0].split(":", 1)[0] in ("dns", "ipv4", "ipv6", "unix"):
            return parts[0]
        return parts[0] if _is_ip(parts[0]) else f"dns:///{parts[0]}"
    addresses = []
    for part in parts:
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"replica address {part!r} is not host:port")
        if not _is_ip(part):
            raise ValueError(
                f"a replica list takes IP addresses ({part!r} is a name): give one name as "
                "dns:///name:port to round-robin over every address it resolves to"
            )
        addresses.append(part)
    v6 = [a for a in addresses if a.startswith("[")]
    if v6 and len(v6) != len(addresses):
        raise ValueError("mixing IPv4 and IPv6 replicas in one list is not supported")
    return ("ipv6:" if v6 else "ipv4:") + ",".join(addresses)


def _is_ip(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _channel_options(service: str, max_message_bytes: int) -> list[tuple[str, Any]]:
    config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": service},
    }
    return [
        ("grpc.service_config", json.dumps(config)),
        # Retries are the SDK's own (with backoff, Retry-After and stream resumption).
        ("grpc.enable_retries", 0),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
    ]


class _Base:
    _grpc: Any  # grpc, or grpc.aio: the module its channels come from

    def __init__(
        self,
        face: str | None = None,
        object: str | None = None,  # noqa: A002 - the service's name reads best at the call site
        *,
        token: str | None = None,
        timeout: float | None = 60.0,
        video_timeout: float | None = 3600.0,
        retry: RetryPolicy | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        credentials: grpc.ChannelCredentials | None = None,
        tenant: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if api_key is not None:
            warnings.warn(
                "GrpcClient(api_key=) is deprecated: the services take the gRPC token, token=",
                DeprecationWarning,
                stacklevel=2,
            )
            token = api_key if token is None else token
        face, object, token = stack.grpc_settings(face, object, token)  # noqa: A001
        self.targets = {Kind.FACE: face, Kind.OBJECT: object}
        self.timeout = timeout
        self.video_timeout = video_timeout
        self.retry = retry or RetryPolicy()
        self.max_message_bytes = max_message_bytes
        self._credentials = credentials
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        if tenant:  # whose face collections (the services trust it; "default" unless given)
            self._metadata += (("x-percept-tenant", tenant),)
        self._channels: dict[Kind, Any] = {}

    def _channel(self, kind: Kind):
        if kind not in self._channels:
            target, options = self._args(kind)
            self._channels[kind] = (
                self._grpc.secure_channel(target, self._credentials, options=options)
                if self._credentials
                else self._grpc.insecure_channel(target, options=options)
            )
        return self._channels[kind]

    def _face(self) -> face_grpc.FaceServiceStub:
        return face_grpc.FaceServiceStub(self._channel(Kind.FACE))

    def _object(self) -> object_grpc.ObjectServiceStub:
        return object_grpc.ObjectServiceStub(self._channel(Kind.OBJECT))

    def _args(self, kind: Kind) -> tuple[str, list[tuple[str, Any]]]:
        service = _proto.FACE_SERVICE if kind.faces else _proto.OBJECT_SERVICE
        return channel_target(self.targets[kind]), _channel_options(service, self.max_message_bytes)

    def _deadline(self, timeout: float | None, default: float | None) -> Deadline:
        return Deadline(default if timeout is _DEFAULT else timeout)

    def _next_delay(self, error: PerceptError, attempt: int, deadline: Deadline) -> float:
        if not self.retry.retryable(error):
            raise error
        delay = self.retry.delay(attempt, error.retry_after)
        if delay is None or not deadline.allows(delay):
            raise error
        return delay

    @staticmethod
    def _options(kind: Kind, options, fields) -> FaceOptions | ObjectOptions:
        return merge(FaceOptions if kind.faces else ObjectOptions, options, fields)  # type: ignore[arg-type]

    @staticmethod
    def _video_source(video: VideoInput) -> bytes | VideoURI:
        return video if isinstance(video, VideoURI) else inputs.video_bytes(video)

    @staticmethod
    def _compare_request(probe, reference, encodings, tolerance, options, color, fields):
        opts = merge(FaceOptions, options, fields)
        return _proto.compare_request(
            inputs.image_bytes(probe, color),
            inputs.image_bytes(reference, color) if reference is not None else None,
            encodings,
            tolerance,
            opts,
        )


class GrpcClient(_Base):
    """The gRPC services, synchronously. Thread-safe; close it when done.

    `face` / `object` are targets (default PERCEPT_FACE_TARGET /
    PERCEPT_OBJECT_TARGET, else the running `make run` stack's, else
    127.0.0.1:50051 / :50052) and `token` the services' gRPC token (default
    PERCEPT_GRPC_TOKEN, else the stack's: see `percept.stack`). `timeout` is the
    deadline of image calls, `video_timeout` of video and live streams; every
    method takes `timeout=` too (None: no deadline).
    """

    _grpc = grpc

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unary(self, method, request, deadline: Deadline):
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=deadline.remaining(), metadata=self._metadata)
            except grpc.RpcError as exc:
                error = from_grpc(exc)
            time.sleep(self._next_delay(error, attempt, deadline))

    # --- images ---------------------------------------------------------------------------
    def _detect(self, kind, image, options, color, timeout, fields) -> ImageResult:
        request = _proto.detect_request(
            kind, inputs.image_bytes(image, color), self._options(kind, options, fields)
        )
        method = self._face().DetectFaces if kind is Kind.FACE else self._object().DetectObjects
        response = self._unary(method, request, self._deadline(timeout, self.timeout))
        return _proto.image_result(response, kind)

    def detect_faces(
        self,
        image: ImageInput,
        options: FaceOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> ImageResult:
        """The faces in one image (DetectFaces)."""
        return self._detect(Kind.FACE, image, options, color, timeout, fields)

    def detect_objects(
        self,
        image: ImageInput,
        options: ObjectOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> ImageResult:
        """The objects in one image (DetectObjects)."""
        return self._detect(Kind.OBJECT, image, options, color, timeout, fields)

    def compare_faces(
        self,
        probe: ImageInput,
        reference: ImageInput | None = None,
        *,
        encodings: Sequence[Sequence[float]] | None = None,
        tolerance: float | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> Comparison:
        """The probe image's faces against a reference image's, or against known encodings."""
        request = self._compare_request(
            probe, reference, encodings, tolerance, options, color, fields
        )
        deadline = self._deadline(timeout, self.timeout)
        return _proto.comparison(self._unary(self._face().CompareFaces, request, deadline))

    def model_info(self, *, timeout: float | None = _DEFAULT) -> ModelInfo:
        """The object service's model: name, backend, device, class names."""
        deadline = self._deadline(timeout, self.timeout)
        response = self._unary(
            self._object().GetModelInfo, object_pb.GetModelInfoRequest(), deadline
        )
        return _proto.model_info(response)

    # --- videos ---------------------------------------------------------------------------
    def _video(self, kind, video, options, timeout, fields, identify=None) -> Iterator[FrameResult]:
        request = _proto.video_request(
            kind, self._video_source(video), self._options(kind, options, fields), identify
        )
        method = (
            self._face().DetectFacesInVideo if kind.faces else self._object().DetectObjectsInVideo
        )
        deadline = self._deadline(timeout, self.video_timeout)
        attempt, last = 0, -1
        while True:
            attempt += 1
            call = method(request, timeout=deadline.remaining(), metadata=self._metadata)
            try:
                for response in call:
                    attempt = 0
                    if response.frame_index <= last:  # already delivered before a retry
                        continue
                    last = response.frame_index
                    yield _proto.frame_result(response, kind)
                return
            except grpc.RpcError as exc:
                error = from_grpc(exc)
            finally:
                call.cancel()  # the caller stopped early: stop the service's work too
            time.sleep(self._next_delay(error, max(attempt, 1), deadline))

    def detect_faces_in_video(
        self,
        video: VideoInput,
        options: FaceOptions | None = None,
        *,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> Iterator[FrameResult]:
        """Each processed frame's faces as it is done (DetectFacesInVideo)."""
        return self._video(Kind.FACE, video, options, timeout, fields)

    def detect_objects_in_video(
        self,
        video: VideoInput,
        options: ObjectOptions | None = None,
        *,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> Iterator[FrameResult]:
        """Each processed frame's objects as it is done (DetectObjectsInVideo)."""
        return self._video(Kind.OBJECT, video, options, timeout, fields)

    # --- live frames ----------------------------------------------------------------------
    def _live(
        self, kind, frames, options, color, timeout, fields, identify=None
    ) -> Iterator[FrameResult]:
        opts = self._options(kind, options, fields)
        failure: list[BaseException] = []
        # grpc reads `frames` on a daemon thread of its own. When the call ends (an error,
        # the caller stopping early), that thread may be inside the caller's iterator, in
        # native code (cv2.VideoCapture.read); were the process to exit then, finalization
        # would kill the thread inside C++ and abort the interpreter ("terminate called
        # without an active exception", exit 134). So no frame is read once the call has
        # ended, and the call does not end until the frame being read is done.
        ended = threading.Event()
        reading = threading.Lock()  # held while the caller's iterator makes a frame

        def requests():
            first = True
            try:
                with reading:
                    it = iter(frames)
                while True:
                    with reading:
                        if ended.is_set():
                            return
                        frame = next(it, _END)
                        if frame is _END:
                            return
                        content = inputs.image_bytes(frame, color)
                    yield _proto.stream_request(
                        kind, content, opts if first else None, identify if first else None
                    )
                    first = False
            except Exception as exc:  # noqa: BLE001 - raised to the caller below
                failure.append(exc)

        method = self._face().StreamFaces if kind.faces else self._object().StreamObjects
        deadline = self._deadline(timeout, self.video_timeout)
        call = method(requests(), timeout=deadline.remaining(), metadata=self._metadata)
        try:
            for response in call:
                yield _proto.frame_result(response, kind)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from None
        finally:
            ended.set()
            call.cancel()
            if reading.acquire(timeout=FRAME_WAIT_S):
                reading.release()
            else:
                logger.warning(
                    "the frame iterator did not return a frame within %.0f s of the stream's end",
                    FRAME_WAIT_S,
                )
        if failure:
            raise failure[0]

    def stream_faces(
        self,
        frames: Iterable[ImageInput],
        options: FaceOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        collection_id: str | None = None,
        top_k: int | None = None,
        threshold: float | None = None,
        **fields: Any,
    ) -> Iterator[FrameResult]:
        """Live frames in, each frame's faces out, in order (StreamFaces). With a
        `collection_id`, every face carries its matches (`face.subject`)."""
        identify = _proto.identify_fields(collection_id, top_k, threshold)
        kind = Kind.IDENTIFY if identify else Kind.FACE
        return self._live(kind, frames, options, color, timeout, fields, identify)

    def stream_objects(
        self,
        frames: Iterable[ImageInput],
        options: ObjectOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> Iterator[FrameResult]:
        """Live frames in, each frame's objects out, in order (StreamObjects)."""
        return self._live(Kind.OBJECT, frames, options, color, timeout, fields)

    # --- face collections ---------------------------------------------------------------
    def _collections(self, name: str, request, timeout, retry: bool = True):
        deadline = self._deadline(timeout, self.timeout)
        method = getattr(self._face(), name)
        if retry:
            return self._unary(method, request, deadline)
        try:
            return method(request, timeout=deadline.remaining(), metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from None

    def create_collection(
        self,
        collection_id: str,
        description: str = "",
        *,
        exist_ok: bool = False,
        timeout: float | None = _DEFAULT,
    ) -> Collection:
        """A new, empty face collection; Conflict when the id is taken, unless
        `exist_ok` (then the existing collection, as it is)."""
        request = face_pb.CreateCollectionRequest(
            collection_id=collection_id, description=description
        )
        try:
            response = self._collections("CreateCollection", request, timeout)
        except Conflict:
            if not exist_ok:
                raise
            return self.collection(collection_id, timeout=timeout)
        return _proto.collection(response.collection)

    def collections(
        self,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = _DEFAULT,
    ) -> CollectionPage:
        request = face_pb.ListCollectionsRequest(
            page_size=page_size or 0, page_token=page_token or ""
        )
        return _proto.collection_page(self._collections("ListCollections", request, timeout))

    def iter_collections(self, *, page_size: int = 100) -> Iterator[Collection]:
        """Every collection, fetching pages as needed."""
        return walk(
            lambda token: self.collections(page_size=page_size, page_token=token), "collections"
        )

    def collection(self, collection_id: str, *, timeout: float | None = _DEFAULT) -> Collection:
        request = face_pb.DescribeCollectionRequest(collection_id=collection_id)
        response = self._collections("DescribeCollection", request, timeout)
        return _proto.collection(response.collection)

    def delete_collection(self, collection_id: str, *, timeout: float | None = _DEFAULT) -> None:
        request = face_pb.DeleteCollectionRequest(collection_id=collection_id)
        self._collections("DeleteCollection", request, timeout)

    def enroll(
        self,
        collection_id: str,
        image: ImageInput,
        subject: str,
        *,
        external_id: str | None = None,
        max_faces: int | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> Enrollment:
        """Enroll the image's largest face (up to `max_faces`) under `subject`. Not
        retried: a call cut off midway may have enrolled."""
        request = _proto.enroll_request(
            collection_id,
            inputs.image_bytes(image, color),
            subject,
            external_id,
            max_faces,
            merge(FaceOptions, options, fields),
        )
        return _proto.enrollment(self._collections("EnrollFaces", request, timeout, retry=False))

    def faces(
        self,
        collection_id: str,
        *,
        subject: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = _DEFAULT,
    ) -> FacePage:
        request = face_pb.ListFacesRequest(
            collection_id=collection_id,
            subject=subject or "",
            page_size=page_size or 0,
            page_token=page_token or "",
        )
        return _proto.face_page(self._collections("ListFaces", request, timeout))

    def iter_faces(
        self, collection_id: str, *, subject: str | None = None, page_size: int = 100
    ) -> Iterator[EnrolledFace]:
        """Every face of the collection (of `subject` if given), fetching pages as needed."""
        return walk(
            lambda token: self.faces(
                collection_id, subject=subject, page_size=page_size, page_token=token
            ),
            "faces",
        )

    def delete_faces(
        self, collection_id: str, face_ids: Sequence[str], *, timeout: float | None = _DEFAULT
    ) -> list[str]:
        """Delete enrolled faces by id, everywhere; -> the ids that existed."""
        request = face_pb.DeleteFacesRequest(collection_id=collection_id, face_ids=list(face_ids))
        return list(self._collections("DeleteFaces", request, timeout).deleted_face_ids)

    def delete_face(
        self, collection_id: str, face_id: str, *, timeout: float | None = _DEFAULT
    ) -> None:
        """Delete one enrolled face; NotFound when there is no such face."""
        if not self.delete_faces(collection_id, [face_id], timeout=timeout):
            raise NotFound(
                f"face {face_id} is not in collection {collection_id!r}", code="not_found"
            )

    def delete_subject(
        self, collection_id: str, subject: str, *, timeout: float | None = _DEFAULT
    ) -> int:
        request = face_pb.DeleteSubjectRequest(collection_id=collection_id, subject=subject)
        return self._collections("DeleteSubject", request, timeout).deleted_faces

    def search(
        self,
        collection_id: str,
        face_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        timeout: float | None = _DEFAULT,
    ) -> Identification:
        request = _proto.search_request(collection_id, face_id, top_k, threshold)
        return _proto.identification(self._collections("SearchFaces", request, timeout), face_id)

    def verify(
        self,
        collection_id: str,
        image: ImageInput,
        subject: str,
        *,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> Verification:
        request = _proto.verify_request(
            collection_id,
            subject,
            inputs.image_bytes(image, color),
            threshold,
            merge(FaceOptions, options, fields),
        )
        return _proto.verification(self._collections("VerifyFace", request, timeout), subject)

    def identify(
        self,
        image: ImageInput,
        collection_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> ImageResult:
        """Every face of an image with its matches in a collection (IdentifyFaces)."""
        request = _proto.identify_request(
            collection_id,
            inputs.image_bytes(image, color),
            top_k,
            threshold,
            merge(FaceOptions, options, fields),
        )
        response = self._collections("IdentifyFaces", request, timeout)
        return _proto.image_result(response, Kind.IDENTIFY)

    def identify_in_video(
        self,
        video: VideoInput,
        collection_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> Iterator[FrameResult]:
        """Each processed frame, every face with its matches (DetectFacesInVideo with a
        collection)."""
        identify = _proto.identify_fields(collection_id, top_k, threshold)
        return self._video(Kind.IDENTIFY, video, options, timeout, fields, identify)

    # --- operations -----------------------------------------------------------------------
    def health(self, *, timeout: float | None = 5.0) -> Health:
        """grpc.health.v1 of both services: `checks` {"face", "object"}; ready when both SERVING."""
        checks = {}
        for kind in (Kind.FACE, Kind.OBJECT):
            try:
                response = health_pb2_grpc.HealthStub(self._channel(kind)).Check(
                    health_pb2.HealthCheckRequest(service=""),
                    timeout=timeout,
                    metadata=self._metadata,
                )
                checks[kind.route] = response.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                checks[kind.route] = False
        return Health(any(checks.values()), all(checks.values()), checks)


class AsyncGrpcClient(_Base):
    """The gRPC services for asyncio: the same methods as `GrpcClient`, awaited;
    video and live streams are async iterators, and live frames may come from
    an async iterator too."""

    _grpc = grpc.aio

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def __aenter__(self) -> AsyncGrpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _unary(self, method, request, deadline: Deadline):
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(request, timeout=deadline.remaining(), metadata=self._metadata)
            except grpc.RpcError as exc:
                error = from_grpc(exc)
            await asyncio.sleep(self._next_delay(error, attempt, deadline))

    async def _detect(self, kind, image, options, color, timeout, fields) -> ImageResult:
        request = _proto.detect_request(
            kind, inputs.image_bytes(image, color), self._options(kind, options, fields)
        )
        method = self._face().DetectFaces if kind is Kind.FACE else self._object().DetectObjects
        response = await self._unary(method, request, self._deadline(timeout, self.timeout))
        return _proto.image_result(response, kind)

    async def detect_faces(
        self,
        image: ImageInput,
        options: FaceOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> ImageResult:
        return await self._detect(Kind.FACE, image, options, color, timeout, fields)

    async def detect_objects(
        self,
        image: ImageInput,
        options: ObjectOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> ImageResult:
        return await self._detect(Kind.OBJECT, image, options, color, timeout, fields)

    async def compare_faces(
        self,
        probe: ImageInput,
        reference: ImageInput | None = None,
        *,
        encodings: Sequence[Sequence[float]] | None = None,
        tolerance: float | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> Comparison:
        request = self._compare_request(
            probe, reference, encodings, tolerance, options, color, fields
        )
        deadline = self._deadline(timeout, self.timeout)
        return _proto.comparison(await self._unary(self._face().CompareFaces, request, deadline))

    async def model_info(self, *, timeout: float | None = _DEFAULT) -> ModelInfo:
        deadline = self._deadline(timeout, self.timeout)
        response = await self._unary(
            self._object().GetModelInfo, object_pb.GetModelInfoRequest(), deadline
        )
        return _proto.model_info(response)

    async def _video(
        self, kind, video, options, timeout, fields, identify=None
    ) -> AsyncIterator[FrameResult]:
        request = _proto.video_request(
            kind, self._video_source(video), self._options(kind, options, fields), identify
        )
        method = (
            self._face().DetectFacesInVideo if kind.faces else self._object().DetectObjectsInVideo
        )
        deadline = self._deadline(timeout, self.video_timeout)
        attempt, last = 0, -1
        while True:
            attempt += 1
            call = method(request, timeout=deadline.remaining(), metadata=self._metadata)
            try:
                async for response in call:
                    attempt = 0
                    if response.frame_index <= last:
                        continue
                    last = response.frame_index
                    yield _proto.frame_result(response, kind)
                return
            except grpc.RpcError as exc:
                error = from_grpc(exc)
            finally:
                call.cancel()
            await asyncio.sleep(self._next_delay(error, max(attempt, 1), deadline))

    def detect_faces_in_video(
        self,
        video: VideoInput,
        options: FaceOptions | None = None,
        *,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> AsyncIterator[FrameResult]:
        return self._video(Kind.FACE, video, options, timeout, fields)

    def detect_objects_in_video(
        self,
        video: VideoInput,
        options: ObjectOptions | None = None,
        *,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> AsyncIterator[FrameResult]:
        return self._video(Kind.OBJECT, video, options, timeout, fields)

    async def _live(
        self, kind, frames, options, color, timeout, fields, identify=None
    ) -> AsyncIterator[FrameResult]:
        opts = self._options(kind, options, fields)
        failure: list[BaseException] = []

        def request(frame, first: bool):
            return _proto.stream_request(
                kind,
                inputs.image_bytes(frame, color),
                opts if first else None,
                identify if first else None,
            )

        async def requests():
            first = True
            try:
                if isinstance(frames, AsyncIterable):
                    async for frame in frames:
                        yield request(frame, first)
                        first = False
                else:
                    for frame in frames:
                        yield request(frame, first)
                        first = False
            except Exception as exc:  # noqa: BLE001 - raised to the caller below
                failure.append(exc)

        method = self._face().StreamFaces if kind.faces else self._object().StreamObjects
        deadline = self._deadline(timeout, self.video_timeout)
        call = method(requests(), timeout=deadline.remaining(), metadata=self._metadata)
        try:
            async for response in call:
                yield _proto.frame_result(response, kind)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from None
        finally:
            call.cancel()
        if failure:
            raise failure[0]

    def stream_faces(
        self,
        frames: Iterable[ImageInput] | AsyncIterable[ImageInput],
        options: FaceOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        collection_id: str | None = None,
        top_k: int | None = None,
        threshold: float | None = None,
        **fields: Any,
    ) -> AsyncIterator[FrameResult]:
        identify = _proto.identify_fields(collection_id, top_k, threshold)
        kind = Kind.IDENTIFY if identify else Kind.FACE
        return self._live(kind, frames, options, color, timeout, fields, identify)

    def stream_objects(
        self,
        frames: Iterable[ImageInput] | AsyncIterable[ImageInput],
        options: ObjectOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> AsyncIterator[FrameResult]:
        return self._live(Kind.OBJECT, frames, options, color, timeout, fields)

    # --- face collections: the same methods as GrpcClient's, awaited ------------------------
    async def _collections(self, name: str, request, timeout, retry: bool = True):
        deadline = self._deadline(timeout, self.timeout)
        method = getattr(self._face(), name)
        if retry:
            return await self._unary(method, request, deadline)
        try:
            return await method(request, timeout=deadline.remaining(), metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from None

    async def create_collection(
        self,
        collection_id: str,
        description: str = "",
        *,
        exist_ok: bool = False,
        timeout: float | None = _DEFAULT,
    ) -> Collection:
        """A new, empty face collection; Conflict when the id is taken, unless
        `exist_ok` (then the existing collection, as it is)."""
        request = face_pb.CreateCollectionRequest(
            collection_id=collection_id, description=description
        )
        try:
            response = await self._collections("CreateCollection", request, timeout)
        except Conflict:
            if not exist_ok:
                raise
            return await self.collection(collection_id, timeout=timeout)
        return _proto.collection(response.collection)

    async def collections(
        self,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = _DEFAULT,
    ) -> CollectionPage:
        request = face_pb.ListCollectionsRequest(
            page_size=page_size or 0, page_token=page_token or ""
        )
        return _proto.collection_page(await self._collections("ListCollections", request, timeout))

    def iter_collections(self, *, page_size: int = 100) -> AsyncIterator[Collection]:
        """Every collection, fetching pages as needed (`async for`)."""
        return awalk(
            lambda token: self.collections(page_size=page_size, page_token=token), "collections"
        )

    async def collection(
        self, collection_id: str, *, timeout: float | None = _DEFAULT
    ) -> Collection:
        request = face_pb.DescribeCollectionRequest(collection_id=collection_id)
        response = await self._collections("DescribeCollection", request, timeout)
        return _proto.collection(response.collection)

    async def delete_collection(
        self, collection_id: str, *, timeout: float | None = _DEFAULT
    ) -> None:
        request = face_pb.DeleteCollectionRequest(collection_id=collection_id)
        await self._collections("DeleteCollection", request, timeout)

    async def enroll(
        self,
        collection_id: str,
        image: ImageInput,
        subject: str,
        *,
        external_id: str | None = None,
        max_faces: int | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> Enrollment:
        request = _proto.enroll_request(
            collection_id,
            inputs.image_bytes(image, color),
            subject,
            external_id,
            max_faces,
            merge(FaceOptions, options, fields),
        )
        response = await self._collections("EnrollFaces", request, timeout, retry=False)
        return _proto.enrollment(response)

    async def faces(
        self,
        collection_id: str,
        *,
        subject: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = _DEFAULT,
    ) -> FacePage:
        request = face_pb.ListFacesRequest(
            collection_id=collection_id,
            subject=subject or "",
            page_size=page_size or 0,
            page_token=page_token or "",
        )
        return _proto.face_page(await self._collections("ListFaces", request, timeout))

    def iter_faces(
        self, collection_id: str, *, subject: str | None = None, page_size: int = 100
    ) -> AsyncIterator[EnrolledFace]:
        """Every face of the collection (of `subject` if given), fetching pages as needed."""
        return awalk(
            lambda token: self.faces(
                collection_id, subject=subject, page_size=page_size, page_token=token
            ),
            "faces",
        )

    async def delete_faces(
        self, collection_id: str, face_ids: Sequence[str], *, timeout: float | None = _DEFAULT
    ) -> list[str]:
        request = face_pb.DeleteFacesRequest(collection_id=collection_id, face_ids=list(face_ids))
        response = await self._collections("DeleteFaces", request, timeout)
        return list(response.deleted_face_ids)

    async def delete_face(
        self, collection_id: str, face_id: str, *, timeout: float | None = _DEFAULT
    ) -> None:
        if not await self.delete_faces(collection_id, [face_id], timeout=timeout):
            raise NotFound(
                f"face {face_id} is not in collection {collection_id!r}", code="not_found"
            )

    async def delete_subject(
        self, collection_id: str, subject: str, *, timeout: float | None = _DEFAULT
    ) -> int:
        request = face_pb.DeleteSubjectRequest(collection_id=collection_id, subject=subject)
        return (await self._collections("DeleteSubject", request, timeout)).deleted_faces

    async def search(
        self,
        collection_id: str,
        face_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        timeout: float | None = _DEFAULT,
    ) -> Identification:
        request = _proto.search_request(collection_id, face_id, top_k, threshold)
        response = await self._collections("SearchFaces", request, timeout)
        return _proto.identification(response, face_id)

    async def verify(
        self,
        collection_id: str,
        image: ImageInput,
        subject: str,
        *,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> Verification:
        request = _proto.verify_request(
            collection_id,
            subject,
            inputs.image_bytes(image, color),
            threshold,
            merge(FaceOptions, options, fields),
        )
        response = await self._collections("VerifyFace", request, timeout)
        return _proto.verification(response, subject)

    async def identify(
        self,
        image: ImageInput,
        collection_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> ImageResult:
        request = _proto.identify_request(
            collection_id,
            inputs.image_bytes(image, color),
            top_k,
            threshold,
            merge(FaceOptions, options, fields),
        )
        response = await self._collections("IdentifyFaces", request, timeout)
        return _proto.image_result(response, Kind.IDENTIFY)

    def identify_in_video(
        self,
        video: VideoInput,
        collection_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        timeout: float | None = _DEFAULT,
        **fields: Any,
    ) -> AsyncIterator[FrameResult]:
        identify = _proto.identify_fields(collection_id, top_k, threshold)
        return self._video(Kind.IDENTIFY, video, options, timeout, fields, identify)

    async def health(self, *, timeout: float | None = 5.0) -> Health:
        checks = {}
        for kind in (Kind.FACE, Kind.OBJECT):
            try:
                response = await health_pb2_grpc.HealthStub(self._channel(kind)).Check(
                    health_pb2.HealthCheckRequest(service=""),
                    timeout=timeout,
                    metadata=self._metadata,
                )
                checks[kind.route] = response.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                checks[kind.route] = False
        return Health(any(checks.values()), all(checks.values()), checks)
