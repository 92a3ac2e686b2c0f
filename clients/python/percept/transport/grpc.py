"""gRPC straight to the face and object services: `GrpcClient` and `AsyncGrpcClient`.

Images are unary calls; videos server streaming (one FrameResult per frame as
the service has it; the proto carries the whole file, so a path is read into
memory, or a `VideoURI` lets the service open it); live frames bidirectional
(`stream_faces`, `stream_objects`); face collections as in `_ops`, for
`tenant=`. Each operation is written once (see `_core`): the method it calls
is named by its path, and the descriptors say the rest (request and response
types, which side streams, a service's live method); its options fill the
request by field name (checked against the proto's rules), its answer is
read as the REST JSON, by the same readers; the two classes differ only in
the I/O (grpc or grpc.aio).

Targets: "host:port", a list of replicas ("h1:p,h2:p", round robin over the
SERVING ones) or a target URI ("dns:///face:50051"). UNAVAILABLE is retried
with backoff (and a `retry-after` in the trailing metadata) within every
call's deadline; a broken video stream is reopened and continues after its
last frame; live streams are not retried. The token goes as
`authorization: Bearer <token>` metadata.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import itertools
import json
import logging
import threading
import warnings
from collections.abc import AsyncIterable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2

from percept import inputs, rules, stack
from percept.errors import NotFound, PerceptError, from_grpc
from percept.inputs import Color, ImageInput
from percept.options import FaceOptions, ObjectOptions, merge, set_values
from percept.retry import Deadline, RetryPolicy
from percept.transport import _ops, _wire
from percept.transport._core import Close, Closing, Item, Next, install, resumed, retried, stream
from percept.transport._ops import DEFAULT as _DEFAULT
from percept.transport._ops import Route, identification, kind_options
from percept.types import Comparison, FrameResult, Health, ImageResult, Kind, ModelInfo, VideoURI

DEFAULT_FACE_TARGET = stack.DEFAULT_FACE_TARGET
DEFAULT_OBJECT_TARGET = stack.DEFAULT_OBJECT_TARGET
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_END: Any = object()  # a live call's requests are exhausted
FRAME_WAIT_S = 10.0  # at a live stream's end, how long to wait for the frame being read
_FACE = "/percept.face.v1.FaceService/"
_HEALTH = "/grpc.health.v1.Health/Check"

logger = logging.getLogger(__name__)


def channel_target(spec: str) -> str:
    """A gRPC target for "host:port", a replica list ("h1:p,h2:p") or a target URI."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError("no address given")
    scheme = parts[0].split(":", 1)[0] in ("dns", "ipv4", "ipv6", "unix")
    if len(parts) == 1 and (":///" in parts[0] or scheme):
        return parts[0]
    ips = [_ip(part) for part in parts]
    if len(parts) == 1:
        return parts[0] if ips[0] else f"dns:///{parts[0]}"
    for part, ip in zip(parts, ips, strict=True):
        if ip is None or not part.rpartition(":")[2].isdigit():
            raise ValueError(
                f"a replica list takes ip:port addresses ({part!r} is not one): give a name "
                "alone, as dns:///name:port, to round-robin over every address it resolves to"
            )
    if len({ip.version for ip in ips}) > 1:
        raise ValueError("mixing IPv4 and IPv6 replicas in one list is not supported")
    return f"ipv{ips[0].version}:" + ",".join(parts)


def _ip(address: str) -> Any:
    """The IP address of "ip:port" ("[ip]:port" for IPv6); None for a name."""
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(address.rpartition(":")[0].strip("[]"))
    return None


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


@functools.cache
def _path(kind: Kind, media: str) -> str:
    """A built-in kind's method: the declared one, or on "live" its service's
    bidirectional one."""
    if media != "live":
        return "/" + rules.spec(kind.value, media).rpc
    service = rules.method(_path(kind, "image")).containing_service
    live = next(m for m in service.methods if m.client_streaming and m.server_streaming)
    return f"/{service.full_name}/{live.name}"


def _service(path: str) -> str:
    return path.strip("/").split("/")[0]


# --- the effects the gRPC I/O runs ----------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    """A call of the method at `path`: its answer is the response (or the
    PerceptError it means); a streaming method's (the descriptors say which)
    `opens` a stream, its answer a handle whose `Next` is a response."""

    path: str
    request: Any  # an iterator of them for a live call (one made of each frame as it comes)
    deadline: Deadline
    service: str | None = None  # the channel's, when the path does not say (health)

    @property
    def opens(self) -> bool:
        return rules.method(self.path).server_streaming


# --- requests and answers ------------------------------------------------------------------------


def _request(path: str, values: dict[str, Any], content: bytes | VideoURI | None = None) -> Any:
    """A method's request: its upload (if any) and the values given (checked)."""
    message = message_factory.GetMessageClass(rules.method(path).input_type)()
    if content is not None:
        upload = getattr(message, _wire.input_field(message.DESCRIPTOR))
        if isinstance(content, VideoURI):
            upload.uri = content.uri
        else:
            upload.content = content
    aliases = rules.spec("face", "image").aliases if path.startswith(_FACE) else {}
    return _wire.fill(message, values, aliases)


def _result(kind: Kind, response: Any, frame: bool = False) -> Any:
    """A detection's response -> its result, read as the REST JSON."""
    return (FrameResult if frame else ImageResult).from_json(_wire.to_json(response), kind)


def _deadline(timeout: Any, default: float | None) -> Deadline:
    return Deadline(default if timeout is _DEFAULT else timeout)


def unary(c, path: str, request: Any, timeout: Any, stores: bool = False):
    """One call, retried on UNAVAILABLE within the deadline; one that `stores`
    something is not (gRPC does not say whether the service had it)."""
    deadline = _deadline(timeout, c.timeout)
    return (yield from retried(Rpc(path, request, deadline), c.retry, deadline, answered=stores))


# --- the transport's primitives: what `_ops` asks of it -----------------------------------


def _detect(c, kind, image, options, color, timeout, fields, identify=None):
    """One image, one unary call of the kind's method."""
    values = kind_options(kind, "image", options, fields, identify)
    request = _request(_path(kind, "image"), values, inputs.image_bytes(image, color))
    return _result(kind, (yield from unary(c, _path(kind, "image"), request, timeout)))


def _video(c, kind, video, options, color, timeout, fields, identify=None):
    """A video's frames as the service streams them; a broken stream is reopened
    and continues after the last frame delivered."""
    source = video if isinstance(video, VideoURI) else inputs.video_bytes(video)
    values = kind_options(kind, "video", options, fields, identify)
    request = _request(_path(kind, "video"), values, source)
    deadline = _deadline(timeout, c.video_timeout)
    last = [-1]

    def read(handle):
        while (response := (yield Next(handle))) is not None:
            if response.frame_index > last[0]:  # not delivered before a retry
                last[0] = response.frame_index
                yield Item(_result(kind, response, frame=True))
        return True

    open_ = lambda: Rpc(_path(kind, "video"), request, deadline)  # noqa: E731
    return (yield from resumed(open_, read, deadline, c.retry))


def _route(c, route: Route, values: dict[str, Any], timeout, image=None):
    """A declared route, as its FaceService method: the values fill its request."""
    values = {k: v for k, v in values.items() if v is not None}
    content = None if image is None else inputs.image_bytes(*image)  # (image, color)
    path = _FACE + route.rpc
    response = yield from unary(c, path, _request(path, values, content), timeout, route.stores)
    answer = _wire.to_json(response)
    return route.read_answer(answer[route.unwrap] if route.unwrap else answer, values)


# --- the gRPC-only operations --------------------------------------------------------------


def compare_faces(
    c, probe: ImageInput, reference: ImageInput | None = None, *,
    encodings: Sequence[Sequence[float]] | None = None, tolerance: float | None = None,
    options: FaceOptions | None = None, color: Color | None = None,
    timeout: float | None = _DEFAULT, **fields: Any,
) -> Comparison:  # fmt: skip
    """The probe image's faces against a reference image's, or against known encodings."""
    if (reference is None) == (encodings is None):
        raise ValueError("give either a reference image or reference encodings")
    values = {**set_values(merge(FaceOptions, options, fields)), "tolerance": tolerance}
    request = _request(_FACE + "CompareFaces", values)
    request.probe.content = inputs.image_bytes(probe, color)
    if reference is not None:
        request.reference_image.content = inputs.image_bytes(reference, color)
    else:
        for encoding in encodings or ():
            request.reference_encodings.encodings.add(values=list(encoding))
    response = yield from unary(c, _FACE + "CompareFaces", request, timeout)
    return Comparison.from_json(_wire.to_json(response))


def model_info(c, *, timeout: float | None = _DEFAULT) -> ModelInfo:
    """The object service's model: name, backend, device, class names."""
    path = "/percept.object.v1.ObjectService/GetModelInfo"
    response = yield from unary(c, path, _request(path, {}), timeout)
    return ModelInfo.from_json(_wire.to_json(response))


@stream
def _live(c, kind: Kind, frames, options, color, timeout, fields, identify=None):
    """Live frames in, each frame's result out; the options go with the first
    frame only (the service keeps them)."""
    values, path = kind_options(kind, "video", options, fields, identify), _path(kind, "live")
    sent = itertools.chain([values], itertools.repeat({}))  # each request's options
    make = lambda frame: _request(path, next(sent), inputs.image_bytes(frame, color))  # noqa: E731
    if c._live is _AsyncLive and isinstance(frames, AsyncIterable):  # grpc.aio reads them
        requests: Any = (make(frame) async for frame in frames)
    else:
        requests = map(make, frames)
    handle = yield Rpc(path, requests, _deadline(timeout, c.video_timeout))
    while (response := (yield Next(handle))) is not None:
        yield Item(_result(kind, response, frame=True))


@stream
def stream_faces(
    c, frames: Iterable[ImageInput] | AsyncIterable[ImageInput],
    options: FaceOptions | None = None, *, color: Color | None = None,
    timeout: float | None = _DEFAULT, collection_id: str | None = None,
    top_k: int | None = None, threshold: float | None = None, **fields: Any,
) -> Iterator[FrameResult]:  # fmt: skip
    """Live frames in, each frame's faces out, in order (StreamFaces). With a
    `collection_id`, every face carries its matches (`face.subject`)."""
    kind = Kind.FACE if collection_id is None else Kind.IDENTIFY
    identify = identification(kind, collection_id, top_k, threshold)
    return (yield from _live(c, kind, frames, options, color, timeout, fields, identify))


@stream
def stream_objects(
    c, frames: Iterable[ImageInput] | AsyncIterable[ImageInput],
    options: ObjectOptions | None = None, *, color: Color | None = None,
    timeout: float | None = _DEFAULT, **fields: Any,
) -> Iterator[FrameResult]:  # fmt: skip
    """Live frames in, each frame's objects out, in order (StreamObjects)."""
    return (yield from _live(c, Kind.OBJECT, frames, options, color, timeout, fields))


def delete_faces(
    c, collection_id: str, face_ids: Sequence[str], *, timeout: float | None = _DEFAULT
) -> list[str]:
    """Delete enrolled faces by id, everywhere; -> the ids that existed."""
    path = _FACE + "DeleteFaces"
    request = _request(path, {"collection_id": collection_id, "face_ids": list(face_ids)})
    response = yield from unary(c, path, request, timeout)
    return list(response.deleted_face_ids)


def delete_face(c, collection_id: str, face_id: str, *, timeout: float | None = _DEFAULT) -> None:
    """Delete one enrolled face; NotFound when there is no such face."""
    if not (yield from delete_faces(c, collection_id, [face_id], timeout=timeout)):
        raise NotFound(f"face {face_id} is not in collection {collection_id!r}", code="not_found")


def health(c, *, timeout: float | None = 5.0) -> Health:
    """grpc.health.v1 of both services: `checks` {"face", "object"}; ready when both SERVING."""
    checks = {}
    for kind in c.targets:
        request = health_pb2.HealthCheckRequest(service="")
        try:
            service = _service(_path(kind, "image"))
            response = yield Rpc(_HEALTH, request, Deadline(timeout), service)
            checks[kind.route] = response.status == health_pb2.HealthCheckResponse.SERVING
        except PerceptError:
            checks[kind.route] = False
    return Health(any(checks.values()), all(checks.values()), checks)


OPERATIONS = [
    compare_faces, model_info, stream_faces, stream_objects, delete_faces, delete_face, health,
    *_ops.OPERATIONS,
]  # fmt: skip


# --- the two I/Os ----------------------------------------------------------------------------


class _SyncLive:
    """A live call on a grpc channel. grpc reads the caller's frames on a daemon
    thread of its own; when the call ends (an error, the caller stopping early),
    that thread may be inside the caller's iterator, in native code
    (cv2.VideoCapture.read); were the process to exit then, finalization would
    kill the thread inside C++ and abort the interpreter. So no frame is read
    once the call has ended, and the call does not end until the frame being
    read is done."""

    def __init__(self, client: _Base, effect: Rpc) -> None:
        self.requests: Iterator[Any] = effect.request
        self.failure: list[BaseException] = []
        self.ended = threading.Event()
        self.reading = threading.Lock()  # held while the caller's iterator makes a frame
        self.call = client._call(effect, self._requests())

    def _requests(self) -> Iterator[Any]:
        try:
            while True:
                with self.reading:
                    request = _END if self.ended.is_set() else next(self.requests, _END)
                if request is _END:
                    return
                yield request
        except Exception as exc:  # noqa: BLE001 - raised to the caller at the end
            self.failure.append(exc)

    def __next__(self) -> Any:
        return next(self.call)  # StopIteration at the end: the driver's None

    def cancel(self) -> None:
        self.ended.set()
        self.call.cancel()
        if self.reading.acquire(timeout=FRAME_WAIT_S):
            self.reading.release()
        else:
            logger.warning(
                "the frame iterator did not return a frame within %.0f s of the stream's end",
                FRAME_WAIT_S,
            )
        if self.failure:
            raise self.failure[0]


class _AsyncLive:
    """A live call on a grpc.aio channel, fed from a sync or an async iterator."""

    def __init__(self, client: _Base, effect: Rpc) -> None:
        self.requests = effect.request
        self.failure: list[BaseException] = []
        self.call = client._call(effect, self._requests())
        self.read = self.call.read

    async def _requests(self):
        try:
            if isinstance(self.requests, AsyncIterable):
                async for request in self.requests:
                    yield request
            else:
                for request in self.requests:
                    yield request
        except Exception as exc:  # noqa: BLE001 - raised to the caller at the end
            self.failure.append(exc)

    def cancel(self) -> None:
        self.call.cancel()
        if self.failure:
            raise self.failure[0]


class _Base(Closing):
    _grpc: Any  # grpc, or grpc.aio: the module its channels come from
    _detect, _video, _route = _detect, _video, _route  # what `_ops` calls

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
        # the tenant: whose face collections (the services trust it; "default" unless given)
        metadata = {"authorization": f"Bearer {token}" if token else "", "x-percept-tenant": tenant}
        self._metadata = tuple((k, v) for k, v in metadata.items() if v)
        self._channels: dict[str, Any] = {}  # by service

    def _channel(self, service: str):
        if service not in self._channels:
            kind = next(k for k in self.targets if _service(_path(k, "image")) == service)
            target = channel_target(self.targets[kind])
            options = _channel_options(service, self.max_message_bytes)
            self._channels[service] = (
                self._grpc.secure_channel(target, self._credentials, options=options)
                if self._credentials
                else self._grpc.insecure_channel(target, options=options)
            )
        return self._channels[service]

    def _start(self, effect: Rpc) -> Any:
        if rules.method(effect.path).client_streaming:
            return self._live(self, effect)
        return self._call(effect, effect.request)

    def _call(self, effect: Rpc, request: Any) -> Any:
        """Call `effect`'s method with `request` (an iterator of them for a live
        call): the descriptors say whether requests and responses stream."""
        rpc, make = rules.method(effect.path), message_factory.GetMessageClass
        shape = ("stream" if rpc.client_streaming else "unary") + (
            "_stream" if rpc.server_streaming else "_unary")  # fmt: skip
        channel = self._channel(effect.service or _service(effect.path))
        method = getattr(channel, shape)(
            effect.path, request_serializer=make(rpc.input_type).SerializeToString,
            response_deserializer=make(rpc.output_type).FromString,
        )  # fmt: skip
        return method(request, timeout=effect.deadline.remaining(), metadata=self._metadata)


class GrpcClient(_Base):
    """The gRPC services, synchronously. Thread-safe; close it when done.

    `face` / `object` are targets (default PERCEPT_FACE_TARGET /
    PERCEPT_OBJECT_TARGET, else the running `make run` stack's, else
    127.0.0.1:50051 / :50052) and `token` the services' gRPC token (default
    PERCEPT_GRPC_TOKEN, else the stack's: see `percept.stack`). `timeout` is the
    deadline of image calls, `video_timeout` of video and live streams; every
    method takes `timeout=` too (None: no deadline).
    """

    _grpc, _live = grpc, _SyncLive

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def perform(self, effect: Any) -> Any:
        """Run one effect of an operation (see `_core`) with grpc."""
        try:
            if isinstance(effect, Next):
                return next(effect.handle, None)
            if isinstance(effect, Close):
                return effect.handle.cancel()  # the caller stopped early: stop the service too
            return self._start(effect)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from None


class AsyncGrpcClient(_Base):
    """The gRPC services for asyncio: the same methods as `GrpcClient`, awaited;
    video and live streams are async iterators, and live frames may come from
    an async iterator too."""

    _grpc, _live = grpc.aio, _AsyncLive

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def perform(self, effect: Any) -> Any:
        """Run one effect of an operation (see `_core`) with grpc.aio."""
        try:
            if isinstance(effect, Next):
                response = await effect.handle.read()
                return None if response is grpc.aio.EOF else response
            if isinstance(effect, Close):
                return effect.handle.cancel()  # a live call raises the frames' failure here
            call = self._start(effect)
            return call if effect.opens else await call
        except grpc.RpcError as exc:
            raise from_grpc(exc) from None


install(GrpcClient, OPERATIONS, asynchronous=False)
install(AsyncGrpcClient, OPERATIONS, asynchronous=True)
