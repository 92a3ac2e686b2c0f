"""Worker processes that each load a model once and run inference calls.

dlib's encoder holds the GIL, so one process cannot use more than one core for
it; a pool of processes can. Every worker runs the service's initializer (load
and warm the model) before it takes work, and `start()` returns only when all
of them have: that is when health may say SERVING. A worker that dies (a
crash in native code) breaks the pool; it is rebuilt and the calls that were
in it fail instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from percept_runtime.errors import Unavailable
from percept_runtime.metrics import WORKERS

logger = logging.getLogger(__name__)

_READY_TIMEOUT_S = 600


_BARRIER = None  # set in each worker process by _worker_init


def _exit_with_parent(parent: int) -> None:
    """A server killed with SIGKILL cannot stop its workers: they notice and exit."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(initializer: Callable[..., None] | None, initargs: tuple, barrier) -> None:
    global _BARRIER
    _BARRIER = barrier
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch"
    ).start()
    # One core's worth of math per process: the pool is the parallelism.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if initializer is not None:
        initializer(*initargs)


def _rendezvous() -> int:
    """Blocks until every worker runs one: proves each is up and initialised."""
    _BARRIER.wait(_READY_TIMEOUT_S)
    return os.getpid()


class ProcessWorkers:
    """A pool of `size` spawned processes; `run` awaits one call in one of them."""

    def __init__(
        self,
        size: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one process")
        self.size = size
        self._initializer = initializer
        self._initargs = initargs
        self._ctx = mp.get_context("spawn")
        self._pool: ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self.pids: list[int] = []

    async def start(self, initargs: tuple | None = None) -> None:
        """Spawn every worker and wait until each has loaded and warmed its model.

        `initargs`, when given, replaces the initializer's arguments (for
        settings only known at start, such as a prepared weights path).
        """
        if initargs is not None:
            self._initargs = initargs
        async with self._lock:
            await self._start_locked()

    async def _start_locked(self) -> None:
        pool = ProcessPoolExecutor(
            max_workers=self.size,
            mp_context=self._ctx,
            initializer=_worker_init,
            initargs=(self._initializer, self._initargs, self._ctx.Barrier(self.size)),
        )
        loop = asyncio.get_running_loop()
        pids = await asyncio.gather(
            *(loop.run_in_executor(pool, _rendezvous) for _ in range(self.size))
        )
        self._pool, self.pids = pool, sorted(pids)
        WORKERS.set(self.size)
        logger.info("%d worker process(es) ready: pids %s", self.size, self.pids)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) in a worker process and return its result.

        Exceptions raised by fn come back as they are (they must pickle).
        """
        pool = self._pool
        if pool is None:
            raise Unavailable("the model is still loading; retry shortly")
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            logger.error("a worker process died; rebuilding the pool")
            await self._rebuild(pool)
            raise RuntimeError("a worker process died while serving this call") from None

    async def _rebuild(self, broken: ProcessPoolExecutor) -> None:
        async with self._lock:
            if self._pool is not broken:
                return  # someone else rebuilt it already
            self._pool = None
            WORKERS.set(0)
            broken.shutdown(wait=False, cancel_futures=True)
            await self._start_locked()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        WORKERS.set(0)
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
