"""The console: a monitoring dashboard and a try-it page, served by the gateway.

The page is static (plain HTML, CSS and ES modules in `static/`, no build
step) and reads the JSON APIs of gateway/routes/console.py and the task
routes. Every link and fetch in it is relative, so it works unchanged behind a
reverse proxy that serves the gateway under a path prefix."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from gateway.routes import console as routes

STATIC = Path(__file__).parent / "static"


class _Route:
    path = "/console"  # the metrics' route label of every console file


class ConsoleFiles(StaticFiles):
    """Static files that browsers revalidate (a new gateway serves new code),
    counted in the HTTP metrics under one route, /console."""

    async def __call__(self, scope, receive, send) -> None:
        scope["route"] = _Route
        await super().__call__(scope, receive, send)

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def install(app: FastAPI) -> None:
    """Add the console's APIs and its page (/console/) to the app."""
    app.include_router(routes.router)
    app.mount("/console", ConsoleFiles(directory=STATIC, html=True), name="console")
