"""The HTTP/1.1 POST webhooks are sent with: to one checked address, bounded.

A general client (httpx) spent most of a delivery's time in its connection
pool's bookkeeping; a webhook needs one thing: POST a small body to the
address that was just checked (gateway/webhooks.py), with the URL's Host and
TLS server name, read the status and headers and at most `max_body` bytes of
the answer, follow no redirect. Connections are kept alive per (scheme,
address, port, host) and reused last-in first-out; one whose answer was not
read whole is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

MAX_HEADER_BYTES = 16 * 1024
IDLE_PER_TARGET = 64


class HttpError(Exception):
    """The exchange failed (connection, protocol); the message says how."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Sender:
    def __init__(self, timeout_s: float, max_body: int = 4096) -> None:
        self.timeout_s = timeout_s
        self.max_body = max_body
        self._idle: dict[tuple, list[_Conn]] = {}
        self._tls = ssl.create_default_context()

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def post(
        self,
        scheme: str,
        address: str,
        port: int,
        host_header: str,
        server_name: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Answer:
        """POST body; raises TimeoutError past timeout_s, HttpError otherwise."""
        key = (scheme, address, port, server_name)
        lines = [f"POST {path} HTTP/1.1", f"Host: {host_header}",
                 f"Content-Length: {len(body)}", "Connection: keep-alive"]  # fmt: skip
        lines += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        async with asyncio.timeout(self.timeout_s):
            idle = self._idle.get(key) or []
            while idle:  # a kept-alive connection the receiver closed meanwhile: the next
                conn = idle.pop()
                if conn.reader.at_eof() or conn.writer.is_closing():
                    conn.close()
                    continue
                try:
                    return await self._exchange(key, conn, request)
                except (HttpError, OSError):
                    conn.close()  # (stale: try a fresh connection once)
                    break
                except BaseException:  # the timeout (a cancel, in here)
                    conn.close()
                    raise
            conn = await self._connect(scheme, address, port, server_name)
            try:
                return await self._exchange(key, conn, request)
            except BaseException:
                conn.close()
                raise

    async def _connect(self, scheme: str, address: str, port: int, server_name: str) -> _Conn:
        try:
            if scheme == "https":
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=self._tls, server_hostname=server_name
                )
            else:
                reader, writer = await asyncio.open_connection(address, port)
        except OSError as exc:
            raise HttpError(f"cannot connect to {address}:{port} ({exc.strerror or exc})") from None
        return _Conn(reader, writer)

    async def _exchange(self, key: tuple, conn: _Conn, request: bytes) -> Answer:
        try:
            return await self._exchange_once(key, conn, request)
        except asyncio.IncompleteReadError:
            raise HttpError("the connection closed in the middle of the answer") from None
        except asyncio.LimitOverrunError:
            raise HttpError("an answer's line is too long") from None

    async def _exchange_once(self, key: tuple, conn: _Conn, request: bytes) -> Answer:
        conn.writer.write(request)
        await conn.writer.drain()
        try:
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            raise HttpError("the connection closed before an answer") from None
        except asyncio.LimitOverrunError:
            raise HttpError("the answer's headers are too long") from None
        if len(head) > MAX_HEADER_BYTES:
            raise HttpError("the answer's headers are too long")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        reusable = await self._body(conn, headers, int(parts[1]))
        keep = reusable and headers.get("connection", "").lower() != "close"
        keep = keep and parts[0] != "HTTP/1.0"
        idle = self._idle.setdefault(key, [])
        if keep and len(idle) < IDLE_PER_TARGET:
            idle.append(conn)
        else:
            conn.close()
        return Answer(int(parts[1]), headers)

    async def _body(self, conn: _Conn, headers: dict[str, str], status: int) -> bool:
        """Read the answer's body up to the bound; True when read whole (reusable)."""
        if status in (204, 304) or 100 <= status < 200:
            return True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            seen = 0
            while seen <= self.max_body:
                size_line = await conn.reader.readline()
                try:
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    return False
                if size == 0:
                    await conn.reader.readline()  # (no trailers expected)
                    return True
                if seen + size > self.max_body:
                    return False
                await conn.reader.readexactly(size + 2)
                seen += size
            return False
        length = headers.get("content-length")
        if length is None or not length.isdigit():
            return False  # read until close: never reuse, read nothing more
        if int(length) > self.max_body:
            return False
        await conn.reader.readexactly(int(length))
        return True
