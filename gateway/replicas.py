"""The replica monitor: every replica of every declared backend the gateway can
reach, with its health and what it says about itself, kept in Redis for the console.

Each backend's targets (GATEWAY_{NAME}_TARGETS, e.g. GATEWAY_FACE_TARGETS: a
`host:port` list or one `dns:///name:port` target, read as the gateway's
channels read them: percept_runtime/targets.py) are resolved again every
few seconds, so replicas that appear in DNS show up by themselves. Every
address is probed about once a second with grpc.health.v1 Check and
percept.common.v1.ReplicaService/GetReplicaInfo (short deadlines): a replica
that stops answering is `unreachable` within a probe or two.

Layout (prefix `percept:`; `{percept}:` on a cluster, as every key Percept keeps):
- `replicas`       hash "{backend}|{address}" -> the replica's record (JSON);
- `replicas:lease` which gateway process probes now: only one does at a time,
                   every process (and a restarted one) reads the same records.

States: `serving`, `not_serving` (answers, but its model is not ready or it
drains), `unreachable` (resolved, not answering), `gone` (no longer resolved:
scaled away). A replica neither serving nor answering for
GATEWAY_REPLICA_FORGET_S drops off the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from percept.common.v1 import replica_service_pb2 as replica_pb
from percept.common.v1 import replica_service_pb2_grpc as replica_grpc

from gateway import declare
from gateway.backends import call_metadata, channel_credentials
from gateway.declare import Backend
from gateway.redis_client import Key, Names
from gateway.settings import GatewaySettings
from percept_runtime.targets import parse_target, resolve

logger = logging.getLogger(__name__)


class ReplicaKeys(Names):
    """The keys of the layout above, under one prefix."""

    records = Key("replicas", family=False)
    lease = Key("replicas:lease", family=False)


SERVING, NOT_SERVING, UNREACHABLE, GONE = "serving", "not_serving", "unreachable", "gone"

# KEYS: lease. ARGV: holder, ttl ms. Take the lease when free, renew it when ours.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease. ARGV: holder. Let go of the lease only if it is ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# --- probing --------------------------------------------------------------------------

_CHANNEL_OPTIONS = [
    # Reconnect quickly: a replica that comes back is seen within a probe or two.
    ("grpc.initial_reconnect_backoff_ms", 300),
    ("grpc.min_reconnect_backoff_ms", 300),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 2_000),
]

_INFO_FIELDS = (
    "replica", "model", "backend", "device", "workers", "workers_ready", "calls_in_flight",
    "calls_served", "calls_failed", "calls_refused", "mean_call_seconds", "started_at",
    "worker_restarts",
)  # fmt: skip


async def probe(
    channel: grpc.aio.Channel,
    service: str,
    deadline_s: float,
    metadata: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """One look at a replica: its health for `service` and its own description
    (`metadata`: the replicas' shared token, when they want one).
    Returns {"state", "error"?, and the GetReplicaInfo fields when it answered}."""
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service),
        timeout=deadline_s,
        wait_for_ready=False,
        metadata=metadata,
    )
    info = replica_grpc.ReplicaServiceStub(channel).GetReplicaInfo(
        replica_pb.GetReplicaInfoRequest(),
        timeout=deadline_s,
        wait_for_ready=False,
        metadata=metadata,
    )
    health_reply, info_reply = await asyncio.gather(health, info, return_exceptions=True)
    out: dict[str, Any] = {}
    if isinstance(health_reply, grpc.aio.AioRpcError):
        code = health_reply.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            out["state"] = UNREACHABLE
            out["error"] = f"{code.name}: {health_reply.details() or ''}".strip(": ")
        else:  # it answers, but not SERVING for this service (e.g. NOT_FOUND)
            out["state"] = NOT_SERVING
            out["error"] = f"health check: {code.name}"
    elif isinstance(health_reply, BaseException):
        raise health_reply
    else:
        serving = health_reply.status == health_pb2.HealthCheckResponse.SERVING
        out["state"] = SERVING if serving else NOT_SERVING
    if isinstance(info_reply, replica_pb.GetReplicaInfoResponse):
        for name in _INFO_FIELDS:
            key = "engine" if name == "backend" else name
            out[key] = getattr(info_reply, name)
        out["services"] = list(info_reply.services)
    return out


def _key(backend: str, address: str) -> str:
    return f"{backend}|{address}"


class ReplicaMonitor:
    """Resolves and probes every replica of every backend while this process
    holds the lease; records what it sees in Redis."""

    def __init__(
        self,
        redis,
        settings: GatewaySettings,
        backends: Iterable[Backend] | None = None,
    ) -> None:
        backends = tuple(backends or declare.backends())
        self.redis = redis  # decode_responses=True
        self.keys = ReplicaKeys.for_client(redis)
        self.interval = settings.replica_probe_s
        self.timeout = min(settings.replica_probe_timeout_s, max(0.2, self.interval))
        self.resolve_every = settings.replica_resolve_s
        self.forget_after = settings.replica_forget_s
        self.targets = {b.name: parse_target(settings.backend(b).targets) for b in backends}
        self.services = {b.name: b.service_name for b in backends}
        # The gateway's own way to the replicas: TLS (mutual) and the shared token.
        self._credentials = channel_credentials(settings)
        self._server_name = settings.grpc_tls_server_name
        self._metadata = call_metadata(settings)
        self.holder = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.lease_ms = int(max(3.0, 3 * self.interval) * 1000)
        self._lease = redis.register_script(_LEASE)
        self._release = redis.register_script(_RELEASE)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._resolved: dict[str, list[str]] = {}
        self._resolved_at = 0.0
        self._task: asyncio.Task | None = None

    # --- life ----------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="replica-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._release(keys=[self.keys.lease], args=[self.holder])
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                if await self._lease(keys=[self.keys.lease], args=[self.holder, self.lease_ms]):
                    await self.probe_all()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis away: try again next round
                logger.warning("replica monitor: round failed", exc_info=True)
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - started)))

    # --- one round -----------------------------------------------------------------
    async def _resolve_all(self) -> None:
        if self._resolved and time.monotonic() - self._resolved_at < self.resolve_every:
            return
        for name, target in self.targets.items():
            try:
                self._resolved[name] = await resolve(target, self.timeout * 2)
            except (OSError, TimeoutError, ValueError) as exc:
                # Keep the last answer: a DNS hiccup is not every replica gone.
                logger.warning("replica monitor: cannot resolve %s: %s", target.spec, exc)
                self._resolved.setdefault(name, [])
        self._resolved_at = time.monotonic()

    def _channel(self, backend: str, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            else:
                # An address is dialled, so the certificate is checked against the
                # configured name, else the name the target resolves.
                hosts = self.targets[backend].hosts
                name = self._server_name or (hosts[0][0] if hosts else "localhost")
                options = [*_CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", name)]
                channel = grpc.aio.secure_channel(address, self._credentials, options=options)
            self._channels[address] = channel
        return channel

    async def probe_all(self) -> None:
        """Resolve (every few seconds), probe every address, write the records."""
        await self._resolve_all()
        now = time.time()
        live = {(name, a) for name, addresses in self._resolved.items() for a in addresses}
        probes = [
            self._probe_one(name, address) for name, address in sorted(live)
        ]  # fmt: skip
        results = await asyncio.gather(*probes, return_exceptions=True)
        previous = {
            k: json.loads(v) for k, v in (await self.redis.hgetall(self.keys.records)).items()
        }  # fmt: skip
        updates: dict[str, str] = {}
        for (name, address), result in zip(sorted(live), results, strict=True):
            if isinstance(result, BaseException):
                result = {"state": UNREACHABLE, "error": f"probe failed: {result}"}
            key = _key(name, address)
            updates[key] = json.dumps(self._merge(previous.get(key), name, address, result, now))
        forget: list[str] = []
        for key, record in previous.items():
            if key in updates:
                if self._forgotten(json.loads(updates[key]), now):
                    forget.append(key)
                    updates.pop(key)
                continue
            name, address = record["backend"], record["address"]
            if name not in self.targets:
                continue  # another gateway's backend: not ours to judge
            if record.get("target") != self.targets[name].spec:
                forget.append(key)  # the setting changed: a replica of an old target
                continue
            record = self._merge(
                record, name, address, {"state": GONE, "error": "no longer resolved"}, now
            )
            if self._forgotten(record, now):
                forget.append(key)
            else:
                updates[key] = json.dumps(record)
        async with self.redis.pipeline(transaction=True) as pipe:
            if updates:
                pipe.hset(self.keys.records, mapping=updates)
            if forget:
                pipe.hdel(self.keys.records, *forget)
            await pipe.execute()
        for address in set(self._channels) - {a for _, a in live}:
            await self._channels.pop(address).close()

    async def _probe_one(self, backend: str, address: str) -> dict[str, Any]:
        channel = self._channel(backend, address)
        return await probe(channel, self.services[backend], self.timeout, self._metadata)

    def _merge(
        self,
        old: dict[str, Any] | None,
        backend: str,
        address: str,
        seen: dict[str, Any],
        now: float,
    ) -> dict[str, Any]:
        record = dict(old or {})
        record.update(backend=backend, address=address, target=self.targets[backend].spec)
        record.setdefault("first_seen", now)
        state = seen["state"]
        if record.get("state") != state:
            record["state_since"] = now
        record["state"] = state
        record["error"] = seen.get("error")
        record["last_probe"] = now
        if state in (SERVING, NOT_SERVING):
            record["last_seen"] = now
        if "calls_served" in seen:
            counters = ("calls_served", "calls_failed", "calls_refused")
            calls = sum(seen.get(c, 0) for c in counters)
            before = sum(record.get(c, 0) for c in counters)
            elapsed = now - record.get("info_at", now)
            if (
                old
                and elapsed > 0
                and calls >= before
                and record.get("started_at") == seen.get("started_at")
            ):
                record["calls_per_s"] = (calls - before) / elapsed
            else:
                record["calls_per_s"] = None
            record["info_at"] = now
            record.update(seen)
            record["error"] = seen.get("error")
        elif state != SERVING:
            record["calls_in_flight"] = 0
            record["calls_per_s"] = None
        return record

    def _forgotten(self, record: dict[str, Any], now: float) -> bool:
        if record["state"] in (SERVING, NOT_SERVING):
            return False
        seen = record.get("last_seen") or record.get("first_seen") or now
        return now - seen > self.forget_after


async def read_replicas(redis, stale_after: float) -> list[dict[str, Any]]:
    """Every recorded replica (any gateway process may answer), sorted by
    backend and address; `stale` when no monitor probed it lately."""
    now = time.time()
    out = []
    for raw in (await redis.hgetall(ReplicaKeys.for_client(redis).records)).values():
        record = json.loads(raw)
        record["stale"] = now - record.get("last_probe", 0) > stale_after
        record.pop("info_at", None)
        out.append(record)
    return sorted(out, key=lambda r: (r["backend"], r["address"]))


async def lease_holder(redis) -> str | None:
    return await redis.get(ReplicaKeys.for_client(redis).lease)
