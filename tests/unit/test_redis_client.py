"""REDIS_URL's two forms, as the one Redis factory reads them."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool

from gateway.redis_client import parse_sentinel_url, redis_client
from gateway.settings import GatewaySettings


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database():
    parts = parse_sentinel_url(
        "redis+sentinel://:s%40cret@10.0.0.1,10.0.0.2:26380,[::1]:26381/percept/3"
        "?sentinel_password=sp"
    )
    assert parts["sentinels"] == [("10.0.0.1", 26379), ("10.0.0.2", 26380), ("::1", 26381)]
    assert (parts["master"], parts["db"]) == ("percept", 3)
    assert (parts["password"], parts["sentinel_password"], parts["ssl"]) == ("s@cret", "sp", False)
    assert parse_sentinel_url("rediss+sentinel://h/m")["ssl"] is True
    assert parse_sentinel_url("redis+sentinel://h/m")["db"] == 0


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel://h1,h2", "redis+sentinel:///percept", "redis+sentinel://h:x/m",
     "redis+sentinel://h/m/zero", "redis+sentinel://h/m/0/extra"],
)  # fmt: skip
def test_a_bad_sentinel_url_says_the_form_expected(url):
    with pytest.raises(ValueError, match=r"redis\+sentinel://\[\[user\]:password@\]host"):
        parse_sentinel_url(url)
    with pytest.raises(ValueError, match="master"):
        GatewaySettings(redis_url=url)  # refused at start, not at the first request


def test_the_factory_gives_a_client_that_follows_the_sentinels():
    asyncio.run(_factory())


async def _factory() -> None:
    client = redis_client("redis+sentinel://127.0.0.1:1,127.0.0.1:2/percept/2")
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "percept"
    assert pool.connection_kwargs["db"] == 2
    assert [s.connection_pool.connection_kwargs["port"] for s in client.sentinel.sentinels] == [
        1,
        2,
    ]
    await client.aclose()
    plain = redis_client("redis://127.0.0.1:1/4", decode_responses=False)
    assert plain.connection_pool.connection_kwargs["db"] == 4
    await plain.aclose()
