"""gRPC clients for the face and object replicas.

One channel per backend, round-robin over every replica: a comma-separated
host:port list (names resolved at start), or one gRPC target such as
`dns:///face:50051` that the channel re-resolves (the services cap connection
age, so new replicas get traffic). Client-side health checking skips replicas
that are not SERVING, UNAVAILABLE is retried through the service config, and
every call has a deadline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway import declare, results
from gateway.declare import Backend, TaskKind
from gateway.errors import ApiError, grpc_api_error
from gateway.jobs import DEFAULT_TENANT
from gateway.kinds import FACE
from gateway.settings import GatewaySettings
from percept_runtime.targets import channel_target

logger = logging.getLogger(__name__)


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


def channel_credentials(settings: GatewaySettings) -> grpc.ChannelCredentials | None:
    """TLS to the replicas (with a client certificate for mutual TLS), or None."""
    if not settings.grpc_tls_ca:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=settings.grpc_tls_ca.read_bytes(),
        private_key=settings.grpc_tls_key.read_bytes() if settings.grpc_tls_key else None,
        certificate_chain=settings.grpc_tls_cert.read_bytes() if settings.grpc_tls_cert else None,
    )


def call_metadata(settings: GatewaySettings) -> tuple[tuple[str, str], ...]:
    """Metadata every call to a replica carries: the shared token, if any."""
    return (("authorization", f"Bearer {settings.grpc_token}"),) if settings.grpc_token else ()


def make_channel(
    spec: str, service: str, max_message_bytes: int, settings: GatewaySettings
) -> grpc.aio.Channel:
    options = [
        ("grpc.service_config", service_config(service)),
        ("grpc.enable_retries", 1),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.dns_min_time_between_resolutions_ms", 2_000),
    ]
    if settings.grpc_tls_server_name:
        options.append(("grpc.ssl_target_name_override", settings.grpc_tls_server_name))
    credentials = channel_credentials(settings)
    if credentials is None:
        return grpc.aio.insecure_channel(channel_target(spec), options=options)
    return grpc.aio.secure_channel(channel_target(spec), credentials, options=options)


OnFrame = Callable[[dict[str, Any], int, int], Awaitable[None]]
REPLICA_KEY = "x-percept-replica"
# Whose data a call may use (face collections): the caller's tenant. The
# replicas trust it, as only the gateway can reach them (token / mTLS).
TENANT_KEY = "x-percept-tenant"
MODEL_INFO_TTL_S = 30.0


class Backends:
    """The gRPC side of the gateway: one channel per backend, and one call per
    task run. Requests travel as the bytes the job table stored (serialized
    once, at submit); responses become the task's JSON once, here."""

    def __init__(
        self, settings: GatewaySettings, backends: tuple[Backend, ...] | None = None
    ) -> None:
        limit = max(settings.max_video_bytes, settings.max_image_bytes) + 1024 * 1024
        self.backends = {b.name: b for b in backends or declare.backends()}
        self.channels = {
            b.name: make_channel(settings.backend(b).targets, b.service_name, limit, settings)
            for b in self.backends.values()
        }
        self.metadata = call_metadata(settings)
        self.image_deadline = settings.image_deadline_s
        self.video_deadline = settings.video_deadline_s
        self._methods: dict[str, Any] = {}
        self._unary: dict[str, Any] = {}
        self._info: dict[str, tuple[float, Any]] = {}

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()

    def _method(self, kind: TaskKind):
        method = self._methods.get(kind.id)
        if method is None:
            channel = self.channels[kind.backend.name]
            make = channel.unary_stream if kind.streaming else channel.unary_unary
            # request_serializer=None: the request is already serialized bytes.
            method = make(kind.rpc_path, None, kind.response_class.FromString)
            self._methods[kind.id] = method
        return method

    async def run(
        self,
        kind: TaskKind,
        request: bytes,
        task_id: str,
        on_frame: OnFrame | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Run one task's call for a tenant (the replica logs it under the task's
        id). Returns (result JSON, replica that served it); a video's frames go
        to on_frame as they come, and its result is {"summary": ...} from the
        stream's last response (frames expected vs processed, partial or not)."""
        method = self._method(kind)
        metadata = (("x-request-id", task_id), (TENANT_KEY, tenant), *self.metadata)
        streaming = kind.streaming
        deadline = self.video_deadline if streaming else self.image_deadline
        call = method(request, timeout=deadline, metadata=metadata)
        try:
            if not streaming:
                response = await call
                return kind.result(response), await _replica(call)
            done, summary = 0, None
            async for response in call:
                done += 1
                if on_frame is not None:
                    await on_frame(kind.result(response), done, response.expected_frames)
                if response.HasField("summary"):
                    summary = results.video_summary(response.summary)
            return ({"summary": summary} if summary else None), await _replica(call)
        finally:
            if not call.done():
                call.cancel()  # we stopped reading (a cancel, an error): stop the replica too

    async def call(
        self,
        backend: Backend,
        method: str,
        request: Message,
        *,
        tenant: str,
        request_id: str | None = None,
        deadline_s: float | None = None,
    ) -> Message:
        """One unary call answered synchronously (the collection routes), for a
        tenant. It fails fast when no replica is SERVING (UNAVAILABLE, retried by
        the channel a few times) instead of waiting out its deadline. Raises
        grpc.aio.AioRpcError."""
        stub = self._stub(backend, method)
        metadata = ((TENANT_KEY, tenant), *self.metadata)
        if request_id:
            metadata = (("x-request-id", request_id), *metadata)
        return await stub(
            request,
            timeout=deadline_s or self.image_deadline,
            metadata=metadata,
            wait_for_ready=False,
        )

    def _stub(self, backend: Backend, method: str):
        """A unary stub for one of the backend's methods, made once."""
        key = f"{backend.name}/{method}"
        stub = self._unary.get(key)
        if stub is None:
            rpc = backend.service.methods_by_name[method]
            response_class = message_factory.GetMessageClass(rpc.output_type)
            stub = self.channels[backend.name].unary_unary(
                f"/{backend.service_name}/{method}",
                lambda message: message.SerializeToString(),
                response_class.FromString,
            )
            self._unary[key] = stub
        return stub

    async def collection_exists(self, tenant: str, collection_id: str) -> bool | None:
        """Whether the tenant has this face collection; None when no face replica
        can say now (the task's own call will tell)."""
        request_class = message_factory.GetMessageClass(
            FACE.service.methods_by_name["DescribeCollection"].input_type
        )
        try:
            await self.call(
                self.backends["face"],
                "DescribeCollection",
                request_class(collection_id=collection_id),
                tenant=tenant,
                deadline_s=5.0,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise ApiError(
                    422, "invalid_option", exc.details() or "", fields=["collection_id"]
                ) from None
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                # Identification needs the collections' store: no replica can reach
                # it (or none is up), so the task could only wait; say so now.
                raise grpc_api_error(
                    exc.code(), exc.details(), from_service=answered_by_replica(exc)
                ) from None
            return None
        return True

    async def ready(self) -> dict[str, bool]:
        """Whether each backend has at least one SERVING replica."""
        out = {}
        for name, channel in self.channels.items():
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=self.backends[name].service_name),
                    timeout=1.0,
                    wait_for_ready=False,
                    metadata=self.metadata,
                )
                out[name] = reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.aio.AioRpcError:
                out[name] = False
        return out

    async def model_info(self, backend: Backend):
        """The backend's GetModelInfo answer, cached for a while; None when it
        has no such method or is unreachable."""
        method = backend.service.methods_by_name.get("GetModelInfo")
        if method is None:
            return None
        cached = self._info.get(backend.name)
        if cached is not None and time.monotonic() - cached[0] < MODEL_INFO_TTL_S:
            return cached[1]
        request_class = message_factory.GetMessageClass(method.input_type)
        try:
            info = await self._stub(backend, "GetModelInfo")(
                request_class(), timeout=2.0, wait_for_ready=False, metadata=self.metadata
            )
        except grpc.aio.AioRpcError:
            return cached[1] if cached else None
        self._info[backend.name] = (time.monotonic(), info)
        return info


def answered_by_replica(error: grpc.aio.AioRpcError) -> bool:
    """Whether a failed call's status came from a replica (it names itself in the
    trailing metadata), not from the channel (no replica reached)."""
    return failed_on(error) is not None


def failed_on(error: grpc.aio.AioRpcError) -> str | None:
    """The replica that answered a failed call with its status, if one did."""
    for key, value in error.trailing_metadata() or ():
        if key == REPLICA_KEY:
            return value
    return None


async def _replica(call) -> str | None:
    try:
        metadata = await call.trailing_metadata()
    except Exception:  # noqa: BLE001 - the replica's name is a nicety
        return None
    for key, value in metadata or ():
        if key == REPLICA_KEY:
            return value
    return None
