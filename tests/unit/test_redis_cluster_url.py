"""REDIS_URL's cluster form, as the one Redis factory reads it."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.cluster import RedisCluster

from gateway.jobs import JobStore, KeySchema
from gateway.redis_client import check_url, parse_cluster_url, redis_client


def test_a_cluster_url_names_its_nodes():
    parts = parse_cluster_url("rediss+cluster://u:p%40ss@10.0.0.1,10.0.0.2:7001,[::1]:7002")
    assert parts["nodes"] == [("10.0.0.1", 6379), ("10.0.0.2", 7001), ("::1", 7002)]
    assert (parts["username"], parts["password"], parts["ssl"]) == ("u", "p@ss", True)
    assert parse_cluster_url("redis+cluster://h/0")["ssl"] is False


@pytest.mark.parametrize("url", ["redis+cluster://", "redis+cluster://h/1", "redis+cluster://h:x"])
def test_a_bad_cluster_url_says_the_form_expected(url):
    with pytest.raises(ValueError, match=r"redis\+cluster://\[\[user\]:password@\]host"):
        check_url(url)


def test_a_cluster_client_and_its_tagged_key_names():
    async def main() -> None:
        client = redis_client("redis+cluster://127.0.0.1:1,127.0.0.1:2")
        assert isinstance(client, RedisCluster)
        assert [(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()] == [
            ("127.0.0.1", 1), ("127.0.0.1", 2),
        ]  # fmt: skip
        keys = KeySchema.for_client(client)
        assert keys.task("abc") == "{percept}:task:abc" and keys.evlog("t") == "{percept}:evlog:t"
        await client.aclose()
        assert JobStore.task_key("abc") == "percept:task:abc"  # a single Redis: as it always was

    asyncio.run(main())
