"""python -m source_worker: watch the registered live sources (a share of
them, leased in Redis with the other workers); scale it out with more
processes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys

from gateway.backends import Backends
from gateway.redis_client import redis_client
from gateway.settings import GatewaySettings
from percept_runtime.logs import configure_logging
from percept_runtime.process import add_check_flags, check_heartbeat, stop_on_signals
from source_worker.settings import WorkerSettings
from source_worker.worker import SourceWorker

logger = logging.getLogger(__name__)


async def run(settings: WorkerSettings) -> None:
    redis = redis_client(settings.redis_url)  # any REDIS_URL form: Sentinel, Cluster...
    raw = redis_client(settings.redis_url, decode_responses=False)
    backends = Backends(GatewaySettings())
    worker = SourceWorker(settings, redis, raw, backends)
    stop = stop_on_signals()
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port)
    try:
        await worker.run(stop)
    finally:
        await backends.close()
        await redis.aclose()
        await raw.aclose()
        logger.info("source worker %s stopped", worker.id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m source_worker", description=__doc__)
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics here")
    parser.add_argument("--worker-id", help="this worker's name (default: host-pid)")
    add_check_flags(parser, "worker is")
    args = parser.parse_args(argv)
    settings = WorkerSettings()
    if args.check:
        sys.exit(check_heartbeat(settings.heartbeat_file, args.max_age))
    if args.metrics_port is not None:
        settings.metrics_port = args.metrics_port
    settings.worker_id = (
        args.worker_id or settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    )
    configure_logging(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
