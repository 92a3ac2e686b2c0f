"""Worker processes that each load a model once and run inference calls.

dlib's encoder holds the GIL, so one process cannot use more than one core for
it; a pool of processes can. The pool is lean on purpose: each worker is a
spawned process joined to the server by one socket pair, calls and results are
pickled frames on it, and the event loop reads the sockets directly
(`add_reader`), so a call costs two socket writes and two reads, with no
executor threads, queues or locks in between.

- `start()` returns when every worker has loaded and warmed its model: that is
  when health may say SERVING.
- A call goes to an idle worker, else waits (FIFO) for one. With `depth` > 1 a
  busy worker may hold one more call in its socket, so it never idles between
  calls at saturation.
- A worker that dies (a crash in native code, the OOM killer, a SIGKILL) is
  replaced; the calls it held are run again on another worker, once. A call
  that kills a second worker fails with WorkerCrashed.
- A worker whose memory stays above `max_rss_bytes` after a call finishes that
  call, then exits and is replaced (memory-hungry inputs don't leave it bloated).
- A call abandoned by its caller (cancelled, or its deadline passed) while a
  worker computes it is given `abandon_after_s`, and no new call is queued
  behind it meanwhile; a worker still busy with it then is killed and replaced
  (proactively: the next caller finds a warm worker, not a model load), so
  nobody waits behind work nobody wants.
- Workers exit on their own when their server goes away (their socket closes).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from percept_runtime.errors import Unavailable
from percept_runtime.heap import steady_heap
from percept_runtime.metrics import WORKER_RESTARTS, WORKERS

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<Q")
_READY_TIMEOUT_S = 600.0
_READY = 0  # call id of the worker's "loaded and warm" message
_RECV_CHUNK = 1 << 20


class WorkerCrashed(RuntimeError):
    """Two worker processes died while running this call: it is not retried again."""


# --- the worker process -----------------------------------------------------------


class _Rss:
    """This process's resident set size, read from /proc/self/statm kept open
    (a pread per call, not an open/read/close); 0 where unknown."""

    def __init__(self) -> None:
        try:
            self._fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._fd = -1
        self._page = os.sysconf("SC_PAGE_SIZE")

    def __call__(self) -> int:
        if self._fd < 0:
            return 0
        try:
            return int(os.pread(self._fd, 128, 0).split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return 0


def _exit_with_parent(parent: int) -> None:
    """A worker busy in a long call notices its server is gone and exits."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            return None
        got += k
    return bytes(buf)


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    header = _HEADER.pack(len(payload))
    sent = sock.sendmsg([header, payload])
    if sent < len(header):
        sock.sendall(header[sent:])
        sock.sendall(payload)
    elif sent < len(header) + len(payload):
        sock.sendall(memoryview(payload)[sent - len(header) :])


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
        return exc
    except Exception:  # noqa: BLE001 - anything unpicklable is described instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _worker_main(
    sock: socket.socket,
    initializer: Callable[..., None] | None,
    initargs: tuple,
    max_rss_bytes: int,
) -> None:
    # The server handles Ctrl-C and SIGTERM; a worker stops when its socket closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # One core's worth of math per process: the pool is the parallelism.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch"
    ).start()
    sock.setblocking(True)
    steady_heap()
    try:
        if initializer is not None:
            initializer(*initargs)
    except BaseException as exc:  # noqa: BLE001 - reported to the server, which refuses to start
        _send_frame(sock, pickle.dumps((_READY, False, _picklable(exc), False), protocol=5))
        return
    _send_frame(sock, pickle.dumps((_READY, True, os.getpid(), False), protocol=5))
    rss = _Rss() if max_rss_bytes else None
    while True:
        header = _recv_exact(sock, _HEADER.size)
        if header is None:
            return  # the server closed the pool (or died)
        payload = _recv_exact(sock, _HEADER.unpack(header)[0])
        if payload is None:
            return
        call_id, fn, args = pickle.loads(payload)
        try:
            reply = (call_id, True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = (call_id, False, _picklable(exc))
        recycle = rss is not None and rss() > max_rss_bytes
        try:
            out = pickle.dumps((*reply, recycle), protocol=5)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result is the call's error
            out = pickle.dumps((call_id, False, _picklable(exc), recycle), protocol=5)
        _send_frame(sock, out)
        if recycle:
            return


# --- the server side -----------------------------------------------------------------


@dataclass(eq=False)
class _Call:
    fn: Callable[..., Any]
    args: tuple
    future: asyncio.Future
    id: int = 0
    retried: bool = False


@dataclass(eq=False)
class _Worker:
    proc: Any
    sock: socket.socket
    ready: asyncio.Future
    pid: int = 0
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    pending: dict[int, _Call] = field(default_factory=dict)
    alive: bool = True
    loaded: bool = False
    retiring: bool = False
    abandoned: bool = False

    @property
    def on_abandoned_call(self) -> bool:
        return any(key < 0 for key in self.pending)


class ProcessWorkers:
    """A pool of `size` spawned processes; `run` awaits one call in one of them."""

    def __init__(
        self,
        size: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
        *,
        depth: int = 2,
        max_rss_bytes: int = 0,
        abandon_after_s: float = 2.0,
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one process")
        self.size = size
        self.depth = max(1, depth)
        self.max_rss_bytes = max_rss_bytes
        self.abandon_after_s = abandon_after_s
        self._initializer = initializer
        self._initargs = initargs
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self._queue: collections.deque[_Call] = collections.deque()
        self._ids = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closing = False
        self._replacing: set[asyncio.Task] = set()
        self.restarts = 0

    # --- life cycle ---------------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        return sorted(w.pid for w in self._workers if w.alive and w.loaded)

    @property
    def ready_count(self) -> int:
        return sum(1 for w in self._workers if w.alive and w.loaded and not w.retiring)

    async def start(self, initargs: tuple | None = None) -> None:
        """Spawn every worker and wait until each has loaded and warmed its model.

        `initargs`, when given, replaces the initializer's arguments (for
        settings only known at start, such as a prepared weights path).
        A worker whose initializer fails makes start() raise its error.
        """
        if initargs is not None:
            self._initargs = initargs
        self._loop = asyncio.get_running_loop()
        workers = [self._spawn() for _ in range(self.size)]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(w.ready for w in workers)), timeout=_READY_TIMEOUT_S
            )
        except BaseException:
            await self.close()
            raise
        self._started = True
        self._update_gauge()
        logger.info("%d worker process(es) ready: pids %s", self.size, self.pids)
        self._pump()

    async def close(self) -> None:
        """Stop every worker; calls still waiting fail with Unavailable."""
        self._closing = True
        for task in list(self._replacing):
            task.cancel()
        while self._queue:
            call = self._queue.popleft()
            if not call.future.done():
                call.future.set_exception(Unavailable("the server is shutting down"))
        workers, self._workers = self._workers, []
        for worker in workers:
            self._detach(worker)
            for call in worker.pending.values():
                if not call.future.done():
                    call.future.set_exception(Unavailable("the server is shutting down"))
        WORKERS.set(0)
        await asyncio.to_thread(self._join, workers)

    @staticmethod
    def _join(workers: list[_Worker], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.proc.join(max(0.0, deadline - time.monotonic()))
            if worker.proc.is_alive():
                worker.proc.kill()
                worker.proc.join(5)

    def _spawn(self) -> _Worker:
        parent, child = socket.socketpair()
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child, self._initializer, self._initargs, self.max_rss_bytes),
            daemon=True,
            name="percept-worker",
        )
        proc.start()
        child.close()
        parent.setblocking(False)
        worker = _Worker(proc, parent, self._loop.create_future())
        self._workers.append(worker)
        self._loop.add_reader(parent.fileno(), self._on_readable, worker)
        return worker

    def _detach(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        worker.alive = False
        with contextlib.suppress(Exception):
            self._loop.remove_reader(worker.sock.fileno())
            self._loop.remove_writer(worker.sock.fileno())
        worker.sock.close()

    def _update_gauge(self) -> None:
        WORKERS.set(self.ready_count)

    # --- calls --------------------------------------------------------------------

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) in a worker process and return its result.

        Exceptions raised by fn come back as they are (they must pickle).
        """
        if not self._started or self._closing:
            raise Unavailable("the model is still loading; retry shortly")
        self._ids += 1
        call = _Call(fn, args, self._loop.create_future(), self._ids)
        self._queue.append(call)
        self._pump()
        try:
            return await call.future
        except asyncio.CancelledError:
            self._abandon(call)
            raise

    def _abandon(self, call: _Call) -> None:
        """The caller gave up on a call: a worker still on it after the grace
        period is killed (and replaced) rather than left computing for nobody."""
        for worker in self._workers:
            if call.id in worker.pending:
                worker.pending.pop(call.id)
                worker.pending[-call.id] = call  # still running there, no one waits

                def reap(worker: _Worker = worker, key: int = -call.id) -> None:
                    if worker.alive and key in worker.pending:
                        logger.warning(
                            "worker %d is still on an abandoned call after %.1fs; replacing it",
                            worker.pid,
                            self.abandon_after_s,
                        )
                        worker.abandoned = True
                        worker.proc.kill()

                self._loop.call_later(self.abandon_after_s, reap)
                return

    def _pick(self) -> _Worker | None:
        best = None
        for worker in self._workers:
            if not worker.alive or worker.retiring or not worker.loaded:
                continue
            if worker.on_abandoned_call:  # nothing new behind work nobody wants
                continue
            load = len(worker.pending)
            if load == 0:
                return worker
            if load < self.depth and (best is None or load < len(best.pending)):
                best = worker
        return best

    def _pump(self) -> None:
        while self._queue:
            if self._queue[0].future.done():  # cancelled while waiting
                self._queue.popleft()
                continue
            worker = self._pick()
            if worker is None:
                return
            call = self._queue.popleft()
            try:
                payload = pickle.dumps((call.id, call.fn, call.args), protocol=5)
            except Exception as exc:  # noqa: BLE001 - the caller's arguments cannot travel
                call.future.set_exception(exc)
                continue
            worker.pending[call.id] = call
            self._write(worker, _HEADER.pack(len(payload)), payload)

    def _write(self, worker: _Worker, header: bytes, payload: bytes) -> None:
        if worker.outbuf:
            worker.outbuf += header
            worker.outbuf += payload
            return
        data = [header, payload]
        try:
            sent = worker.sock.sendmsg(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._lost(worker)
            return
        total = len(header) + len(payload)
        if sent < total:
            rest = (
                (header + payload)[sent:] if sent < len(header) else payload[sent - len(header) :]
            )
            worker.outbuf += rest
            self._loop.add_writer(worker.sock.fileno(), self._on_writable, worker)

    def _on_writable(self, worker: _Worker) -> None:
        try:
            sent = worker.sock.send(worker.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost(worker)
            return
        del worker.outbuf[:sent]
        if not worker.outbuf:
            self._loop.remove_writer(worker.sock.fileno())

    def _on_readable(self, worker: _Worker) -> None:
        try:
            chunk = worker.sock.recv(_RECV_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._lost(worker)
            return
        buf = worker.inbuf
        buf += chunk
        while len(buf) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buf)
            end = _HEADER.size + length
            if len(buf) < end:
                break
            message = pickle.loads(memoryview(buf)[_HEADER.size : end])
            del buf[:end]
            self._on_message(worker, *message)

    def _on_message(self, worker: _Worker, call_id: int, ok: bool, value: Any, recycle: bool):
        if call_id == _READY:
            if ok:
                worker.pid, worker.loaded = value, True
                worker.ready.set_result(value)
                self._update_gauge()
                self._pump()
            else:
                worker.ready.set_exception(value)
            return
        call = worker.pending.pop(call_id, None) or worker.pending.pop(-call_id, None)
        if call is not None and not call.future.done():
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)
        if recycle and not worker.retiring:
            worker.retiring = True
            logger.info("worker %d is above its memory limit; replacing it", worker.pid)
            self._replace()
        self._pump()

    def _lost(self, worker: _Worker) -> None:
        """A worker's socket closed: it exited (recycled) or died."""
        self._detach(worker)
        if worker in self._workers:
            self._workers.remove(worker)
        if not worker.ready.done():
            worker.ready.set_exception(
                RuntimeError("a worker process exited while loading its model")
            )
        asyncio.get_running_loop().run_in_executor(None, worker.proc.join, 5)
        if self._closing:
            return
        retry = []
        for call in worker.pending.values():
            if call.future.done():
                continue
            if worker.abandoned:  # killed for another call: these were not at fault
                retry.append(call)
            elif call.retried:
                call.future.set_exception(
                    WorkerCrashed(
                        "two worker processes died while running this call; it is not retried again"
                    )
                )
            else:
                call.retried = True
                retry.append(call)
        self._queue.extendleft(reversed(retry))
        if worker.abandoned:
            self._replace()
        elif not worker.retiring:
            logger.error(
                "worker %d died (exit code %s); %d call(s) go to another worker",
                worker.pid,
                worker.proc.exitcode,
                len(retry),
            )
            if worker.loaded:
                self._replace()
        self._update_gauge()
        self._pump()

    def _replace(self) -> None:
        """Start a worker to take a lost (or retiring) one's place."""
        if self._closing:
            return
        WORKER_RESTARTS.inc()
        self.restarts += 1
        worker = self._spawn()

        async def wait_ready() -> None:
            try:
                await asyncio.wait_for(asyncio.shield(worker.ready), _READY_TIMEOUT_S)
                logger.info("replacement worker %d ready", worker.pid)
            except Exception:  # noqa: BLE001 - try again after a pause
                logger.exception("a replacement worker failed to start; trying again")
                self._detach(worker)
                if worker in self._workers:
                    self._workers.remove(worker)
                await asyncio.sleep(2.0)
                self._replace()

        task = asyncio.ensure_future(wait_ready())
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)
