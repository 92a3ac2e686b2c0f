"""python -m gateway.worker: dispatchers only (scale them apart from the API)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

from prometheus_client import start_http_server

from gateway import declare
from gateway.backends import Backends
from gateway.dispatcher import Dispatcher
from gateway.jobs import JobStore
from gateway.runner import TaskRunner
from gateway.settings import GatewaySettings
from percept_runtime.heap import release_heap_every
from percept_runtime.logs import configure_logging

logger = logging.getLogger(__name__)


async def run(settings: GatewaySettings) -> None:
    declare.load(settings.declarations)
    kinds = declare.kinds()
    store = JobStore.from_settings(settings, (k.id for k in kinds))
    backends = Backends(settings)
    runner = TaskRunner(store, backends)
    dispatcher = Dispatcher(store, backends, settings, kinds, runner)
    listener = asyncio.create_task(runner.listen_for_cancels())
    heap = asyncio.create_task(release_heap_every(), name="heap-release")  # big requests pass
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await dispatcher.start()
    deliverer = None
    if settings.webhook_delivery:  # webhooks go out from the dispatcher processes too
        from gateway.webhooks_delivery import Deliverer

        deliverer = Deliverer(store.redis, settings)
        await deliverer.start()
    if settings.metrics_port:  # the tasks it ends are counted here, not by the API
        start_http_server(settings.metrics_port)
    try:
        await stop.wait()
    finally:
        logger.info("stopping: running tasks go back to the queue")
        await dispatcher.stop()
        if deliverer is not None:
            await deliverer.stop()
        listener.cancel()
        heap.cancel()
        await backends.close()
        await store.close()


def check(settings: GatewaySettings, max_age_s: float) -> int:
    """Exit status for a liveness probe: 0 when the heartbeat file is fresh."""
    try:
        age = time.time() - os.stat(settings.heartbeat_file).st_mtime
    except FileNotFoundError:
        print(f"no heartbeat at {settings.heartbeat_file}")
        return 1
    print(f"heartbeat {age:.1f}s old")
    return 0 if age <= max_age_s else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.worker", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 0 if this container's dispatchers are alive"
    )
    parser.add_argument(
        "--max-age", type=float, default=30.0, help="with --check: oldest acceptable heartbeat, s"
    )
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    if args.check:
        sys.exit(check(settings, args.max_age))
    configure_logging(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
