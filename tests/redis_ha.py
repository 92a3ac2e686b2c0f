"""A Redis primary, its replicas and Redis Sentinels on loopback, for tests:
real `redis-server` and `redis-sentinel` processes (Debian's packages; the
sentinel is installed when missing, as scripts/ensure_tools.py does)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import redis

from tests import support
from tests.support import ROOT, free_port

MASTER = "percept"


def sentinel_binary() -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import ensure_tools
    finally:
        sys.path.pop(0)
    return ensure_tools.redis_sentinel()


def wait_until(check, timeout: float, what: str, step: float = 0.05):
    """support.wait_until across a failover: a refused connection is "not yet"."""
    return support.wait_until(check, timeout, what, step, errors=(redis.RedisError, OSError))


class RedisNode:
    """One redis-server, without persistence (as the compose/Kubernetes ha
    replicas run: a lost node comes back as a replica of the new primary)."""

    def __init__(self, data_dir: Path, replica_of: int | None = None) -> None:
        self.port = free_port()
        self.dir = data_dir / f"redis-{self.port}"
        self.dir.mkdir(parents=True)
        self.replica_of = replica_of
        self.proc: subprocess.Popen | None = None
        self.client = redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> RedisNode:
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
                "--appendonly", "no"]  # fmt: skip
        if self.replica_of:
            argv += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        log = open(self.dir / "redis.log", "wb")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.client.ping, 20, f"redis-server on {self.port}")
        if self.replica_of:
            wait_until(self.in_sync, 20, f"replica {self.port} in sync")
        return self

    def in_sync(self) -> bool:
        return self.client.info("replication").get("master_link_status") == "up"

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused one too
            self.proc.kill()
            self.proc.wait(30)
        self.client.close()


class SentinelNode:
    """One redis-sentinel watching MASTER, quick to decide (1 s down, quorum 2)."""

    def __init__(self, data_dir: Path, primary_port: int) -> None:
        self.port = free_port()
        self.dir = data_dir / f"sentinel-{self.port}"
        self.dir.mkdir(parents=True)
        self.config = self.dir / "sentinel.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        self.proc: subprocess.Popen | None = None
        self.client = redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def start(self, binary: str) -> SentinelNode:
        log = open(self.dir / "sentinel.log", "wb")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(
            [binary, str(self.config)], stdout=log, stderr=subprocess.STDOUT
        )
        wait_until(self.client.ping, 20, f"redis-sentinel on {self.port}")
        return self

    def primary_port(self) -> int | None:
        found = self.client.sentinel_get_master_addr_by_name(MASTER)
        return int(found[1]) if found else None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.client.close()


class SentinelSetup:
    """One primary, one replica, three sentinels that agree on them."""

    def __init__(self, data_dir: Path) -> None:
        binary = sentinel_binary()
        self.primary = RedisNode(data_dir).start()
        self.replica = RedisNode(data_dir, replica_of=self.primary.port).start()
        self.sentinels = [SentinelNode(data_dir, self.primary.port) for _ in range(3)]
        for sentinel in self.sentinels:
            sentinel.start(binary)
        # Ready when every sentinel knows the replica and its two peers.
        wait_until(
            lambda: all(
                (state := s.client.sentinel_master(MASTER))["num-slaves"] == 1
                and state["num-other-sentinels"] == 2
                for s in self.sentinels
            ),
            60,
            "three sentinels agreeing on the primary and its replica",
            step=0.2,
        )

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def primary_port(self) -> int | None:
        """The primary as the sentinels now name it (the majority's answer)."""
        ports = [s.primary_port() for s in self.sentinels]
        return max(set(ports), key=ports.count)

    def stop(self) -> None:
        for node in (*self.sentinels, self.replica, self.primary):
            node.stop()
