"""A real HTTP webhook receiver on loopback, for tests and bench/webhook_bench.py.

It records every request (headers, body, when) and answers as told: a status
(500 while an outage lasts), a delay per request, or a redirect.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived
    answered_at: float = 0.0
    code: int = 0  # the status it was answered


@dataclass
class Receiver:
    """Answers `status()` (a callable: it may change over time) after `delay_s`;
    `redirect_to` answers 302 to that URL instead."""

    status: Callable[[], int] = lambda: 200
    delay_s: float = 0.0
    redirect_to: str | None = None
    retry_after: str | None = None
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._seen: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                item = Received({k.lower(): v for k, v in self.headers.items()}, body,
                                time.monotonic())  # fmt: skip
                with receiver._changed:
                    receiver.received.append(item)
                    receiver._seen.add(item.headers.get("webhook-id", ""))
                    receiver._changed.notify_all()
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                code = 302 if receiver.redirect_to else receiver.status()
                item.code = code
                payload = b'{"ok": true}' if code < 300 else b"x" * 100_000  # big: read to a bound
                self.send_response(code)
                if receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                if receiver.retry_after and code >= 300:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the sender stopped reading: fine
                    self.wfile.write(payload)
                item.answered_at = time.monotonic()

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # a sender that went away (a killed delivery process): not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def ids(self) -> set[str]:
        """The distinct webhook-ids received so far."""
        with self._lock:
            return set(self._seen)

    def ok_ids(self) -> set[str]:
        """The webhook-ids answered 2xx at least once (delivered)."""
        with self._lock:
            return {r.headers.get("webhook-id", "") for r in self.received if 200 <= r.code < 300}

    def count(self) -> int:
        """How many distinct webhook-ids arrived (cheap: for waiting on bursts)."""
        return len(self._seen)

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self._seen.clear()

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float) -> bool:
        """Wait (on arrivals, not a sleep loop) until predicate(self) holds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                if predicate(self):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 1.0))
            time.sleep(0.02)  # judge a burst every 20 ms, not at each arrival

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def outage(seconds: float, code: int = 500) -> Callable[[], int]:
    """A status callable: `code` for `seconds` from its first call, then 200."""
    start: list[float] = []

    def status() -> int:
        if not start:
            start.append(time.monotonic())
        return code if time.monotonic() - start[0] < seconds else 200

    return status
