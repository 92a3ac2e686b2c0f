"""The console: a monitoring dashboard and a try-it page, served by the gateway.

The page is static (plain HTML, CSS and ES modules in `static/`, no build
step) and reads the JSON APIs of gateway/routes/console.py and the task
routes. Every link and fetch in it is relative, so it works unchanged behind a
reverse proxy that serves the gateway under a path prefix."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from gateway.routes import console as routes
from gateway.static import LabelledFiles

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the console's APIs and its page (/console/) to the app."""
    app.include_router(routes.router)
    # Revalidated by browsers: a new gateway serves new code.
    files = LabelledFiles(label="/console", cache_control="no-cache", directory=STATIC, html=True)
    app.mount("/console", files, name="console")
