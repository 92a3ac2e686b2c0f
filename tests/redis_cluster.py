"""A Redis Cluster of three primaries on loopback, for tests: real
`redis-server` processes in cluster mode (Debian's package), joined with
`redis-cli --cluster create`, no replicas, no persistence; the module-scoped
fixture `cluster` (a test module imports `cluster_fixture` to use it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import redis

from tests.redis_ha import wait_until
from tests.support import free_port

BUS_OFFSET = 10_000  # a cluster node also listens on its port + 10000 (the cluster bus)


def _free_pair() -> int:
    """A free port whose cluster-bus port is free too."""
    while True:
        port = free_port()
        if port + BUS_OFFSET > 65_535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port


class RedisCluster3:
    """Three cluster-enabled redis-servers sharing the 16384 slots."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> RedisCluster3:
        binary = shutil.which("redis-server") or "redis-server"
        for _ in range(3):
            port = _free_pair()
            node_dir = self.dir / f"cluster-{port}"
            node_dir.mkdir(parents=True)
            log = open(node_dir / "redis.log", "wb")  # noqa: SIM115 - the process keeps it
            self.procs.append(subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{port}.conf", "--save", "",
                 "--appendonly", "no", "--dir", str(node_dir)],
                stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
            self.ports.append(port)
            wait_until(redis.Redis(port=port).ping, 20, f"cluster node on {port}")
        subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        for port in self.ports:
            wait_until(lambda p=port: self.ok(p), 30, f"cluster_state:ok on {port}")
        return self

    @staticmethod
    def ok(port: int) -> bool:
        with redis.Redis(port=port, decode_responses=True) as client:
            return client.cluster("info").get("cluster_state") == "ok"

    def flush(self) -> None:
        """Empty every primary: a test starts from an empty cluster."""
        for port in self.ports:
            with redis.Redis(port=port) as client:
                client.flushall()

    def keys(self) -> list[str]:
        """Every key on every primary."""
        found = []
        for port in self.ports:
            with redis.Redis(port=port, decode_responses=True) as client:
                found += client.keys("*")
        return found

    def node_of(self, key: str) -> int:
        """The port of the primary that holds `key`'s slot."""
        with redis.Redis(port=self.ports[0], decode_responses=True) as client:
            slot = client.cluster("keyslot", key)
            for start, end, primary, *_ in client.cluster("slots"):
                if start <= slot <= end:
                    return int(primary[1])
        raise AssertionError(f"no node holds slot {slot}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture(tmp_path_factory):
    nodes = RedisCluster3(tmp_path_factory.mktemp("cluster")).start()
    yield nodes
    nodes.stop()
