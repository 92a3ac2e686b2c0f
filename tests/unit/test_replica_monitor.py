"""The replica monitor's pieces: reading the targets setting, resolving names
(a DNS server of the test's own on loopback), probing a real in-process gRPC
server, and the record's state over time (appears, goes, is forgotten)."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from percept.common.v1 import replica_service_pb2_grpc

from gateway.replicas import (
    GONE,
    NOT_SERVING,
    SERVING,
    UNREACHABLE,
    ReplicaMonitor,
    parse_target,
    probe,
    resolve,
)
from gateway.settings import GatewaySettings
from percept_runtime.replica import Description, ReplicaServicer
from tests.netlab import TinyDNS


def test_targets_are_read_as_the_gateways_channels_read_them():
    assert parse_target("10.0.0.1:50051, 10.0.0.2:50051").hosts == (
        ("10.0.0.1", 50051),
        ("10.0.0.2", 50051),
    )
    target = parse_target("dns:///face:50051")
    assert target.hosts == (("face", 50051),) and target.dns_server is None
    target = parse_target("dns://127.0.0.1:5353/face.test:50051")
    assert target.hosts == (("face.test", 50051),) and target.dns_server == ("127.0.0.1", 5353)
    assert parse_target("ipv6:[::1]:50051,[::2]:50051").hosts == (("::1", 50051), ("::2", 50051))
    assert parse_target("unix:/tmp/face.sock").unix == "unix:/tmp/face.sock"
    with pytest.raises(ValueError, match="not host:port"):
        parse_target("face")


def test_a_dns_target_resolves_to_every_address_the_name_has_now():
    dns = TinyDNS("face.percept.test")
    try:
        target = parse_target(f"dns://127.0.0.1:{dns.port}/face.percept.test:50051")
        dns.addresses = ["10.0.0.7", "10.0.0.5"]
        assert asyncio.run(resolve(target)) == ["10.0.0.5:50051", "10.0.0.7:50051"]
        dns.addresses = ["10.0.0.5"]
        assert asyncio.run(resolve(target)) == ["10.0.0.5:50051"]
        unknown = parse_target(f"dns://127.0.0.1:{dns.port}/nothing.percept.test:50051")
        assert asyncio.run(resolve(unknown)) == []  # NXDOMAIN: no replica now
    finally:
        dns.close()
    assert asyncio.run(resolve(parse_target("dns:///localhost:50051"))) in (
        ["127.0.0.1:50051"],
        ["127.0.0.1:50051", "[::1]:50051"],
        ["[::1]:50051"],
    )


async def _probe_a_real_server() -> tuple[dict, dict, dict]:
    server = grpc.aio.server()
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    describe = lambda: Description("yolo-test", "onnxruntime", "cpu", 2, 1, 0)  # noqa: E731
    replica_service_pb2_grpc.add_ReplicaServiceServicer_to_server(
        ReplicaServicer(lambda: "replica-a:1", ["x.v1.XService"], describe, lambda: False), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    service = "x.v1.XService"
    await health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        loading = await probe(channel, service, 1.0)
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        serving = await probe(channel, service, 1.0)
    await server.stop(None)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{closed}") as channel:
        unreachable = await probe(channel, service, 1.0)
    return loading, serving, unreachable


def test_probe_reads_health_and_what_the_replica_says_about_itself():
    loading, serving, unreachable = asyncio.run(_probe_a_real_server())
    assert loading["state"] == NOT_SERVING and loading["replica"] == "replica-a:1"
    assert serving["state"] == SERVING
    assert serving["model"] == "yolo-test" and serving["engine"] == "onnxruntime"
    assert serving["workers"] == 2 and serving["workers_ready"] == 1
    assert serving["services"] == ["x.v1.XService"]
    assert unreachable["state"] == UNREACHABLE and "UNAVAILABLE" in unreachable["error"]
    assert "model" not in unreachable


class NoRedis:
    def register_script(self, script):
        return None


def monitor(forget_s: float = 60) -> ReplicaMonitor:
    settings = GatewaySettings(
        face_targets="10.0.0.1:50051", object_targets="10.0.0.2:50052", replica_forget_s=forget_s
    )
    return ReplicaMonitor(NoRedis(), settings)


def info(served: int, started_at: float = 100.0) -> dict:
    return {"state": SERVING, "calls_served": served, "calls_failed": 0, "started_at": started_at,
            "calls_in_flight": 1, "replica": "a", "model": "m"}  # fmt: skip


def test_a_record_follows_its_replica_and_is_forgotten_when_gone_long_enough():
    m = monitor(forget_s=60)
    record = m._merge(None, "face", "10.0.0.1:50051", info(10), now=1000.0)
    assert record["state"] == SERVING and record["state_since"] == 1000.0
    assert record["first_seen"] == record["last_seen"] == 1000.0
    assert record["calls_per_s"] is None  # no earlier look to compare with
    record = m._merge(record, "face", "10.0.0.1:50051", info(30), now=1002.0)
    assert record["calls_per_s"] == pytest.approx(10.0)
    assert record["state_since"] == 1000.0
    # restarted (a new started_at): no rate across the restart
    record = m._merge(record, "face", "10.0.0.1:50051", info(2, started_at=1001.5), now=1003.0)
    assert record["calls_per_s"] is None
    # killed: unreachable, the last description kept, nothing in flight
    record = m._merge(
        record, "face", "10.0.0.1:50051", {"state": UNREACHABLE, "error": "UNAVAILABLE"}, 1004.0
    )
    assert record["state"] == UNREACHABLE and record["state_since"] == 1004.0
    assert record["model"] == "m" and record["calls_in_flight"] == 0
    assert record["last_seen"] == 1003.0
    assert not m._forgotten(record, now=1003.0 + 60)
    assert m._forgotten(record, now=1003.0 + 61)
    # scaled away (no longer resolved): gone, forgotten likewise
    gone = m._merge(record, "face", "10.0.0.1:50051", {"state": GONE}, 1010.0)
    assert gone["state"] == GONE and not m._forgotten(gone, 1050.0) and m._forgotten(gone, 1070.0)
    # a serving replica is never forgotten
    serving = m._merge(None, "face", "10.0.0.1:50051", info(1), now=0.0)
    assert not m._forgotten(serving, now=10_000.0)
