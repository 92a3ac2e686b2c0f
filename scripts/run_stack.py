"""Start the whole Percept system on this machine, no Docker: N face replicas,
M object replicas, and the gateway with its dispatchers. `make run` runs this
(after making sure REDIS_URL answers, when one is given).

- No static core partitioning: every replica starts one worker process per
  core (one inference thread each), so a burst of face work uses every core
  while object idles, and the other way round; when both are busy the OS
  shares the cores. (Idle workers cost memory, not CPU: see the README.)
- The gateway runs GATEWAY_WORKERS API processes (default: one per 4 cores,
  at least one), each with its own dispatchers.
- Redis: REDIS_URL when set; otherwise a Redis of its own, supervised like the
  rest, persisting to an append-only file under the run directory (fsync every
  second, no eviction), so queued tasks survive a restart of the stack.
- Auth is on: an admin API key is created on first start, printed once and
  kept in the run directory (mode 0600); the replicas listen on 127.0.0.1 and
  take calls only with a token made at each start (in the run directory too).
- Replicas take free ports; their addresses reach the gateway through
  GATEWAY_FACE_TARGETS / GATEWAY_OBJECT_TARGETS.
- Face collections live in face-gallery.sqlite3 in the run directory
  (FACE_GALLERY_URL, when set, wins), shared by every face replica and kept
  across restarts.
- "ready" is printed once every replica is SERVING and /readyz says so, after
  what a person needs: the console's URL, the admin key's file, the samples.
- Once ready, stack.json in the run directory (mode 0600) names the stack:
  its URLs, Redis, replica targets, the key and token files, the samples and
  the launcher's pid. The SDK, the `percept` command and `python -m gateway
  keys` find it there (PERCEPT_RUN_DIR, else .run/ in the current directory
  or a parent) when nothing else names a server; a clean stop removes it.
- A child that exits on its own is reported and restarted on the same port.
- Ctrl-C / SIGTERM stops the gateway, then the replicas, gracefully; nothing is
  left behind.

python scripts/run_stack.py [--face-replicas N] [--object-replicas M]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
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
DEMO_MODEL = ROOT / "object_service" / "models" / "shapes-yolo.pt"
RUN = Path(os.environ.get("PERCEPT_RUN_DIR") or ROOT / ".run").absolute()
LOGS = RUN / "logs"
GALLERY = RUN / "face-gallery.sqlite3"
STACK_FILE = RUN / "stack.json"
SAMPLES = ROOT / "samples"
REDIS_PORT = 6380


def say(message: str) -> None:
    print(f"[percept] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    http_ready: str | None = None  # URL answering 200 when ready; else gRPC health
    redis_ping: bool = False  # ready when it answers PING
    proc: subprocess.Popen | None = None
    restarts: int = 0
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = LOGS / f"{self.name}.log"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}", **self.env}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def ready(self) -> bool:
        if self.redis_ping:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False
        if self.http_ready:
            try:
                return urllib.request.urlopen(self.http_ready, timeout=2).status == 200
            except OSError:
                return False
        try:
            with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:  # health: no token
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False


def choose_model() -> str:
    """OBJECT_MODEL if set; else yolo11n.pt when present or fetchable; else the demo model."""
    if os.environ.get("OBJECT_MODEL"):
        return os.environ["OBJECT_MODEL"]
    local = ROOT / "yolo11n.pt"
    if local.is_file():
        return str(local)
    if os.environ.get("YOLO_OFFLINE", "").lower() not in ("1", "true", "yes"):
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "from object_service.inference import locate_weights; print(locate_weights('yolo11n.pt'))",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if probe.returncode == 0 and probe.stdout.strip():
            return probe.stdout.strip().splitlines()[-1]
    say(
        f"object weights: yolo11n.pt is not here and cannot be fetched, so the DEMO model "
        f"{DEMO_MODEL.relative_to(ROOT)} is used: it knows only circles, squares, triangles and stars. "
        "For real objects: OBJECT_MODEL=/path/to/weights.pt make run (any ultralytics .pt or .onnx)."
    )
    return str(DEMO_MODEL)


def redis_child(python: str) -> tuple[Child, str]:
    """A Redis of the stack's own: AOF under the run directory, no eviction, and
    a maxmemory that fits the gateway's caps (GATEWAY_MAX_QUEUED_BYTES and the
    preview budget, plus headroom: gateway.settings.redis_maxmemory). Past it a
    write is refused (503 store_full), never an accepted task evicted."""
    caps = "from gateway.settings import GatewaySettings as S, redis_maxmemory as m; print(m(S()))"
    maxmemory = subprocess.run(
        [python, "-c", caps], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"},
    ).stdout.strip()  # fmt: skip
    data = RUN / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = REDIS_PORT
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            port = free_port()  # 6380 is taken (another stack?): any free port
    server = shutil.which("redis-server")
    if server is None:
        subprocess.run(
            [python, "-c", "import sys; sys.path.insert(0, 'scripts'); import ensure_redis; ensure_redis.install_redis()"],
            cwd=ROOT, check=True,
        )  # fmt: skip
        server = shutil.which("redis-server") or "redis-server"
    argv = [
        server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        "--maxmemory", maxmemory, "--maxmemory-policy", "noeviction", "--protected-mode", "yes",
    ]  # fmt: skip
    return Child("redis", argv, {}, port, redis_ping=True), f"redis://127.0.0.1:{port}/0"


def ensure_admin_key(python: str, redis_url: str) -> tuple[str, bool]:
    """The stack's admin key: the one in the run directory while Redis still
    knows it, else a new one written there (mode 0600). Returns (key, new)."""
    path = RUN / "admin.key"
    code = (
        "import asyncio, sys\n"
        "from gateway.keys import KeyStore\n"
        "from gateway.redis_client import redis_client\n"
        "async def main():\n"
        "    client = redis_client(sys.argv[1])\n"
        "    store = KeyStore(client)\n"
        "    old = sys.argv[2]\n"
        "    if old and await store.lookup(old): print(old); return\n"
        "    key, _ = await store.create('make run admin', 'default', 'admin')\n"
        "    print(key)\n"
        "asyncio.run(main())\n"
    )
    old = path.read_text().strip() if path.is_file() else ""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"}
    key = subprocess.run(
        [python, "-c", code, redis_url, old], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    if key != old:
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(key + "\n")
    return key, key != old


def write_stack_file(info: dict[str, object]) -> None:
    """stack.json: how clients on this machine find the stack (mode 0600: it names
    the secrets' files, and REDIS_URL may hold a password)."""
    tmp = STACK_FILE.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(info, out, indent=2)
        out.write("\n")
    tmp.replace(STACK_FILE)


def remove_stack_file() -> None:
    """Remove stack.json if it is this launcher's (another may have replaced it)."""
    try:
        if json.loads(STACK_FILE.read_text()).get("pid") == os.getpid():
            STACK_FILE.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def how_clients_find_it() -> list[str]:
    where = (
        [f"from {RUN.parent} or below; elsewhere: export PERCEPT_RUN_DIR={RUN}"]
        if RUN.name == ".run"
        else [f"with PERCEPT_RUN_DIR={RUN} exported"]
    )
    return [
        "the percept command, percept.Client(), percept.GrpcClient() and python -m gateway keys",
        f"find this stack through {STACK_FILE}",
        *where,
    ]


def wait_ready(children: list[Child], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pending = list(children)
    while pending and time.monotonic() < deadline:
        for child in list(pending):
            if child.proc.poll() is not None:
                say(
                    f"{child.name} exited with code {child.proc.returncode} while starting; see {child.log}"
                )
                return False
            if child.ready():
                pending.remove(child)
        time.sleep(0.3)
    for child in pending:
        say(f"{child.name} was not ready after {timeout:.0f}s; see {child.log}")
    return not pending


def stop(children: list[Child], grace: float = 40.0) -> None:
    for child in children:
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{child.name} did not stop in {grace:.0f}s; killing it")
            child.proc.kill()
            child.proc.wait()


def replica(python: str, service: str, i: int, token: str, workers: str, **env: str) -> Child:
    """Replica i of the face or object service on a free loopback port, taking
    calls only with the stack's token; `env` adds the service's own settings."""
    port = free_port()
    prefix = service.upper()
    return Child(
        f"{service}-{i + 1}",
        [python, "-m", f"{service}_service"],
        {
            f"{prefix}_HOST": "127.0.0.1",
            f"{prefix}_AUTH_TOKEN": token,
            f"{prefix}_PORT": str(port),
            f"{prefix}_WORKERS": os.environ.get(f"{prefix}_WORKERS") or workers,
            f"{prefix}_METRICS_PORT": str(free_port()),
            **env,
        },
        port,
    )


def main() -> int:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--face-replicas", type=int, default=int(os.environ.get("FACE_REPLICAS") or 1)
    )
    parser.add_argument(
        "--object-replicas", type=int, default=int(os.environ.get("OBJECT_REPLICAS") or 1)
    )
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    args = parser.parse_args()
    if args.face_replicas < 1 or args.object_replicas < 1:
        parser.error("each backend needs at least one replica")
    LOGS.mkdir(parents=True, exist_ok=True)
    from make_samples import ensure_samples  # the README's examples use them

    ensure_samples(SAMPLES)
    python = sys.executable
    redis_url = os.environ.get("REDIS_URL")
    services: list[Child] = []
    if not redis_url:
        redis, redis_url = redis_child(python)
        services.append(redis)
        say(f"redis: the stack's own on {redis_url} (append-only file in {RUN / 'redis'})")
        redis.start()
        if not wait_ready([redis], 30):
            stop([redis])
            return 1
    auth = os.environ.get("GATEWAY_AUTH", "enabled") != "disabled"
    if auth:
        key, new = ensure_admin_key(python, redis_url)
        if new:
            say(f"admin API key (shown once; kept in {RUN / 'admin.key'}, mode 0600):")
            say(f"  {key}")
        else:
            say(f"admin API key: in {RUN / 'admin.key'}")
    token = secrets.token_urlsafe(24)
    token_file = RUN / "grpc.token"
    token_file.touch(mode=0o600)
    token_file.chmod(0o600)
    token_file.write_text(token + "\n")
    workers = os.environ.get("PERCEPT_WORKERS") or str(cores)
    gateway_workers = os.environ.get("GATEWAY_WORKERS") or str(max(1, cores // 4))
    model = choose_model()
    gallery_url = os.environ.get("FACE_GALLERY_URL") or f"sqlite:///{GALLERY}"

    replicas = [
        *(replica(python, "face", i, token, workers, FACE_GALLERY_URL=gallery_url)
          for i in range(args.face_replicas)),
        *(replica(python, "object", i, token, workers, OBJECT_MODEL=model,
                  OBJECT_THREADS=os.environ.get("OBJECT_THREADS") or "1")
          for i in range(args.object_replicas)),
    ]  # fmt: skip
    face_targets, object_targets = (
        ",".join(f"127.0.0.1:{c.port}" for c in replicas if c.name.startswith(f"{service}-"))
        for service in ("face", "object")
    )
    gateway_port = int(os.environ.get("GATEWAY_PORT") or 8000)
    gateway = Child(
        "gateway",
        [python, "-m", "gateway"],
        {
            "GATEWAY_PORT": str(gateway_port),
            "GATEWAY_FACE_TARGETS": face_targets,
            "GATEWAY_OBJECT_TARGETS": object_targets,
            "GATEWAY_WORKERS": gateway_workers,
            "GATEWAY_HOST": os.environ.get("GATEWAY_HOST") or "127.0.0.1",
            "GATEWAY_GRPC_TOKEN": token,
            "REDIS_URL": redis_url,
        },
        gateway_port,
        http_ready=f"http://127.0.0.1:{gateway_port}/readyz",
    )
    sources_metrics = free_port()
    sources = Child(  # live sources (/api/sources): python -m source_worker
        "sources",
        [python, "-m", "source_worker", "--metrics-port", str(sources_metrics)],
        {
            "GATEWAY_FACE_TARGETS": face_targets,
            "GATEWAY_OBJECT_TARGETS": object_targets,
            "GATEWAY_GRPC_TOKEN": token,
            "REDIS_URL": redis_url,
            "SOURCES_FILE_DIRS": os.environ.get("SOURCES_FILE_DIRS") or str(SAMPLES),
            "SOURCES_HEARTBEAT_FILE": str(RUN / "sources.alive"),
            # A local stack watches cameras on the LAN (and this machine's streams).
            "SOURCES_ALLOW_NETWORKS": os.environ.get("SOURCES_ALLOW_NETWORKS")
            or "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
        },
        sources_metrics,
        http_ready=f"http://127.0.0.1:{sources_metrics}/metrics",
    )
    for name in ("SOURCES_FILE_DIRS", "SOURCES_ALLOW_NETWORKS"):  # the API checks URLs the same way
        gateway.env[name] = sources.env[name]
    children = [*services, *replicas, gateway, sources]

    stopping = False

    def on_signal(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    say(
        f"starting {args.face_replicas} face and {args.object_replicas} object replica(s), "
        f"{workers} worker process(es) each (cores: {cores}); gateway: {gateway_workers} "
        f"process(es); logs in {LOGS}"
    )
    for child in replicas:
        child.start()
    if not wait_ready(replicas, args.ready_timeout) or stopping:
        stop(replicas)
        stop(services)
        return 1
    gateway.start()
    sources.start()
    if not wait_ready([gateway, sources], 120) or stopping:
        stop([sources, gateway, *replicas])
        stop(services)
        return 1
    base = f"http://127.0.0.1:{gateway_port}"
    key_file = RUN / "admin.key"
    say(
        f"console    {base}/console/" + (f"   (sign in with the key in {key_file})" if auth else "")
    )
    say(f"REST API   {base}   (docs {base}/docs, metrics {base}/metrics)")
    if auth:
        say(f"admin key  {key_file}   (send it: Authorization: Bearer $(cat {key_file}))")
    say(f"gRPC token {token_file}   (the replicas take calls only with it)")
    for child in replicas:
        say(
            f"{child.name:<10} grpc 127.0.0.1:{child.port}   metrics http://127.0.0.1:{child.env.get('FACE_METRICS_PORT') or child.env.get('OBJECT_METRICS_PORT')}/metrics"
        )
    say(f"sources    live-source worker, metrics http://127.0.0.1:{sources_metrics}/metrics")
    store = gallery_url if gallery_url.startswith("sqlite") else "PostgreSQL (FACE_GALLERY_URL)"
    say(f"face collections in {store}")
    if SAMPLES.is_dir():
        say(f"samples    {SAMPLES}   (images and videos to try)")
    write_stack_file(
        {
            "url": base,
            "console": f"{base}/console/",
            "docs": f"{base}/docs",
            "redis_url": redis_url,
            "face_targets": face_targets,
            "object_targets": object_targets,
            "admin_key_file": str(key_file) if auth else None,
            "grpc_token_file": str(token_file),
            "samples_dir": str(SAMPLES),
            "pid": os.getpid(),
        }
    )
    for i, line in enumerate(how_clients_find_it()):
        say(f"{'clients' if i == 0 else '':<11}{line}")
    say("ready")

    while not stopping:
        time.sleep(0.5)
        for child in children:
            code = child.proc.poll()
            if code is None or stopping:
                continue
            child.restarts += 1
            say(
                f"{child.name} exited with code {code}; restarting it (restart {child.restarts}); see {child.log}"
            )
            time.sleep(min(10, 2 ** min(child.restarts, 3)) / 4)
            child.start()
            if wait_ready([child], args.ready_timeout):
                say(f"{child.name} restarted on port {child.port}")

    say("stopping: gateway first, then the replicas" + (", then Redis" if services else ""))
    stop([sources, gateway])
    stop(replicas)
    stop(services)
    remove_stack_file()
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
