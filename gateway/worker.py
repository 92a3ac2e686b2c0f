"""python -m gateway.worker: dispatchers only (scale them apart from the API)."""

from __future__ import annotations

import asyncio
import logging
import signal

from gateway.backends import Backends
from gateway.dispatcher import Dispatcher
from gateway.jobs import JobStore
from gateway.settings import GatewaySettings
from percept_runtime.logs import configure_logging

logger = logging.getLogger(__name__)


async def run(settings: GatewaySettings) -> None:
    store = JobStore.from_url(settings.redis_url, settings.task_ttl_s, settings.tombstone_ttl_s)
    backends = Backends(settings)
    dispatcher = Dispatcher(store, backends, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await dispatcher.start()
    try:
        await stop.wait()
    finally:
        logger.info("stopping: running tasks go back to the queue")
        await dispatcher.stop()
        await backends.close()
        await store.close()


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
