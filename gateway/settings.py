"""Gateway settings: env GATEWAY_* (and REDIS_URL), flags for the common few."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from gateway.redis_client import check_url
from percept_runtime.settings import LoggingSettings, Port, SecretFiles, redis_url_field

MiB = 1024 * 1024


class Declared(Protocol):
    """What settings need of a declared backend (gateway.declare.Backend)."""

    name: str
    targets: str
    concurrency: int


class BackendSettings(BaseModel):
    """One declared backend's settings (GATEWAY_{NAME}_TARGETS, _CONCURRENCY)."""

    targets: str = Field(
        min_length=1,
        description="Replicas: comma-separated host:port list, or one gRPC target such as dns:///face:50051.",
    )
    concurrency: int = Field(ge=1, le=256, description="Tasks in flight per dispatcher process.")


class GatewaySettings(LoggingSettings, SecretFiles):
    """Percept REST gateway. Every setting is env GATEWAY_<NAME>, except REDIS_URL."""

    # extra="allow": a declared backend's settings given as keywords (face_targets=...)
    # are kept for `backend`; its env is read there (backends are declared after this).
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="allow")
    secret_files = (("grpc_token", "grpc_token_file"),)

    host: str = "0.0.0.0"
    """Address the REST API listens on."""
    port: Port = 8000
    """REST port."""
    redis_url: str = redis_url_field("GATEWAY_")
    """Redis holding the job table and the queues: redis://[:password@]host:port/db, redis+sentinel://[:password@]host:port,host:port,.../master/db to follow a failover, or redis+cluster://[:password@]host:port,host:port,... for a Redis Cluster (database 0)."""
    redis_wait_replicas: int = Field(1, ge=0, le=16)
    """Replicas that must hold a task before it is answered 202 (Redis WAIT), so a failover loses no accepted task; only as many as are in sync are waited for (a Redis without replicas accepts at once); fewer answering within redis_wait_timeout_ms is 503. 0: never wait."""
    redis_wait_timeout_ms: int = Field(
        500, ge=1, le=60_000, description="Longest a submit waits for redis_wait_replicas."
    )
    declarations: str = ""
    """Modules declaring more backends and their task kinds (importable names, comma-separated), imported at start; each backend NAME then has GATEWAY_{NAME}_TARGETS and GATEWAY_{NAME}_CONCURRENCY like face and object."""
    workers: int = Field(
        1,
        ge=1,
        le=256,
        description="API processes serving the port (each with its own dispatchers); one per core on a big machine.",
    )
    auth: Literal["enabled", "disabled"] = "enabled"
    """API keys required (enabled) or not (disabled: every caller is an admin; a warning is logged at every start)."""
    docs_public: bool = False
    """Serve /docs, /redoc and /openapi.json without a key."""
    metrics_public: bool = False
    """Serve /metrics without a key (else an admin key is needed)."""
    session_ttl_s: float = Field(43200.0, gt=0)
    """How long a console sign-in (session cookie) lasts; its key's revocation ends it at once."""
    public_origin: str = ""
    """Origins browsers open the console at (scheme://host[:port], comma-separated), e.g. https://percept.example.com behind a TLS proxy; a state-changing request signed in by the session cookie must come from one (empty: the request's own scheme and Host)."""
    login_failures: int = Field(10, ge=0)
    """Wrong keys a client address, and separately a key id, may try at sign-in per login_window_s; beyond, 429 with Retry-After (0: no limit)."""
    login_window_s: float = Field(60.0, gt=0, le=3600)
    """The sign-in throttle's window, in seconds."""
    forwarded_allow_ips: str = ""
    """Proxies (IPs or CIDRs, comma-separated, or *) whose X-Forwarded-For and X-Forwarded-Proto are believed for the client address and scheme; empty: none, the TCP peer is the client."""
    max_queued_bytes: int = Field(2 * 1024 * MiB, ge=0)
    """Upload bytes queued in Redis at once, all tenants together; beyond, submits get 503 with Retry-After (0: no cap)."""
    grpc_tls_ca: Path | None = None
    """PEM CA bundle: talk TLS to the replicas, verifying them against it."""
    grpc_tls_cert: Path | None = None
    """PEM client certificate for mutual TLS (with grpc_tls_key)."""
    grpc_tls_key: Path | None = None
    """PEM private key of grpc_tls_cert."""
    grpc_tls_server_name: str = ""
    """Name to verify in the replicas' certificates, when not the target's host."""
    grpc_token: str = ""
    """Shared token sent to the replicas (their AUTH_TOKEN setting)."""
    grpc_token_file: Path | None = None
    """Read grpc_token from this file (a mounted secret) instead."""
    dispatchers: bool = True
    """Run dispatchers inside the API process."""
    inline_concurrency: int = Field(
        64,
        ge=0,
        le=10_000,
        description="Simple-mode (?wait=true) image tasks one API process runs itself at once; beyond, they queue.",
    )
    task_ttl_s: int = Field(
        86_400, ge=1, description="How long a task record (and its result) is kept."
    )
    tombstone_ttl_s: int = Field(7 * 86_400, ge=0)
    """After a task expires, how long its id answers 410 instead of 404."""
    keep_input_s: int = Field(900, ge=0)
    """How long a finished image task's upload is kept for the console to draw on (0 keeps none)."""
    keep_input_max: int = Field(1000, ge=1)
    """Most uploads kept for the console at once (oldest dropped first)."""
    preview_bytes_per_tenant: int = Field(64 * MiB, ge=0)
    """Bytes of finished uploads kept for the console per tenant, as Redis holds them; beyond, that tenant's oldest are dropped (0 keeps none). Never refuses work."""
    preview_bytes_total: int = Field(256 * MiB, ge=0)
    """The same, all tenants together (0 keeps none); Redis' maxmemory must fit it (gateway.settings.redis_maxmemory)."""
    lease_s: float = Field(30.0, gt=0)
    """A running task whose dispatcher is silent this long is claimed by another."""
    max_attempts: int = Field(3, ge=1, le=20)
    """Runs of one task before it fails."""
    wait_timeout_s: float = Field(30.0, ge=0)
    """Longest ?wait=true holds the request before answering 202."""
    image_deadline_s: float = Field(60.0, gt=0)
    """gRPC deadline of one image call."""
    video_deadline_s: float = Field(3600.0, gt=0)
    """gRPC deadline of one video call."""
    max_image_bytes: int = Field(16 * MiB, ge=1)
    """Largest image upload; larger is 413."""
    max_video_bytes: int = Field(60 * MiB, ge=1)
    """Largest video upload; larger is 413 (keep under the services' max message size)."""
    max_inflight_upload_bytes: int = Field(256 * MiB, ge=0)
    """Upload bytes one gateway process holds at once (each upload reserves its size before its body is read); beyond, a big upload waits up to upload_wait_s, then 503 uploads_busy with Retry-After. At least max_image_bytes and max_video_bytes (0: no bound)."""
    upload_wait_s: float = Field(5.0, ge=0, le=300)
    """Longest an upload waits for room in max_inflight_upload_bytes before its 503."""
    upload_small_bytes: int = Field(1 * MiB, ge=0)
    """An upload smaller than this never waits for max_inflight_upload_bytes (admitted at once, counted), so small requests are not stuck behind big ones."""
    max_image_pixels: int = Field(40_000_000, ge=1)
    """Largest image (width x height) accepted."""
    face_max_detection_pixels: int = Field(40_000_000, ge=0)
    """Refuse face tasks whose HOG detection would scan more pixels (width x height x 4^upsample); keep equal to the face service's FACE_MAX_DETECTION_PIXELS."""
    face_max_cnn_pixels: int = Field(4_000_000, ge=0)
    """The same for the CNN detector; keep equal to FACE_MAX_CNN_PIXELS."""
    metrics_port: Port = 0
    """python -m gateway.worker only: serve its Prometheus /metrics on this port (0: off); API processes serve /metrics on the API port."""
    heartbeat_file: str = "/tmp/percept-dispatcher.alive"
    """Touched every few seconds while dispatchers reach Redis; `python -m gateway.worker --check` reads it."""
    root_path: str = ""
    """Path prefix a reverse proxy serves the gateway under (e.g. /percept), for the URLs it builds."""
    replica_monitor: bool = True
    """Probe the replicas for the console (one gateway process at a time)."""
    replica_probe_s: float = Field(1.0, gt=0, le=60)
    """How often every replica is probed (health + GetReplicaInfo)."""
    replica_probe_timeout_s: float = Field(1.0, gt=0, le=30)
    """Deadline of one probe; a replica slower than this is unreachable."""
    replica_resolve_s: float = Field(2.0, gt=0)
    """How often the targets are resolved again (new replicas appear)."""
    replica_forget_s: float = Field(120.0, ge=0)
    """A replica neither answering nor resolved for this long drops off the console's list."""
    events_maxlen: int = Field(10_000, ge=1)
    """Events kept in each tenant's event log (GET /api/events)."""
    events_max_age_s: int = Field(7 * 86_400, ge=1)
    """Longest an event stays in the event log, in seconds."""
    events_outbox_maxlen: int = Field(200_000, ge=1)
    """Events waiting to be fanned out to webhooks and MQTT; past it the oldest are dropped (a delivery process down that long)."""
    webhook_delivery: bool = True
    """Deliver webhooks from this process (API processes only with dispatchers on; python -m gateway.worker always)."""
    webhook_allow_private: bool = False
    """Allow webhook URLs on loopback, private and link-local addresses (refused otherwise, at subscription and at every connect)."""
    webhook_timeout_s: float = Field(10.0, gt=0, le=120)
    """Time a receiver has to answer one delivery."""
    webhook_retry_for_s: float = Field(86_400.0, gt=0)
    """How long a delivery is retried (exponential backoff with jitter) before it is marked failed."""
    webhook_backoff_s: float = Field(1.0, gt=0)
    """First retry delay; doubled at each attempt, with full jitter."""
    webhook_backoff_max_s: float = Field(600.0, gt=0)
    """Longest delay between two attempts (Retry-After included)."""
    webhook_concurrency: int = Field(128, ge=1, le=10_000)
    """Deliveries in flight per delivering process."""
    webhook_per_subscription: int = Field(8, ge=1, le=1000)
    """Deliveries in flight per subscription per process: a burst or a slow receiver takes no more."""
    webhook_rotation_overlap_s: float = Field(86_400.0, ge=0)
    """After a secret rotation, how long deliveries are also signed with the old secret."""
    mqtt_url: str = ""
    """mqtt://host:port of a broker to publish every event to (QoS 1; empty: off)."""
    mqtt_topic_prefix: str = "percept"
    """MQTT topics: {prefix}/{tenant}/{event type}."""

    def backend(self, backend: Declared) -> BackendSettings:
        """A declared backend's settings: GATEWAY_{NAME}_TARGETS and
        GATEWAY_{NAME}_CONCURRENCY given as keywords, else from env, else the
        declaration's defaults. ValueError when one is wrong."""
        env = {k.upper(): v for k, v in os.environ.items()}
        values = {}
        for name in BackendSettings.model_fields:
            key = f"{backend.name}_{name}"
            value = (self.model_extra or {}).get(key, env.get(f"GATEWAY_{key.upper()}"))
            values[name] = getattr(backend, name) if value is None else value
        try:
            return BackendSettings(**values)
        except ValidationError as exc:
            raise ValueError(f"GATEWAY_{backend.name.upper()}_*: {exc}") from None

    @field_validator("public_origin")
    @classmethod
    def _origins(cls, value: str) -> str:
        from gateway.csrf import parse_origins

        return ",".join(parse_origins(value))

    @property
    def public_origins(self) -> tuple[str, ...]:
        return tuple(filter(None, self.public_origin.split(",")))

    @model_validator(mode="after")
    def _redis_url(self) -> GatewaySettings:
        check_url(self.redis_url)  # ValueError: what is wrong, the form expected
        return self

    @model_validator(mode="after")
    def _inflight_fits_an_upload(self) -> GatewaySettings:
        largest = max(self.max_image_bytes, self.max_video_bytes)
        if self.max_inflight_upload_bytes and self.max_inflight_upload_bytes < largest:
            raise ValueError(
                f"max_inflight_upload_bytes ({self.max_inflight_upload_bytes}) must be at least "
                f"the largest upload allowed (max_image_bytes, max_video_bytes: {largest}), "
                "or 0 for no bound"
            )
        return self


# What Redis holds beyond the capped bytes: task records, events, results and
# statistics (a few KiB per task kept GATEWAY_TASK_TTL_S), and uploads on their
# way in (a request sits whole in Redis' query buffer until its script runs; a
# gateway process sends at most 2 big ones at once: gateway.jobs.BIG_WRITES).
REDIS_HEADROOM_BYTES = 512 * MiB
# The allocator (jemalloc) rounds a large value up to its size class: up to a
# quarter more than the upload for queued ones (previews are counted as held).
ALLOCATOR_SLACK = 1.25


def redis_maxmemory(settings: GatewaySettings, headroom: int = REDIS_HEADROOM_BYTES) -> int:
    """The `maxmemory` a Redis serving these settings needs: the cap on queued
    uploads (with the allocator's rounding), the preview budget, and headroom.
    0 when uploads are not capped (GATEWAY_MAX_QUEUED_BYTES=0): no bound fits."""
    if not settings.max_queued_bytes:
        return 0
    queued = int(settings.max_queued_bytes * ALLOCATOR_SLACK)
    return queued + settings.preview_bytes_total + headroom
