"""A cheap HTTP load generator for the REST benchmarks.

The servers it measures share the machine's cores with it, so it must cost far
less CPU than they do: requests are raw HTTP/1.1 bytes built once (multipart
upload included) and written over keep-alive asyncio streams; responses are
read by Content-Length (or chunks) and checked with a byte search, JSON being
parsed only where the task id or status is needed (async mode).

- `closed_loop`: N connections, each sending its next request as soon as the
  previous one answered; completions are counted in a timed window after a
  warm-up, and callbacks mark the window's edges (CPU snapshots);
- `round_trips`: one connection, one request at a time: latencies;
- `submit_and_poll`: async mode, 202 then GET /api/task/<id> every poll
  interval until the task has ended.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

BOUNDARY = "bench-boundary-7d1f0c"
TERMINAL = (b'"succeeded"', b'"failed"', b'"cancelled"')


def _header_lines(headers: dict[str, str] | None) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())


def upload_request(
    host: str,
    port: int,
    path: str,
    content: bytes,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> bytes:
    """One raw multipart POST with the image in the field `file`."""
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="image.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    target = f"{path}?{query}" if query else path
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{_header_lines(headers)}"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def get_request(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{_header_lines(headers)}\r\n".encode()


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request, return (status, body)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:  # the server closed an idle keep-alive connection: once more
            self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(request)
            status_line = await self.reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            await self.reader.readline()
            body = b"".join(parts)
        else:
            body = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def finished(status: int, body: bytes) -> bool:
    """A simple-mode answer that carries the finished task's result."""
    return status == 200 and b'"result"' in body and b'"result":null' not in body.replace(b" ", b"")


@dataclass
class Window:
    """What a timed window counted."""

    seconds: float
    completed: int = 0
    failures: list[str] = field(default_factory=list)
    requests: int = 0  # HTTP requests sent in the window (async mode polls included)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds


async def closed_loop(
    host: str,
    port: int,
    one: Callable[[Connection], Awaitable[tuple[bool, int, str]]],
    concurrency: int,
    warmup_s: float,
    seconds: float,
    on_start: Callable[[], None] = lambda: None,
    on_end: Callable[[], None] = lambda: None,
) -> Window:
    """`concurrency` connections each running `one` back to back. `one`
    returns (succeeded, HTTP requests it made, why it failed)."""
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup_s
    end = start + seconds
    window = Window(seconds)
    ended = asyncio.Event()

    def mark_end() -> None:
        on_end()
        ended.set()

    loop.call_at(start, on_start)
    loop.call_at(end, mark_end)

    async def client() -> None:
        conn = Connection(host, port)
        try:
            while loop.time() < end:
                ok, requests, why = await one(conn)
                now = loop.time()
                if start <= now < end:
                    window.requests += requests
                    if ok:
                        window.completed += 1
                if not ok:
                    window.failures.append(why)
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    await ended.wait()
    return window


def simple_mode(request: bytes) -> Callable[[Connection], Awaitable[tuple[bool, int, str]]]:
    """One upload with ?wait=true: done when the answer carries the result."""

    async def one(conn: Connection) -> tuple[bool, int, str]:
        status, body = await conn.exchange(request)
        if finished(status, body):
            return True, 1, ""
        return False, 1, f"HTTP {status}: {body[:200]!r}"

    return one


def async_mode(
    host: str, port: int, request: bytes, poll_s: float, headers: dict[str, str] | None = None
) -> Callable[[Connection], Awaitable[tuple[bool, int, str]]]:
    """One upload answered 202, then GET /api/task/<id> every `poll_s` until it ends."""

    async def one(conn: Connection) -> tuple[bool, int, str]:
        status, body = await conn.exchange(request)
        if status != 202:
            return False, 1, f"submit answered HTTP {status}: {body[:200]!r}"
        task_id = json.loads(body)["task_id"]
        poll = get_request(host, port, f"/api/task/{task_id}", headers)
        requests = 1
        while True:
            await asyncio.sleep(poll_s)
            status, body = await conn.exchange(poll)
            requests += 1
            if status != 200:
                return False, requests, f"poll answered HTTP {status}: {body[:200]!r}"
            if any(t in body for t in TERMINAL):
                task = json.loads(body)
                if task.get("result") is not None:
                    return True, requests, ""
                return False, requests, f"task ended without a result: {body[:200]!r}"

    return one


async def round_trips(
    host: str, port: int, request: bytes, n: int, warmup: int = 20
) -> list[float]:
    """Latencies (seconds) of `n` simple-mode requests, one at a time on one connection."""
    conn = Connection(host, port)
    latencies = []
    try:
        for i in range(warmup + n):
            begin = time.perf_counter()
            status, body = await conn.exchange(request)
            elapsed = time.perf_counter() - begin
            if not finished(status, body):
                raise RuntimeError(f"round trip answered HTTP {status}: {body[:200]!r}")
            if i >= warmup:
                latencies.append(elapsed)
    finally:
        conn.close()
    return latencies
