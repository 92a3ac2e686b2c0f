"""REDIS_URL's cluster form, as the one Redis factory reads it."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from gateway import events, signin
from gateway.jobs import JobStore, KeySchema
from gateway.keys import KeyStore
from gateway.redis_client import check_url, parse_cluster_url, redis_client
from gateway.replicas import ReplicaKeys
from gateway.settings import GatewaySettings
from gateway.signin import SignInThrottle
from gateway.sources import SourceStore
from gateway.webhooks import WebhookStore
from scripts import ensure_redis
from source_worker.settings import WorkerSettings
from tests.support import free_port


def test_a_cluster_url_names_its_nodes():
    parts = parse_cluster_url("rediss+cluster://u:p%40ss@10.0.0.1,10.0.0.2:7001,[::1]:7002")
    assert parts["nodes"] == [("10.0.0.1", 6379), ("10.0.0.2", 7001), ("::1", 7002)]
    assert (parts["username"], parts["password"], parts["ssl"]) == ("u", "p@ss", True)
    assert parse_cluster_url("redis+cluster://h/0")["ssl"] is False


@pytest.mark.parametrize("url", ["redis+cluster://", "redis+cluster://h/1", "redis+cluster://h:x"])
def test_a_bad_cluster_url_says_the_form_expected(url, monkeypatch):
    form = r"redis\+cluster://\[\[user\]:password@\]host"
    with pytest.raises(ValueError, match=form):
        check_url(url)
    monkeypatch.setenv("REDIS_URL", url)  # the gateway and the source workers refuse it at start
    for settings in (GatewaySettings, WorkerSettings):
        with pytest.raises(ValueError, match=form):
            settings()


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


def test_the_gateway_refuses_a_bad_cluster_url_at_start():
    with pytest.raises(ValueError, match=r"database 0 only"):
        GatewaySettings(redis_url="redis+cluster://127.0.0.1:7000/1")
    assert GatewaySettings(redis_url="redis+cluster://a:7000,b").redis_url


def test_ensure_redis_names_the_nodes_of_a_sentinel_or_cluster_url_and_starts_none():
    assert ensure_redis.named_nodes("rediss+cluster://:pw@a:7000,b") == (
        "cluster nodes", [("a", 7000), ("b", 6379)],
    )  # fmt: skip
    assert ensure_redis.named_nodes("redis+sentinel://s1,s2:5000/mymaster") == (
        "sentinels", [("s1", 26379), ("s2", 5000)],
    )  # fmt: skip
    assert ensure_redis.named_nodes("redis://127.0.0.1:6379/0") is None
    with pytest.raises(SystemExit, match="must name cluster nodes"):
        ensure_redis.named_nodes("redis+cluster://a/2")
    silent = f"127.0.0.1:{free_port()}"
    with pytest.raises(SystemExit, match=f"none of the cluster nodes .*{silent.split(':')[1]}"):
        ensure_redis.main(f"redis+cluster://{silent}")  # (never started here)


def test_every_store_names_its_keys_under_one_tag_on_a_cluster():
    """On a cluster every store's keys share the slot of `{percept}` (a script
    or transaction may touch any of them together); elsewhere the names are
    as they always were."""

    async def main() -> None:
        cluster = redis_client("redis+cluster://127.0.0.1:1")
        plain = redis_client("redis://127.0.0.1:1/0")
        tagged, untagged = (
            [
                *WebhookStore(c).keys.enqueue("sub_1", "evt_1"),
                WebhookStore(c).keys.sub("sub_1"),
                KeyStore(c).names.record("sha"),
                KeyStore(c).names.index,
                KeyStore(c).names.bucket("1a2b3c4d"),
                SourceStore(c).keys.status("src_1"),
                SourceStore(c).keys.all,
                ReplicaKeys.for_client(c).records,
                *SignInThrottle(c, 10, 60).keys_of(signin.counters("10.0.0.1", "pk_1a2b3c4d_x")),
                events.outbox_of(c),
            ]
            for c in (cluster, plain)
        )
        assert {key_slot(name.encode()) for name in tagged} == {key_slot(b"{percept}")}
        assert untagged[:2] == ["percept:wh:dlv:sub_1:evt_1", "percept:wh:due:sub_1"]
        assert untagged[-3:] == ["percept:signin:addr:10.0.0.1", "percept:signin:key:1a2b3c4d",
                                 "percept:outbox"]  # fmt: skip
        assert ["{percept}:" + name.removeprefix("percept:") for name in untagged] == tagged
        await cluster.aclose()
        await plain.aclose()

    asyncio.run(main())
