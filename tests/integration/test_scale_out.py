"""Scale-out across hosts: face replicas on their own test hosts (network
namespaces with their own addresses) behind ONE gateway target, a dns://
name whose answers the test controls."""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass

import pytest

from tests.netlab import NetLab, TinyDNS
from tests.support import GatewayProcess, ServerProcess, submit, wait_done

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None,
        reason="network namespaces need root and iproute2",
    ),
]

NAME = "face.percept.test"


@dataclass
class HostedServer(ServerProcess):
    """A face replica inside a test host's namespace, on the standard ports."""

    netns: str = ""

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *super().command(), "--host", self.host]


def served(server: ServerProcess) -> float:
    return server.metric(
        "percept_grpc_requests_total", method="/percept.face.v1.FaceService/DetectFaces", code="OK"
    )


def start_replica(lab: NetLab, index: int) -> HostedServer:
    host = lab.add_host(index)
    server = HostedServer(
        "face_service",
        env={"FACE_WORKERS": "1", "FACE_MAX_CONNECTION_AGE_S": "3", "FACE_GRACE_PERIOD_S": "5"},
        port=50051,
        host=host.ip,
        netns=host.name,
    )
    server.metrics_port = 9100
    return server.start()


def test_replicas_on_separate_hosts_behind_one_target(redis_url, zidane_bytes):
    lab = NetLab()
    dns = TinyDNS(NAME)
    servers: list[HostedServer] = []
    gateway = None
    try:
        servers = [start_replica(lab, 1), start_replica(lab, 2)]
        dns.addresses = [s.host for s in servers]
        gateway = GatewayProcess(
            "gateway",
            env={
                "REDIS_URL": redis_url.rsplit("/", 1)[0] + "/13",
                "GATEWAY_FACE_TARGETS": f"dns://127.0.0.1:{dns.port}/{NAME}:50051",
                "GATEWAY_OBJECT_TARGETS": "127.0.0.1:9",
                "GATEWAY_FACE_CONCURRENCY": "4",
                "GATEWAY_IMAGE_DEADLINE_S": "20",
                "GRPC_DNS_RESOLVER": "ares",  # the resolver that honours a DNS server in the target
            },
        ).start()
        http = gateway.client(timeout=60)

        # Work spreads over every host behind the one name.
        before = [served(s) for s in servers]
        ids = [
            submit(http, "/api/detect/face/image", zidane_bytes).json()["task_id"] for _ in range(8)
        ]
        assert all(wait_done(http, i)["status"] == "succeeded" for i in ids)
        spread = [served(s) - b for s, b in zip(servers, before, strict=True)]
        assert sum(spread) == 8 and min(spread) >= 2, spread
        assert dns.queries > 0

        # A host taken down mid-load (its server killed, its link cut) costs no task.
        ids = [
            submit(http, "/api/detect/face/image", zidane_bytes).json()["task_id"]
            for _ in range(10)
        ]
        for _ in range(200):
            if sum(http.get(f"/api/task/{i}").json()["status"] == "succeeded" for i in ids) >= 2:
                break
            time.sleep(0.05)
        servers[0].proc.send_signal(signal.SIGKILL)
        servers[0].proc.wait()
        lab.hosts[0].unplug()
        results = [wait_done(http, i, timeout=180) for i in ids]
        assert [r["status"] for r in results] == ["succeeded"] * 10, [
            r.get("error") for r in results
        ]

        # A host added later starts getting work once the name lists it.
        newcomer = start_replica(lab, 3)
        servers.append(newcomer)
        dns.addresses = [servers[1].host, newcomer.host]
        deadline = time.monotonic() + 60
        while served(newcomer) == 0 and time.monotonic() < deadline:
            batch = [
                submit(http, "/api/detect/face/image", zidane_bytes).json()["task_id"]
                for _ in range(4)
            ]
            assert all(wait_done(http, i)["status"] == "succeeded" for i in batch)
        assert served(newcomer) > 0, "the new host never got work"
    finally:
        if gateway:
            gateway.stop()
        for server in servers:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGKILL)
                server.proc.wait()
        dns.close()
        lab.remove()
