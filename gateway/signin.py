"""Sign-in throttle: failed console sign-ins (POST /api/session with a wrong
key) counted in Redis, shared by every gateway process, per client address
and per key id (the `<id>` of `pk_<id>_<secret>`).

Each counter is a fixed window of GATEWAY_LOGIN_WINDOW_S: past
GATEWAY_LOGIN_FAILURES wrong keys in it, sign-in from that address (or for
that key id) is 429 with Retry-After until the window ends. An attempt takes
its place in the counters before the key is checked (so a burst cannot slip
past the limit) and gives it back when the key was right: successes never
count. The worst anyone can do to a real user is keep their console sign-in
waiting while they keep failing, a window at a time; API keys sent as
`Authorization` / `X-API-Key` are never throttled here.

The client address is the TCP peer's, unless GATEWAY_FORWARDED_ALLOW_IPS
names the proxies whose X-Forwarded-For is believed (uvicorn's proxy headers,
gateway/__main__.py). IPv6 addresses count per /64, what one host usually has.
"""

from __future__ import annotations

import ipaddress
import math
import re

import redis.asyncio as aioredis

from gateway.errors import ApiError
from gateway.redis_client import PREFIX, prefix_for

_PREFIX = PREFIX + "signin:"
_KEY_ID = re.compile(r"pk_([0-9a-f]{8})_")

# KEYS: the counters. ARGV: limit, window (ms). Returns ms to wait when any
# counter is full, else 0 after counting the attempt in every one.
_TAKE = """
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait = 0
for _, k in ipairs(KEYS) do
  if tonumber(redis.call('GET', k) or '0') >= limit then
    local t = redis.call('PTTL', k)
    if t < 0 then redis.call('PEXPIRE', k, window); t = window end
    if t > wait then wait = t end
  end
end
if wait > 0 then return wait end
for _, k in ipairs(KEYS) do
  if redis.call('INCR', k) == 1 or redis.call('PTTL', k) < 0 then
    redis.call('PEXPIRE', k, window)  -- the first failure opens the window
  end
end
return 0
"""

# KEYS: the counters an attempt that succeeded was counted in.
_GIVE_BACK = """
for _, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0')
  if n == 1 then redis.call('DEL', k) elseif n > 1 then redis.call('DECR', k) end
end
return 0
"""


def client_bucket(host: str | None) -> str:
    """The address failures are counted under (IPv6: its /64)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def counters(host: str | None, key: str) -> list[str]:
    """Redis keys of the counters a sign-in with `key` from `host` counts in."""
    names = [f"{_PREFIX}addr:{client_bucket(host)}"]
    match = _KEY_ID.match(key)
    if match:  # a key of any other shape can never be right: its address alone counts
        names.append(f"{_PREFIX}key:{match.group(1)}")
    return names


class SignInThrottle:
    """`attempt()` before checking a key (429 when over), `succeeded()` after a
    right one, each given the names `counters()` returns: a single Redis'
    names, taken under the client's prefix (on a cluster, the `{percept}` tag,
    so that one script counts in both)."""

    def __init__(self, redis: aioredis.Redis, failures: int, window_s: float) -> None:
        self.failures = failures  # 0: no limit
        self.window_s = window_s
        self.prefix = prefix_for(redis)
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)

    async def attempt(self, names: list[str]) -> None:
        if not self.failures:
            return
        window_ms = max(1, math.ceil(self.window_s * 1000))
        wait_ms = int(await self._take(keys=self.keys_of(names), args=[self.failures, window_ms]))
        if wait_ms > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"too many wrong API keys from this address or for this key id "
                f"({self.failures} per {self.window_s:g} s): retry after the "
                "Retry-After seconds",
                headers={"Retry-After": str(max(1, math.ceil(wait_ms / 1000)))},
            )

    async def succeeded(self, names: list[str]) -> None:
        if self.failures:
            await self._give_back(keys=self.keys_of(names))

    def keys_of(self, names: list[str]) -> list[str]:
        """The keys of the counters `counters()` named, on this client."""
        return [self.prefix + name.removeprefix(PREFIX) for name in names]
