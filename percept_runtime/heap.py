"""The C heap (glibc's malloc) of a process: keep big buffers, or give them back.

Python hands every buffer over 512 bytes (an upload, a decoded image) to malloc.
A model worker keeps them (`steady_heap`: the same sizes come back every call);
a process that sees bursts of big uploads (the gateway) gives them back once the
burst has passed (`free_heap_bytes` says how much the heap holds unused,
`trim_heap` returns it to the kernel). Elsewhere than glibc (musl, macOS) these
do nothing and say so.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools

# glibc's mallopt parameters, and the values a worker runs with.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
HEAP_MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for this setting on 64-bit
HEAP_TRIM_THRESHOLD = 128 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018 - glibc's, or not glibc
    except (OSError, AttributeError):
        return None
    return libc


def steady_heap() -> bool:
    """Keep freed image-sized buffers in this process's heap (glibc only).

    A call allocates the same few megabyte-sized arrays every time (decoded
    pixels, the model's input); glibc by default may hand them back to the
    kernel and fault them in again page by page on the next call, which
    measured 2,400 page faults and +4 ms on a 10 ms object call. Buffers up to
    32 MiB now come from the heap, and up to 128 MiB of free heap stays mapped
    (counted in the worker's RSS, which `max_rss_bytes` still bounds).
    """
    libc = _libc()
    if libc is None:
        return False  # not glibc (musl, macOS): their defaults stand
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)
        and libc.mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD)
    )


def free_heap_bytes() -> int:
    """Bytes malloc holds free in its arenas (mapped, counted in the RSS once
    touched, and not in use); 0 where that cannot be told (not glibc >= 2.33)."""
    libc = _libc()
    mallinfo2 = getattr(libc, "mallinfo2", None)
    if mallinfo2 is None:
        return 0
    mallinfo2.restype = _MallInfo2
    return int(mallinfo2().fordblks)


def trim_heap() -> bool:
    """Give the heap's free pages back to the kernel, in every arena (glibc's
    malloc_trim). Returns whether any memory was released."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    return bool(trim(ctypes.c_size_t(0)))


async def release_heap_every(seconds: float = 5.0, least: int = 16 << 20) -> None:
    """Forever: every `seconds`, once malloc holds `least` bytes free and that
    stayed put since the last look (the burst is over: trimming while buffers
    churn would take the heap's lock from them for nothing), give them back
    (`trim_heap`, in a thread: the first trim after a burst takes tens of ms,
    the next ones nothing). A burst of big uploads leaves the heap holding what
    it needed at its peak; glibc returns only the top of it by itself."""
    last = -least
    while True:
        await asyncio.sleep(seconds)
        free = free_heap_bytes()
        if free >= least and abs(free - last) <= least // 8:
            await asyncio.to_thread(trim_heap)
        last = free
