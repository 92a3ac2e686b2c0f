"""The worker-process pool: real spawned processes, no model."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from percept_runtime.errors import InvalidInput
from percept_runtime.workers import ProcessWorkers, WorkerCrashed

_HOARD: list[bytes] = []


def pid_after(seconds: float, started: str | None = None) -> int:
    """This worker's pid after `seconds`; it marks the start of its call with a
    file named after its pid in the folder `started` (when given)."""
    if started:
        Path(started, str(os.getpid())).touch()
    time.sleep(seconds)
    return os.getpid()


def refuse(what: str) -> None:
    raise InvalidInput(f"cannot use {what}")


def die() -> None:
    os._exit(3)


def hoard(mib: int) -> int:
    _HOARD.append(b"x" * (mib << 20))
    return os.getpid()


def page_faults_per_call(calls: int) -> float:
    """A model call's allocation pattern: a few image-sized buffers alive at
    once, all freed at the end; the page faults each such call costs."""

    def one_call() -> int:
        buffers = [b"x" * (4 << 20) for _ in range(4)]
        return len(buffers)

    for _ in range(3):
        one_call()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        one_call()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def slow_init(marker: str) -> None:
    time.sleep(0.2)
    os.environ["PERCEPT_TEST_MARKER"] = marker


def marker() -> str:
    return os.environ.get("PERCEPT_TEST_MARKER", "")


def fail_init() -> None:
    raise RuntimeError("weights not found")


def run(coro):
    return asyncio.run(coro)


def test_calls_run_in_every_worker_and_errors_come_back_as_they_are():
    async def main():
        pool = ProcessWorkers(2, slow_init, ("warm",))
        await pool.start()
        try:
            assert len(pool.pids) == 2 and pool.ready_count == 2
            pids = await asyncio.gather(*(pool.run(pid_after, 0.2) for _ in range(4)))
            assert set(pids) == set(pool.pids)  # both processes took work
            assert await pool.run(marker) == "warm"  # the initializer ran in the worker
            with pytest.raises(InvalidInput, match="cannot use this"):
                await pool.run(refuse, "this")
        finally:
            await pool.close()

    run(main())


def test_a_killed_worker_is_replaced_and_its_call_runs_elsewhere(tmp_path):
    async def main():
        pool = ProcessWorkers(2, slow_init, ("w",))
        await pool.start()
        try:
            before = pool.pids
            calls = [
                asyncio.ensure_future(pool.run(pid_after, 1.0, str(tmp_path))) for _ in range(2)
            ]
            started = tmp_path / str(before[0])
            for _ in range(500):  # until the victim is in the middle of its call
                if started.exists():
                    break
                await asyncio.sleep(0.01)
            assert started.exists(), "the worker never started its call"
            os.kill(before[0], signal.SIGKILL)
            results = await asyncio.gather(*calls)
            assert before[0] not in results  # the killed worker's call ran again elsewhere
            for _ in range(100):
                if pool.ready_count == 2:
                    break
                await asyncio.sleep(0.1)
            assert pool.ready_count == 2 and before[0] not in pool.pids
        finally:
            await pool.close()

    run(main())


def test_a_call_that_kills_two_workers_fails_and_the_pool_recovers():
    async def main():
        pool = ProcessWorkers(2, slow_init, ("w",))
        await pool.start()
        try:
            with pytest.raises(WorkerCrashed):
                await pool.run(die)
            for _ in range(100):
                if pool.ready_count == 2:
                    break
                await asyncio.sleep(0.1)
            assert await pool.run(marker) == "w"
        finally:
            await pool.close()

    run(main())


def test_a_worker_above_its_memory_limit_is_recycled_after_its_call():
    async def main():
        pool = ProcessWorkers(1, max_rss_bytes=200 << 20)
        await pool.start()
        try:
            first = pool.pids[0]
            assert await pool.run(hoard, 10) == first  # under the limit: kept
            assert await pool.run(hoard, 300) == first  # the call still answers
            for _ in range(100):
                if pool.ready_count == 1 and pool.pids != [first]:
                    break
                await asyncio.sleep(0.1)
            assert pool.pids != [first]
            assert await pool.run(hoard, 1) != first
        finally:
            await pool.close()

    run(main())


def test_workers_keep_their_heap_between_calls():
    # glibc's defaults hand 16 MiB back to the kernel after each such call and
    # fault it in again (4,000 faults, milliseconds of CPU per call).
    async def main():
        pool = ProcessWorkers(1)
        await pool.start()
        try:
            assert await pool.run(page_faults_per_call, 20) < 50
        finally:
            await pool.close()

    run(main())


def test_a_trimmed_heap_gives_a_burst_of_big_buffers_back():
    """What the gateway does after a burst of big uploads: glibc keeps the freed
    buffers (counted in the RSS) until trim_heap hands them back."""
    code = (
        "import psutil\n"
        "from percept_runtime.heap import free_heap_bytes, trim_heap\n"
        "rss = lambda: psutil.Process().memory_info().rss\n"
        "bytes(16 << 20)  # freed: glibc now keeps buffers of this size in its heap\n"
        "buffers = [bytearray(b'x' * (16 << 20)) for _ in range(20)]\n"
        "del buffers[::2]  # freed between live ones: the heap cannot shrink from its top\n"
        "held, free = rss(), free_heap_bytes()\n"
        "print(held, free, trim_heap(), rss())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    held, free, trimmed, after = out.stdout.split()
    MiB = 1 << 20
    assert int(free) >= 150 * MiB and int(held) > int(after) + 150 * MiB, out.stdout
    assert trimmed == "True"


def test_a_failing_initializer_fails_start():
    async def main():
        pool = ProcessWorkers(1, fail_init)
        with pytest.raises(RuntimeError, match="weights not found"):
            await pool.start()

    run(main())


def test_close_stops_every_worker():
    import psutil

    async def main():
        pool = ProcessWorkers(2)
        await pool.start()
        pids = pool.pids
        await pool.close()
        return pids

    pids = run(main())
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


def test_no_call_is_queued_behind_an_abandoned_one():
    """The other worker takes new calls; the one computing for nobody gets none."""

    async def main():
        pool = ProcessWorkers(2, slow_init, ("w",), abandon_after_s=10)
        await pool.start()
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.run(pid_after, 1.5), timeout=0.2)  # caller gives up
            stuck = next(w for w in pool._workers if w.on_abandoned_call)
            calls = [asyncio.ensure_future(pool.run(pid_after, 0.1)) for _ in range(3)]
            await asyncio.sleep(0.05)
            assert all(key < 0 for key in stuck.pending)  # nothing behind the abandoned call
            return stuck.pid, await asyncio.gather(*calls)
        finally:
            await pool.close()

    stuck, pids = run(main())
    assert stuck not in pids and len(set(pids)) == 1


def test_a_worker_stuck_on_an_abandoned_call_is_replaced():
    async def main():
        pool = ProcessWorkers(1, slow_init, ("w",), abandon_after_s=0.5)
        await pool.start()
        try:
            first = pool.pids[0]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.run(pid_after, 60), timeout=0.3)  # caller gives up
            assert await pool.run(marker) == "w"  # served: not stuck behind the 60 s call
            assert pool.pids != [first]  # by a new worker
        finally:
            await pool.close()

    run(main())
