"""What every service's engine is: a model loaded in a pool of worker
processes (workers.py), awaited from the event loop, that describes itself
to the ReplicaService (replica.py). Plain Python: no grpc here, so an engine
imports no transport."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from percept_runtime.workers import ProcessWorkers


@dataclass(frozen=True)
class Description:
    """What an engine says about itself."""

    model: str
    backend: str
    device: str
    workers: int
    workers_ready: int
    worker_restarts: int


class PooledEngine:
    """An engine whose calls each run in one of `workers` processes, every one
    of which loads the model through `initializer`."""

    def __init__(
        self, workers: int, initializer: Callable[..., None], max_worker_rss_bytes: int = 0
    ) -> None:
        self._pool = ProcessWorkers(
            workers, initializer=initializer, max_rss_bytes=max_worker_rss_bytes
        )

    async def start(self) -> None:
        await self._pool.start()

    async def close(self) -> None:
        await self._pool.close()

    def _describe(self, model: str, backend: str, device: str) -> Description:
        """The engine's description: its model, and how its worker pool stands now."""
        return Description(
            model=model,
            backend=backend,
            device=device,
            workers=self._pool.size,
            workers_ready=self._pool.ready_count,
            worker_restarts=self._pool.restarts,
        )
