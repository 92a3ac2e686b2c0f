"""The console's browser tests share these: Debian's chromium driven by
Playwright, a page whose errors are collected, the session cookie, screenshots,
a gateway started while the browser runs, and a reverse proxy under a path
prefix."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import GatewayProcess, create_key, free_port

playwright_api = pytest.importorskip("playwright.sync_api")

SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


class Watched:
    """A page whose console errors and failed requests are collected."""

    def __init__(self, page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.requests: list[str] = []
        page.on(
            "console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}")
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        # (data: and blob: URLs are the page's own: the favicon, a local upload's preview)
        page.on(
            "request",
            lambda r: r.url.startswith(("data:", "blob:")) or self.requests.append(r.url),
        )
        page.on("requestfailed", self._failed)
        page.on(
            "response",
            lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status} {r.url}"),
        )

    def _failed(self, request) -> None:
        # The console aborts its own fetches (polls, event streams) when it
        # leaves a page: those are not failures.
        if "ERR_ABORTED" not in (request.failure or ""):
            self.problems.append(f"request failed: {request.url} {request.failure}")

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def signed_in(context, url: str, key: str | None) -> None:
    """The session cookie the console's sign-in sets (POST /api/session at `url`)."""
    if key:
        login = httpx.post(url.rstrip("/") + "/api/session", json={"api_key": key}, timeout=30)
        login.raise_for_status()
        token = login.cookies["percept_session"]
        context.add_cookies([{"name": "percept_session", "value": token, "url": url}])


def screenshot(page, name: str, full_page: bool = True) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"console-{name}.png"), full_page=full_page)


def started(server: GatewayProcess) -> GatewayProcess:
    """Start a gateway while the browser runs: its admin key is made in a thread
    of its own (Playwright's sync API holds this thread's event loop)."""
    with ThreadPoolExecutor(1) as pool:
        server.api_key = pool.submit(create_key, server.env["REDIS_URL"]).result()
    return server.start()


class PrefixProxy:
    """A reverse proxy serving the gateway under /percept (it strips the prefix,
    like nginx's `location /percept/ { proxy_pass http://gateway/; }`); any
    request outside the prefix is a 404."""

    def __init__(self, upstream: str, prefix: str = "/percept") -> None:
        import uvicorn

        self.upstream, self.prefix = upstream, prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{prefix}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def app(self, scope, receive, send) -> None:
        path = scope["path"]
        if not path.startswith(self.prefix + "/"):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"outside the prefix"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = self.upstream + path[len(self.prefix) :]
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode()
        # the Host header goes through: the gateway builds its URLs (status_url) from it
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        async with httpx.AsyncClient(timeout=None) as client:
            request = client.build_request(scope["method"], target, headers=headers, content=body)
            response = await client.send(request, stream=True)
            skip = {"content-length", "transfer-encoding", "connection"}
            await send({
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers.multi_items() if k.lower() not in skip],
            })  # fmt: skip
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            await response.aclose()

    def __enter__(self) -> PrefixProxy:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def console_url(base: str, fragment: str = "") -> str:
    return f"{base}/console/{fragment}"


def assert_boxes_drawn_at(page, stage_selector: str, items: list[dict], width: int, height: int):
    """Each item's box is an SVG rect with the API's pixel coordinates, and it
    lands on those pixels of the picture as displayed (scaled to its size)."""
    from playwright.sync_api import expect

    stage = page.locator(stage_selector)
    rects = stage.locator("rect.box")
    expect(rects).to_have_count(len(items))
    picture = stage.locator("img, video, .blank").first.bounding_box()
    sx, sy = picture["width"] / width, picture["height"] / height
    for i, item in enumerate(items):
        box = item["box"]
        rect = rects.nth(i)
        assert float(rect.get_attribute("x")) == pytest.approx(box["left"], abs=0.01)
        assert float(rect.get_attribute("y")) == pytest.approx(box["top"], abs=0.01)
        assert float(rect.get_attribute("width")) == pytest.approx(
            box["right"] - box["left"], abs=0.01
        )
        assert float(rect.get_attribute("height")) == pytest.approx(
            box["bottom"] - box["top"], abs=0.01
        )
        drawn = rect.bounding_box()
        # on screen: where the box's pixels are in the displayed picture (the
        # stroke adds a pixel or two around it)
        assert drawn["x"] == pytest.approx(picture["x"] + box["left"] * sx, abs=2.5)
        assert drawn["y"] == pytest.approx(picture["y"] + box["top"] * sy, abs=2.5)
        assert drawn["width"] == pytest.approx((box["right"] - box["left"]) * sx, abs=3)
        assert drawn["height"] == pytest.approx((box["bottom"] - box["top"]) * sy, abs=3)
