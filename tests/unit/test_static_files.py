"""The gateway's static mounts (the console, the API docs' assets): each file
carries its mount's cache policy and is counted under the mount's one route."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette

from gateway.static import LabelledFiles


def test_files_carry_the_mounts_cache_policy_and_route_label(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>x</title>")
    (tmp_path / "app.js").write_text("export {};")
    seen: list[str] = []

    async def labels(scope, receive, send):  # what the metrics middleware reads
        async def sent(message):
            if message["type"] == "http.response.start":
                seen.append(scope["route"].path)
            await send(message)

        await files(scope, receive, sent)

    files = LabelledFiles(label="/console", cache_control="no-cache", directory=tmp_path, html=True)
    app = Starlette()
    app.mount("/console", labels)

    async def fetch() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return [await client.get(path) for path in ("/console/", "/console/app.js")]

    for answer in asyncio.run(fetch()):
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-cache"
    assert seen == ["/console", "/console"]
