"""Real processes for tests and benchmarks: free ports, gRPC servers and the
gateway started as subprocesses and stopped with SIGTERM, API keys, Redis
databases. A process runs from `root` (this checkout by default; the
before/after benchmark starts another revision's worktree with the same venv)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health_status(address: str, service: str = "", timeout: float = 2.0) -> int | None:
    try:
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            ).status
    except grpc.RpcError:
        return None


@dataclass
class ServerProcess:
    """A real server process on a free port; stopped with SIGTERM."""

    module: str
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    log_path: Path | None = None

    port: int = 0
    host: str = "127.0.0.1"  # where it is reached (a test host's address, for netns servers)
    root: Path = ROOT  # the checkout whose code it runs

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", self.module, "--port", str(self.port),
            "--metrics-port", str(self.metrics_port), *self.args,
        ]  # fmt: skip

    def ready(self) -> bool:
        return health_status(self.address) == health_pb2.HealthCheckResponse.SERVING

    def start(self, timeout: float = 180.0) -> ServerProcess:
        """Start (or restart, on the same port) and wait until ready."""
        self.port = self.port or free_port()
        self.metrics_port = getattr(self, "metrics_port", None) or free_port()
        self.address = f"{self.host}:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": f"{self.root}{os.pathsep}{self.root / 'gen'}",
            "YOLO_OFFLINE": "1",
            **self.env,
        }
        self.log_path = self.log_path or Path(f"/tmp/percept-test-{self.module}-{self.port}.log")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(), env=env, cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.module} exited with {self.proc.returncode}:\n{self.log()}"
                )
            if self.ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.module} not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample from the server's /metrics, 0 when absent."""
        text = (
            urllib.request.urlopen(f"http://{self.host}:{self.metrics_port}/metrics", timeout=5)
            .read()
            .decode()
        )
        total = 0.0
        for line in text.splitlines():
            m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not m:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(m.group(2))
        return total

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def fresh_db(redis_url: str, number: int) -> str:
    """Database `number` of the Redis at `redis_url`, emptied: a test's own (make
    test owns 9-15; the session gateway uses the URL's own database)."""
    import redis

    url = f"{redis_url.rsplit('/', 1)[0]}/{number}"
    redis.Redis.from_url(url).flushdb()
    return url


def create_key(
    redis_url: str, role: str = "admin", tenant: str | None = None, name: str = "tests", **limits
) -> str:
    """A new API key in the gateway's Redis (what `python -m gateway keys create`
    does): without a tenant, in a tenant of its own."""
    import asyncio

    from gateway.keys import KeyStore, Limits
    from gateway.redis_client import redis_client

    async def create() -> str:
        client = redis_client(redis_url)
        try:
            secret, _ = await KeyStore(client).create(name, tenant, role, Limits(**limits))
            return secret
        finally:
            await client.aclose()

    return asyncio.run(create())


class GatewayProcess(ServerProcess):
    """`python -m gateway` (or `gateway.worker`), ready when /healthz answers.

    Unless GATEWAY_AUTH=disabled, an admin key is created for it first:
    `api_key`, and `headers` to send it."""

    api_key: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def start(self, timeout: float = 180.0) -> GatewayProcess:
        if (
            self.api_key is None
            and self.module == "gateway"
            and self.env.get("GATEWAY_AUTH", "enabled") != "disabled"
        ):
            url = self.env.get("REDIS_URL") or os.environ.get(
                "REDIS_URL", "redis://127.0.0.1:6379/0"
            )
            # The stack's admin key, in the tenant "default" as make run's: the
            # tests that reach its collections with another key name it too.
            self.api_key = create_key(url, tenant="default")
        super().start(timeout)
        return self

    def client(self, **kwargs):
        """An httpx client for this gateway, with its admin key."""
        import httpx

        return httpx.Client(base_url=self.url, headers=self.headers, **kwargs)

    def command(self) -> list[str]:
        if self.module == "gateway.worker":
            return [sys.executable, "-m", self.module, *self.args]
        return [sys.executable, "-m", self.module, "--port", str(self.port), *self.args]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        if self.module == "gateway.worker":
            return "dispatcher" in self.log() and "started" in self.log()
        try:
            return urllib.request.urlopen(f"{self.url}/healthz", timeout=2).status == 200
        except OSError:
            return False


def worker_process(env: dict[str, str], name: str) -> ServerProcess:
    """`python -m source_worker` (ready when its log says it started)."""

    class Worker(ServerProcess):
        def command(self):
            return [sys.executable, "-m", "source_worker", "--worker-id", name,
                    "--metrics-port", str(self.metrics_port)]  # fmt: skip

        def ready(self) -> bool:
            return "started" in self.log()

    worker = Worker("source_worker", env=env)
    worker.name = name
    return worker


def threads_and_rss(pid: int) -> tuple[int, int]:
    """A process's thread count and resident memory (kB), from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0])
