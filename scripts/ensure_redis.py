"""Make sure a Redis answers on the given URL; start a local one when none does.

Used by `make test` and `make run`. A Sentinel or Cluster URL
(`redis+sentinel://`, `redis+cluster://`, with or without TLS) names nodes
run elsewhere: one of them must answer, none is started. When nothing answers
on a plain URL that points at this machine, starts `redis-server` (installing Debian's package when it is
missing and we are root) with its data under `.run/redis/`, daemonized, and
waits until it answers PING.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def ping(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def install_redis() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit("redis-server is not installed; install Redis 7 or set REDIS_URL")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env)


def named_nodes(url: str) -> tuple[str, list[tuple[str, int]]] | None:
    """(what they are, [(host, port)]) of a Sentinel or Cluster URL, which names
    several nodes; None for a plain Redis URL. Exits on a malformed one."""
    if "+" not in url.partition("://")[0]:
        return None  # (a plain URL: no need for the gateway's imports)
    sys.path.insert(0, str(ROOT))
    from gateway.redis_client import (
        is_cluster_url,
        is_sentinel_url,
        parse_cluster_url,
        parse_sentinel_url,
    )

    try:
        if is_sentinel_url(url):
            return "sentinels", parse_sentinel_url(url)["sentinels"]
        if is_cluster_url(url):
            return "cluster nodes", parse_cluster_url(url)["nodes"]
    except ValueError as exc:
        sys.exit(f"redis: {exc}")
    sys.exit(f"redis: unknown scheme in {url.partition('://')[0]}://")


def main(url: str) -> None:
    named = named_nodes(url)
    if named is not None:  # Sentinel or Cluster: never started here; one node must answer
        what, nodes = named
        if not any(ping(host, port) for host, port in nodes):
            sys.exit(f"redis: none of the {what} {nodes} answers")
        print(f"redis: {what} answering ({len(nodes)} named)")
        return
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if ping(host, port):
        print(f"redis: answering on {host}:{port}")
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"redis: nothing answers on {host}:{port} and it is not this machine")
    if shutil.which("redis-server") is None:
        install_redis()
    data = ROOT / ".run" / "redis"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            host if host != "localhost" else "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--daemonize",
            "yes",
            "--logfile",
            str(data / "redis.log"),
            "--pidfile",
            str(data / "redis.pid"),
        ],
        check=True,
    )
    for _ in range(100):
        if ping(host, port):
            print(f"redis: started on {host}:{port} (data in {data})")
            return
        time.sleep(0.1)
    sys.exit(f"redis: started but not answering on {host}:{port}; see {data / 'redis.log'}")


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
