"""API keys: stored hashed in Redis, each with a name, a tenant, a role and
limits; shared by every gateway process.

Layout (prefix `percept:`; `{percept}:` on a cluster, where creating a key
writes its record and the index in one transaction):
- `percept:key:{sha256(key)}`  hash: the key's record (never the key itself);
- `percept:keys`               hash: key id -> sha256, for listing and revoking;
- `percept:keys:changed`       pub/sub channel (not a key: never tagged): a
                               revoked (or changed) key is dropped from every
                               process's cache at once;
- `percept:bucket:{key id}`    the key's token bucket (its `rps` limit);
- `percept:session:{sha256(token)}`  string with a TTL: a console sign-in, the
                               sha256 of the key it was opened with. The
                               cookie holds the random token, never the key,
                               and the session dies with its key's revocation.

A key looks like `pk_<id>_<secret>`; only its SHA-256 is stored, and its id
(`<id>`) names it in lists, logs and the task records.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis

from gateway.jobs import DEFAULT_TENANT, PREFIX
from gateway.redis_client import Key, Names

logger = logging.getLogger(__name__)

CHANGED_CHANNEL = PREFIX + "keys:changed"
ROLES = ("admin", "client")
CACHE_S = 30.0  # a cached key is re-read at least this often, changes or not
TENANT_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
# The largest value of each limit (beyond them a limit would mean nothing, or overflow).
LIMIT_MAX = {"rps": 1e6, "burst": 1e6, "tasks": 1e9, "bytes": 2**50, "videos": 1e6}
MIN_RPS = 0.001
OWN_TENANT_PREFIX = "key-"  # a key created without a tenant gets "key-<its id>"  # a slower bucket would outlive Redis' largest expiry


@dataclass(frozen=True)
class Limits:
    """Per-key limits; 0 means unlimited."""

    rps: float = 0.0  # requests per second (token bucket)
    burst: int = 0  # bucket size; 0 means 2 x rps
    tasks: int = 0  # tasks accepted and not ended, at once
    bytes: int = 0  # bytes of uploads queued at once
    videos: int = 0  # video tasks accepted and not ended, at once

    def __post_init__(self) -> None:
        for name, top in LIMIT_MAX.items():
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= top):
                raise ValueError(f"limit {name} must be a number in [0, {top:g}] (0: no limit)")
        if 0 < self.rps < MIN_RPS:
            raise ValueError(f"limit rps must be 0 (no limit) or at least {MIN_RPS:g}")

    @classmethod
    def stored(cls, rps: float, burst: int, tasks: int, bytes_: int, videos: int) -> Limits:
        """Limits read back from Redis: a value an older version let through is
        brought into range (and logged) rather than breaking every use of the key."""
        values = {"rps": rps, "burst": burst, "tasks": tasks, "bytes": bytes_, "videos": videos}
        try:
            return cls(**values)
        except ValueError as exc:
            logger.warning("a stored API key has limits out of range (%s); using the nearest", exc)
        fixed = {}
        for name, value in values.items():
            top = LIMIT_MAX[name]
            value = 0 if math.isnan(value) or value < 0 else min(value, top)
            fixed[name] = value if name == "rps" else int(value)
        if 0 < fixed["rps"] < MIN_RPS:
            fixed["rps"] = MIN_RPS
        return cls(**fixed)

    @property
    def counted(self) -> bool:
        """Whether submits must be counted against in-flight limits."""
        return bool(self.tasks or self.bytes or self.videos)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    tenant: str
    role: str
    limits: Limits = field(default_factory=Limits)
    created_at: float = 0.0
    revoked_at: float = 0.0

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tenant": self.tenant,
            "role": self.role,
            "limits": asdict(self.limits),
            "created_at": self.created_at,
            "revoked": bool(self.revoked_at),
        }


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _record(key: ApiKey) -> dict[str, str]:
    limits = key.limits
    return {
        "id": key.id,
        "name": key.name,
        "tenant": key.tenant,
        "role": key.role,
        "rps": repr(limits.rps),
        "burst": str(limits.burst),
        "tasks": str(limits.tasks),
        "bytes": str(limits.bytes),
        "videos": str(limits.videos),
        "created_at": repr(key.created_at),
        "revoked_at": repr(key.revoked_at),
    }


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:  # "inf" and the like, from before limits were checked
        return int(LIMIT_MAX["tasks"])


def _from_record(raw: dict[str, str]) -> ApiKey:
    return ApiKey(
        raw["id"],
        raw.get("name", ""),
        raw.get("tenant", DEFAULT_TENANT),
        raw.get("role", "client"),
        Limits.stored(
            float(raw.get("rps") or 0),
            _int(raw.get("burst")),
            _int(raw.get("tasks")),
            _int(raw.get("bytes")),
            _int(raw.get("videos")),
        ),
        float(raw.get("created_at") or 0),
        float(raw.get("revoked_at") or 0),
    )


class KeyNames(Names):
    """The keys of the layout above, under one prefix."""

    record = Key("key")  # (sha256 of the key)
    index = Key("keys", family=False)
    session = Key("session")  # (sha256 of the token)
    bucket = Key("bucket")  # (key id): its requests-per-second token bucket (gateway/auth.py)


class KeyStore:
    """Create, list, revoke and look up API keys (cached per process)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis  # decode_responses=True
        self.names = KeyNames.for_client(redis)  # (API keys are `keys`: these are names)
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def create(
        self,
        name: str,
        tenant: str | None = None,
        role: str = "client",
        limits: Limits | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key: returns (the key, its record). The key is shown once.
        Without a tenant it gets one of its own (`key-<its id>`): keys share a
        tenant (its tasks, inputs and collections) only when it is named."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if tenant is not None and not re.fullmatch(TENANT_PATTERN, tenant):
            raise ValueError("tenant must be 1-64 letters, digits, '.', '_' or '-'")
        if not 1 <= len(name) <= 100:
            raise ValueError("name must be 1-100 characters")
        key_id = secrets.token_hex(4)
        tenant = tenant or f"{OWN_TENANT_PREFIX}{key_id}"
        secret = f"pk_{key_id}_{secrets.token_urlsafe(24)}"
        record = ApiKey(key_id, name, tenant, role, limits or Limits(), time.time())
        sha = digest(secret)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.names.record(sha), mapping=_record(record))
            pipe.hset(self.names.index, key_id, sha)
            await pipe.execute()
        return secret, record

    async def list(self) -> list[ApiKey]:
        index = await self.redis.hgetall(self.names.index)
        async with self.redis.pipeline(transaction=False) as pipe:
            for sha in index.values():
                pipe.hgetall(self.names.record(sha))
            records = await pipe.execute()
        keys = [_from_record(r) for r in records if r]
        return sorted(keys, key=lambda k: k.created_at)

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key at once on every gateway process; None if unknown."""
        sha = await self.redis.hget(self.names.index, key_id)
        if sha is None:
            return None
        now = repr(time.time())
        await self.redis.hset(self.names.record(sha), "revoked_at", now)
        await self.redis.publish(CHANGED_CHANNEL, sha)
        raw = await self.redis.hgetall(self.names.record(sha))
        return _from_record(raw) if raw else None

    async def lookup(self, key: str) -> ApiKey | None:
        """The live (not revoked) record of a key, or None."""
        return await self._live(digest(key))

    async def open_session(self, key: str, ttl_s: float) -> tuple[str, ApiKey] | None:
        """A console sign-in: (a new session token, the key's record), or None
        for an unknown or revoked key. Only the token's hash is stored."""
        record = await self.lookup(key)
        if record is None:
            return None
        token = f"ps_{secrets.token_urlsafe(32)}"
        await self.redis.set(self.names.session(digest(token)), digest(key), px=int(ttl_s * 1000))
        return token, record

    async def session(self, token: str) -> ApiKey | None:
        """The live record of the key a session was opened with, or None."""
        sha = await self.redis.get(self.names.session(digest(token)))
        return None if sha is None else await self._live(sha)

    async def close_session(self, token: str) -> None:
        await self.redis.delete(self.names.session(digest(token)))

    async def _live(self, sha: str) -> ApiKey | None:
        cached = self._cache.get(sha)
        if cached is not None and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        raw = await self.redis.hgetall(self.names.record(sha))
        found = _from_record(raw) if raw else None
        if found is not None and found.revoked_at:
            found = None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[sha] = (time.monotonic(), found)
        return found

    def forget(self, sha: str) -> None:
        self._cache.pop(sha, None)

    async def listen_for_changes(self) -> None:
        """Drop changed keys from this process's cache as they change."""
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(CHANGED_CHANNEL)
                self._cache.clear()  # anything may have changed while unsubscribed
                try:
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.forget(message["data"])
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis went away: resubscribe
                self._cache.clear()
                logger.warning("key change listener lost Redis; resubscribing")
                await asyncio.sleep(1)
