"""Live sources: cameras and streams the stack watches itself (issue 18).

A source is a per-tenant resource stored in Redis: a URL (rtsp, rtsps,
http(s) MJPEG or HLS, or a file in an allowed directory), what to run on it,
a frame-rate cap and its rules (zones, lines). The API process writes it
(gateway/routes/sources.py); source workers (`python -m source_worker`) read
it, lease it and run it, and write back its status and counts. Both sides
check URLs with the same policy (`SourcePolicy`, env SOURCES_*): an
allow-list of schemes, and no private, loopback or link-local address unless
a network is allowed explicitly (SSRF); the worker checks the address again
when it connects, so a name that resolves elsewhere later is refused too.

Credentials in a URL are kept (the worker needs them) but never shown back
or logged: `masked(url)`.

Plain Python + redis; no FastAPI here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.declare import Backend, BackendMethod
from gateway.jobs import PREFIX
from gateway.kinds import FACE, OBJECT
from gateway.redis_client import Key, Names, text
from percept_runtime import fields, ids
from percept_runtime.errors import InvalidInput

SCHEMES = ("rtsp", "rtsps", "http", "https", "file")
STATES = ("connecting", "live", "reconnecting", "failed", "paused", "ended")


class SourcePolicy(BaseSettings):
    """What a source URL may name; the API process and the source workers read
    the same env (SOURCES_*), so both refuse the same URLs."""

    model_config = SettingsConfigDict(env_prefix="SOURCES_", extra="ignore")

    schemes: str = Field(
        ",".join(SCHEMES),
        description="Accepted URL schemes, comma-separated (of rtsp, rtsps, http, https, file).",
    )
    file_dirs: str = Field(
        "",
        description="Directories (os.pathsep-separated) whose files may be sources; empty: no files.",
    )
    allow_networks: str = Field(
        "",
        description="CIDRs (comma-separated) a source may reach although private, loopback or link-local (e.g. 10.0.0.0/8 for cameras on the LAN, 127.0.0.0/8 in tests); empty: public addresses only.",
    )
    max_pixels: int = Field(
        8_294_400, ge=1, description="Largest frame (width x height) a source may send (4K)."
    )
    max_per_tenant: int = Field(100, ge=1, description="Most sources one tenant may register.")

    @property
    def scheme_set(self) -> set[str]:
        return {s.strip().lower() for s in self.schemes.split(",") if s.strip()}

    @property
    def directories(self) -> list[Path]:
        return [Path(d).resolve() for d in self.file_dirs.split(os.pathsep) if d.strip()]

    @property
    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(n.strip(), strict=False)
            for n in self.allow_networks.split(",")
            if n.strip()
        ]


# --- URLs ----------------------------------------------------------------------------------


def masked(url: str) -> str:
    """The URL with its password (or lone user token) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return urlunsplit((parts.scheme, f"{shown}@{hostport}", parts.path, parts.query, ""))


def address_problem(ip: str, networks=()) -> str | None:
    """Why a source may not reach this address (None when it may): private,
    loopback, link-local, multicast, reserved or unspecified addresses are
    refused unless one of `networks` holds them."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return f"{ip!r} is not an IP address"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if any(addr in net for net in networks):
        return None
    for what, flag in (
        ("unspecified", addr.is_unspecified),
        ("loopback", addr.is_loopback),
        ("link-local", addr.is_link_local),
        ("multicast", addr.is_multicast),
        ("private", addr.is_private),
        ("reserved", addr.is_reserved),
    ):
        if flag:
            return (
                f"{addr} is a {what} address: sources may reach public addresses only, "
                "unless SOURCES_ALLOW_NETWORKS allows its network"
            )
    return None


def resolve_checked(host: str, port: int | None, policy: SourcePolicy) -> list[str]:
    """The host's addresses, every one allowed; InvalidInput otherwise (a name
    with one private address among public ones is refused: the stream library
    may pick any)."""
    try:
        infos = socket.getaddrinfo(host, port or 0, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise InvalidInput(f"cannot resolve host {host!r}: {exc}") from None
    addresses = sorted({info[4][0] for info in infos})
    networks = policy.networks
    for ip in addresses:
        problem = address_problem(ip, networks)
        if problem:
            raise InvalidInput(f"host {host!r} resolves to {problem}")
    return addresses


def check_url(url: str, policy: SourcePolicy, *, resolve: bool = True) -> str:
    """The URL to open (a file URL becomes its resolved path), or InvalidInput
    saying what was wrong and what is accepted."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("url is empty: give rtsp://, rtsps://, http(s):// or file:// URL")
    url = url.strip()
    if any(ord(c) < 0x21 for c in url):
        raise InvalidInput("url contains spaces or control characters")
    if url.startswith("/"):
        url = "file://" + url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"url {masked(url)!r} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    accepted = sorted(policy.scheme_set)
    if scheme not in accepted:
        raise InvalidInput(
            f"url scheme {scheme or '(none)'!r} is not accepted: use one of {', '.join(accepted)}"
        )
    if scheme == "file":
        return str(check_file(parts.path, policy))
    if not parts.hostname:
        raise InvalidInput(f"url {masked(url)!r} has no host")
    if resolve:
        resolve_checked(parts.hostname, port, policy)
    return url


def check_file(path: str, policy: SourcePolicy) -> Path:
    dirs = policy.directories
    if not dirs:
        raise InvalidInput("file sources are off: no SOURCES_FILE_DIRS configured")
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(d) for d in dirs):
        raise InvalidInput(
            f"file {path!r} is outside the allowed directories (SOURCES_FILE_DIRS); "
            "put it in one of them"
        )
    if not resolved.is_file():
        raise InvalidInput(f"file {path!r} does not exist in the allowed directories")
    return resolved


# --- the resource --------------------------------------------------------------------------

# Frame coordinates, pixels: finite and within a (very large) frame.
Coord = Annotated[float, Field(ge=0, le=100_000)]
Point = tuple[Coord, Coord]
_ID_RULE = "1-64 letters, digits, '.', '_' or '-'"


def _rule_id(value: str) -> str:
    if ids.collection_id_problem(value) is not None:
        raise ValueError(f"{value!r} is not a valid id: use {_ID_RULE}")
    return value


class Zone(BaseModel):
    """A polygon in the source's frame, in pixels (origin top-left)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description=f"Unique within the source ({_ID_RULE}).")
    polygon: list[Point] = Field(
        min_length=3, max_length=64, description="[x, y] vertices, pixels."
    )
    classes: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Labels counted ('face' for faces); empty: all.",
    )

    _id = field_validator("id")(_rule_id)


class Line(BaseModel):
    """A counting line from start to end, in pixels. Crossing it from its right
    side to its left (seen looking from start to end) is `in`, the other way `out`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description=f"Unique within the source ({_ID_RULE}).")
    start: Point
    end: Point
    classes: list[str] = Field(default_factory=list, max_length=100)

    _id = field_validator("id")(_rule_id)

    @model_validator(mode="after")
    def _length(self) -> Line:
        if self.start == self.end:
            raise ValueError("a line needs two different points")
        return self


class SourceFields(BaseModel):
    """What a source is and what runs on it (a change may give any subset)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200, description="A label for people.")
    url: str = Field(
        max_length=2048,
        description="rtsp://, rtsps://, http(s):// (MJPEG or HLS), or file:// (or an absolute path) inside SOURCES_FILE_DIRS. Credentials in it are stored but never shown back.",
    )
    loop: bool = Field(False, description="Files only: start again at the end.")
    detect: Literal["objects", "faces", "both"] = Field("objects", description="What to run.")
    object_options: dict[str, Any] = Field(
        default_factory=dict,
        description="DetectionOptions of the object service (confidence_threshold, class_names, ...).",
    )
    face_options: dict[str, Any] = Field(
        default_factory=dict, description="FaceOptions of the face service."
    )
    collection_id: str = Field(
        "", description="Identify faces against this collection of yours (empty: detect only)."
    )
    max_fps: float = Field(5.0, gt=0, le=60, description="Frames processed per second, at most.")
    zones: list[Zone] = Field(default_factory=list, max_length=32)
    lines: list[Line] = Field(default_factory=list, max_length=32)
    paused: bool = Field(False, description="Registered but not watched.")

    @model_validator(mode="after")
    def _unique_rules(self) -> SourceFields:
        names = [z.id for z in self.zones] + [ln.id for ln in self.lines]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"zone and line ids must be unique within a source: {sorted(dup)}")
        if self.collection_id and ids.collection_id_problem(self.collection_id):
            raise ValueError(ids.collection_id_problem(self.collection_id))
        return self


class NewSource(SourceFields):
    pass


class SourceChange(BaseModel):
    """PATCH body: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=2048)
    loop: bool | None = None
    detect: Literal["objects", "faces", "both"] | None = None
    object_options: dict[str, Any] | None = None
    face_options: dict[str, Any] | None = None
    collection_id: str | None = None
    max_fps: float | None = Field(None, gt=0, le=60)
    zones: list[Zone] | None = Field(None, max_length=32)
    lines: list[Line] | None = Field(None, max_length=32)
    paused: bool | None = None


# --- what a source runs: one detector per backend with a live stream ---------------------


@dataclass(frozen=True)
class Detector(BackendMethod):
    """What `detect` runs on one backend: its bidirectional live stream, whose
    requests carry `image`, `options` and `tracker` (the options and tracker on
    the first message, as the replica reads them), fed from the source's
    `{backend}_options` and the record fields it `carries` (on that message too).
    The API's checks and the worker's streams read this table, nothing else."""

    detect: str  # the `detect` value that runs it alone; "both" runs every one
    backend: Backend  # as declared (gateway/kinds.py): its channel, its service
    method: str  # its live stream, a method of backend.service
    carries: tuple[str, ...] = ()  # record fields its first request carries as they are

    @property
    def options_field(self) -> str:
        return f"{self.backend.name}_options"

    def options(self, record: dict[str, Any]) -> Message:
        """The record's options for this backend, parsed and checked against the
        proto's rules; InvalidInput names the field."""
        message = self.request_class().options
        try:
            json_format.ParseDict(record.get(self.options_field) or {}, message)
            fields.check(message)
        except (json_format.ParseError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{self.options_field}: {exc}") from None
        except InvalidInput as exc:
            raise InvalidInput(f"{self.options_field}: {exc.message}") from None
        return message

    def opening(self, record: dict[str, Any], tracker: Message) -> Message:
        """What the first request of a stream carries besides the image."""
        extra = {name: record.get(name) or "" for name in self.carries}
        return self.request_class(options=self.options(record), tracker=tracker, **extra)


DETECTORS = (
    Detector("objects", OBJECT, "StreamObjects"),
    Detector("faces", FACE, "StreamFaces", carries=("collection_id",)),
)
# Every record field what runs on a source depends on.
DETECTOR_FIELDS = ("detect", *(f for d in DETECTORS for f in (d.options_field, *d.carries)))


def detectors(detect: str) -> tuple[Detector, ...]:
    """The detectors a source's `detect` runs."""
    return tuple(d for d in DETECTORS if detect in (d.detect, "both"))


def check_spec(spec: SourceFields, policy: SourcePolicy) -> None:
    """Everything the models cannot check alone; InvalidInput says what."""
    check_url(spec.url, policy)
    if spec.loop and not _is_file(spec.url):
        raise InvalidInput("loop is for file sources only")
    record, running = spec.model_dump(), detectors(spec.detect)
    for detector in running:
        detector.options(record)
    for name in dict.fromkeys(f for d in DETECTORS for f in d.carries):
        if record[name] and not any(name in d.carries for d in running):
            takers = [repr(d.detect) for d in DETECTORS if name in d.carries]
            raise InvalidInput(f"{name} needs detect {' or '.join([*takers, repr('both')])}")


def _is_file(url: str) -> bool:
    return url.startswith("/") or url.lower().startswith("file:")


# --- the store -----------------------------------------------------------------------------

CHANGED = f"{PREFIX}sources:changed"  # pub/sub: a source id whose spec changed (not a key)


class SourceKeys(Names):
    """The sources' keys under one prefix (`{percept}:` on a cluster, where a
    source's creation writes its record and two indexes in one transaction,
    and a list reads many records in one MGET)."""

    source = Key("source")  # (id): the JSON record
    all = Key("sources", family=False)  # set of every source id (the workers' list)
    workers = Key("source-workers", family=False)  # zset worker id -> last heartbeat (unix s)
    tenant = Key("sources:tenant")  # (tenant): zset of its source ids by creation

    def status(self, source_id: str) -> str:
        return self.source(source_id, "status")

    def counts(self, source_id: str) -> str:
        return self.source(source_id, "counts")

    def lease(self, source_id: str) -> str:
        return self.source(source_id, "lease")

    def frame(self, source_id: str) -> str:
        return self.source(source_id, "frame")


class SourceStore:
    """Sources in Redis: one JSON record per source (with its tenant and a
    revision the workers compare), an index per tenant, and the status and
    counts the workers write."""

    def __init__(self, redis, policy: SourcePolicy | None = None) -> None:
        self.redis = redis
        self.policy = policy or SourcePolicy()
        self.keys = SourceKeys.for_client(redis)

    async def create(self, tenant: str, spec: NewSource) -> dict[str, Any]:
        await asyncio.to_thread(check_spec, spec, self.policy)  # DNS: off the event loop
        k = self.keys
        if await self.redis.zcard(k.tenant(tenant)) >= self.policy.max_per_tenant:
            raise InvalidInput(
                f"tenant has {self.policy.max_per_tenant} sources, the most allowed "
                "(SOURCES_MAX_PER_TENANT): delete one first"
            )
        now = time.time()
        record = {
            "id": "src_" + secrets.token_hex(8),
            "tenant": tenant,
            "created_at": now,
            "updated_at": now,
            "revision": 1,
            **spec.model_dump(),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(k.source(record["id"]), json.dumps(record))
            pipe.zadd(k.tenant(tenant), {record["id"]: now})
            pipe.sadd(k.all, record["id"])
            if spec.paused:
                pipe.hset(k.status(record["id"]), mapping={"state": "paused", "reason": ""})
            await pipe.execute()
        await self._changed(record["id"])
        return record

    async def _changed(self, source_id: str) -> None:
        """Tell the workers, once the change is written (a cluster refuses
        PUBLISH inside a transaction)."""
        await self.redis.publish(CHANGED, source_id)

    async def get(self, source_id: str, scope: str | None) -> dict[str, Any] | None:
        """The record, when the scope (a tenant; None: any) may see it."""
        raw = await self.redis.get(self.keys.source(source_id))
        if raw is None:
            return None
        record = json.loads(raw)
        if scope is not None and record["tenant"] != scope:
            return None  # another tenant's: it does not exist for this caller
        return record

    async def list(self, scope: str | None) -> list[dict[str, Any]]:
        if scope is None:
            source_ids = sorted(await self.redis.smembers(self.keys.all))
        else:
            source_ids = await self.redis.zrange(self.keys.tenant(scope), 0, -1)
        if not source_ids:
            return []
        raws = await self.redis.mget([self.keys.source(s) for s in source_ids])
        return [json.loads(r) for r in raws if r is not None]

    async def change(self, record: dict[str, Any], change: SourceChange) -> dict[str, Any]:
        updates = change.model_dump(exclude_unset=True)
        if "url" in updates and updates["url"] is None:
            raise InvalidInput("url cannot be null")
        merged = {**{k: record[k] for k in SourceFields.model_fields}, **updates}
        spec = SourceFields.model_validate(merged)
        if set(updates) & {"url", "loop", *DETECTOR_FIELDS}:
            await asyncio.to_thread(check_spec, spec, self.policy)  # DNS: off the event loop
        was_paused = record.get("paused", False)
        record = {
            **record,
            **spec.model_dump(),
            "updated_at": time.time(),
            "revision": record["revision"] + 1,
        }
        k = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(k.source(record["id"]), json.dumps(record))
            if spec.paused:
                pipe.hset(k.status(record["id"]), mapping={"state": "paused", "reason": ""})
            elif was_paused:
                pipe.hset(k.status(record["id"]), mapping={"state": "connecting", "reason": ""})
            await pipe.execute()
        await self._changed(record["id"])
        return record

    async def delete(self, record: dict[str, Any]) -> None:
        source_id = record["id"]
        k = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(k.source(source_id), k.status(source_id), k.counts(source_id))
            pipe.delete(k.frame(source_id))
            pipe.zrem(k.tenant(record["tenant"]), source_id)
            pipe.srem(k.all, source_id)
            await pipe.execute()
        await self._changed(source_id)

    async def status(self, source_id: str) -> dict[str, Any]:
        raw = await self.redis.hgetall(self.keys.status(source_id))
        return decode_status(raw)

    async def counts(self, source_id: str) -> dict[str, Any]:
        raw = await self.redis.hgetall(self.keys.counts(source_id))
        out: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            rule, _, what = text(field).rpartition(":")
            out.setdefault(rule, {})[what] = int(value)
        return out


_NUMBERS = {
    "fps_in": float,
    "fps_processed": float,
    "frames_in": int,
    "frames_processed": int,
    "frames_dropped": int,
    "reconnects": int,
    "last_frame_at": float,
    "latency_ms": float,
    "width": int,
    "height": int,
    "updated_at": float,
}


def decode_status(raw: dict) -> dict[str, Any]:
    status: dict[str, Any] = {"state": "connecting", "reason": ""}
    for key, value in raw.items():
        key, value = text(key), text(value)
        cast = _NUMBERS.get(key)
        status[key] = cast(value) if cast else value
    return status


def public(record: dict[str, Any], status: dict[str, Any], counts: dict[str, Any]) -> dict:
    """A source as the API shows it: credentials masked, status and counts."""
    out = {k: v for k, v in record.items() if k != "url"}
    out["url"] = masked(record["url"])
    out["status"] = status
    out["counts"] = counts
    return out
