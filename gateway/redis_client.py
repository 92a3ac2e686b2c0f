"""The one place a Redis client is made: from REDIS_URL, a plain Redis, one
found through Redis Sentinel, or a Redis Cluster.

- `redis://[[user]:password@]host[:port][/db]` (or `rediss://`, `unix://`): one
  Redis, as redis-py's `from_url` reads it;
- `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]`
  (or `rediss+sentinel://` for TLS to the primary): the sentinels (port 26379
  unless given) are asked which node is the primary of `master`, and asked
  again whenever it stops answering or turns out to be a replica, so a
  failover is followed without a restart. The password (and user) are the
  primary's; `?sentinel_password=...` (and `sentinel_username`) authenticate
  to sentinels that require it.

- `redis+cluster://[[user]:password@]host[:port][,host[:port]...]` (or
  `rediss+cluster://` for TLS): a Redis Cluster, found from any of these nodes
  (port 6379 unless given); redis-py's RedisCluster routes each command to the
  node holding its keys' slot and follows resharding and failovers. A cluster
  has database 0 only. Every key Percept keeps is then named under one hash
  tag, `{percept}:` (`Names` below): a script or transaction touches several
  keys at once (a task's submit, a webhook fan-out, an API key's creation),
  which a cluster allows only within one slot.

While no primary is known (a failover in progress), or no cluster node
answers, commands raise redis-py's ConnectionError, which the routes answer 503
with Retry-After.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

PREFIX = "percept:"  # every key the gateway keeps starts with it ...
CLUSTER_PREFIX = "{percept}:"  # ... or, on a cluster, with this hash tag (one slot)

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_PORT = 26379
REDIS_PORT = 6379
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


def text(value: Any) -> str:
    """A reply's value as text, from a client decoding replies or one that does not."""
    return value.decode() if isinstance(value, bytes) else value


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def prefix_for(client: Any) -> str:
    """The prefix of every key Percept keeps on this client: tagged on a cluster."""
    return CLUSTER_PREFIX if is_cluster(client) else PREFIX


class Key:
    """A key name under a `Names`' prefix, `<prefix><name>`, or a family of
    them, `<prefix><name>:<part>[:<part>...]` (`keys.task(task_id)`,
    `keys.live(status, kind_id)`). A family given one "" part names what its
    members start with: the prefix a script appends the data it reads to."""

    def __init__(self, name: str, *, family: bool = True) -> None:
        self.name = name
        self.family = family

    def __get__(self, names: Names | None, owner: type) -> Any:
        if names is None:
            return self
        base = names.prefix + self.name
        if not self.family:
            return base
        return lambda *parts: f"{base}:{':'.join(map(str, parts))}"


@dataclass(frozen=True)
class Names:
    """The key names of one store (a subclass declares them as `Key`s), under
    one prefix: `percept:` on a single Redis or behind Sentinel, as they always
    were, so an existing data set stays readable; `{percept}:` on a cluster."""

    prefix: str = PREFIX

    @classmethod
    def for_client(cls, client: Any):
        return cls(prefix_for(client))


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def is_sentinel_url(url: str) -> bool:
    return _scheme(url) in SENTINEL_SCHEMES


def is_cluster_url(url: str) -> bool:
    return _scheme(url) in CLUSTER_SCHEMES


def _split(url: str, default_port: int, what: str, form: str):
    """A multi-host URL's parts: (hosts [(host, port)], path, query params,
    username, password). Raises ValueError naming a bad address."""
    _, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    found = []
    for item in filter(None, hosts.split(",")):
        if item.startswith("["):  # [::1]:26379
            host, _, port = item[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if not host or (port and not port.isdigit()):
            raise ValueError(f"bad {what} address {item!r} in REDIS_URL: expected {form}")
        found.append((host, int(port) if port else default_port))
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    return found, path, params, unquote(username) or None, unquote(password) or None


def parse_sentinel_url(url: str) -> dict[str, Any]:
    """The parts of a redis+sentinel:// URL: sentinels [(host, port)], master,
    db, username, password, sentinel_username, sentinel_password, ssl.
    Raises ValueError saying what is wrong and what is accepted."""
    form = "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]"
    sentinels, path, params, username, password = _split(url, SENTINEL_PORT, "sentinel", form)
    parts = [unquote(p) for p in path.split("/") if p]
    if not sentinels or not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError(f"REDIS_URL must name the sentinels and the master's name: {form}")
    return {
        "sentinels": sentinels,
        "master": parts[0],
        "db": int(parts[1]) if len(parts) == 2 else 0,
        "username": username,
        "password": password,
        "sentinel_username": params.get("sentinel_username"),
        "sentinel_password": params.get("sentinel_password"),
        "ssl": _scheme(url) == "rediss+sentinel",
    }


def parse_cluster_url(url: str) -> dict[str, Any]:
    """The parts of a redis+cluster:// URL: nodes [(host, port)], username,
    password, ssl. Raises ValueError saying what is wrong and what is accepted."""
    form = "redis+cluster://[[user]:password@]host[:port][,host[:port]...]"
    nodes, path, _params, username, password = _split(url, REDIS_PORT, "cluster node", form)
    if not nodes or path.strip("/") not in ("", "0"):
        raise ValueError(f"REDIS_URL must name cluster nodes (database 0 only): {form}")
    return {
        "nodes": nodes,
        "username": username,
        "password": password,
        "ssl": _scheme(url) == "rediss+cluster",
    }


def check_url(url: str) -> None:
    """Raise ValueError for a REDIS_URL of the sentinel or cluster form that is
    malformed (at start, not at the first request)."""
    if is_sentinel_url(url):
        parse_sentinel_url(url)
    elif is_cluster_url(url):
        parse_cluster_url(url)


class _Cluster(RedisCluster):
    """RedisCluster whose "no node reachable" is redis-py's ConnectionError, as
    one Redis's is: the routes answer it 503 store_unavailable and the loops
    wait it out, instead of a 500 (redis-py raises RedisClusterException)."""

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            if isinstance(exc.__cause__, RedisConnectionError | RedisTimeoutError | OSError):
                raise RedisConnectionError(str(exc)) from exc
            raise  # not a cluster, refused credentials...: a mistake, said as such


def _cluster_client(url: str, decode_responses: bool, options: dict[str, Any]) -> RedisCluster:
    parts = parse_cluster_url(url)
    return _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parts["nodes"]],
        username=parts["username"],
        password=parts["password"],
        ssl=parts["ssl"],
        decode_responses=decode_responses,
        **options,
    )


def redis_client(
    url: str, *, decode_responses: bool = True, **options: Any
) -> aioredis.Redis | RedisCluster:
    """An asyncio Redis client for REDIS_URL (any form above); `options` are
    redis-py's connection options (timeouts, retry, health checks)."""
    if is_cluster_url(url):
        return _cluster_client(url, decode_responses, options)
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
