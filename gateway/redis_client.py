"""The one place a Redis client is made: from REDIS_URL, a plain Redis or one
found through Redis Sentinel.

- `redis://[[user]:password@]host[:port][/db]` (or `rediss://`, `unix://`): one
  Redis, as redis-py's `from_url` reads it;
- `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]`
  (or `rediss+sentinel://` for TLS to the primary): the sentinels (port 26379
  unless given) are asked which node is the primary of `master`, and asked
  again whenever it stops answering or turns out to be a replica, so a
  failover is followed without a restart. The password (and user) are the
  primary's; `?sentinel_password=...` (and `sentinel_username`) authenticate
  to sentinels that require it.

While no primary is known (a failover in progress) commands raise redis-py's
ConnectionError, which the routes answer 503 with Retry-After.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote

import redis.asyncio as aioredis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379
SENTINEL_TIMEOUT_S = 1.0  # a silent sentinel is skipped after this, the next one asked


class _SentinelRedis(aioredis.Redis):
    """A client of the primary a Sentinel names; closing it closes the
    connections to the sentinels too."""

    sentinel: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel is not None:
            await self.sentinel.aclose()


class _Sentinel(Sentinel):
    async def discover_master(self, service_name: str):
        try:
            return await super().discover_master(service_name)
        except MasterNotFoundError as exc:  # redis-py's message holds every client's repr
            raise MasterNotFoundError(
                f"none of the {len(self.sentinels)} sentinels names a primary for "
                f"{service_name!r} (a failover in progress, the sentinels down, or another "
                "master name)"
            ) from exc


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> dict[str, Any]:
    """The parts of a redis+sentinel:// URL: sentinels [(host, port)], master,
    db, username, password, sentinel_username, sentinel_password, ssl.
    Raises ValueError saying what is wrong and what is accepted."""
    form = "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]"
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for item in filter(None, hosts.split(",")):
        if item.startswith("["):  # [::1]:26379
            host, _, port = item[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if not host or (port and not port.isdigit()):
            raise ValueError(f"bad sentinel address {item!r} in REDIS_URL: expected {form}")
        sentinels.append((host, int(port) if port else SENTINEL_PORT))
    parts = [unquote(p) for p in path.split("/") if p]
    if not sentinels or not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError(f"REDIS_URL must name the sentinels and the master's name: {form}")
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    return {
        "sentinels": sentinels,
        "master": parts[0],
        "db": int(parts[1]) if len(parts) == 2 else 0,
        "username": unquote(username) or None,
        "password": unquote(password) or None,
        "sentinel_username": params.get("sentinel_username"),
        "sentinel_password": params.get("sentinel_password"),
        "ssl": scheme.lower() == "rediss+sentinel",
    }


def redis_client(url: str, *, decode_responses: bool = True, **options: Any) -> aioredis.Redis:
    """An asyncio Redis client for REDIS_URL (either form above); `options` are
    redis-py's connection options (timeouts, retry, health checks)."""
    if not is_sentinel_url(url):
        return aioredis.from_url(url, decode_responses=decode_responses, **options)
    parts = parse_sentinel_url(url)
    sentinel_auth = {
        "username": parts["sentinel_username"],
        "password": parts["sentinel_password"],
    }
    sentinel = _Sentinel(
        parts["sentinels"],
        sentinel_kwargs={
            "socket_timeout": SENTINEL_TIMEOUT_S,
            "socket_connect_timeout": SENTINEL_TIMEOUT_S,
            **{k: v for k, v in sentinel_auth.items() if v},
        },
    )
    client = sentinel.master_for(
        parts["master"],
        redis_class=_SentinelRedis,
        db=parts["db"],
        username=parts["username"],
        password=parts["password"],
        ssl=parts["ssl"],
        decode_responses=decode_responses,
        **options,
    )
    client.sentinel = sentinel
    return client
