"""python -m gateway.worker: dispatchers only (scale them apart from the API)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from prometheus_client import start_http_server

from gateway import declare
from gateway.backends import Backends
from gateway.dispatcher import Dispatcher
from gateway.jobs import JobStore
from gateway.runner import TaskRunner
from gateway.settings import GatewaySettings
from percept_runtime.heap import release_heap_every
from percept_runtime.logs import configure_logging
from percept_runtime.process import add_check_flags, check_heartbeat, stop_on_signals

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
    stop = stop_on_signals()
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.worker", description=__doc__)
    add_check_flags(parser, "dispatchers are")
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    if args.check:
        sys.exit(check_heartbeat(settings.heartbeat_file, args.max_age))
    configure_logging(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
