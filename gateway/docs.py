"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), served
whole by the gateway: their scripts and styles come from an installed package
(fastapi-offline's copies of swagger-ui-dist and redoc), never from a CDN, so
the pages work on a network that reaches nothing but the gateway. Every URL in
them is relative, so they work under a reverse proxy's path prefix too.

Like /openapi.json they need a key (an API key, or the console's session
cookie) unless GATEWAY_DOCS_PUBLIC; a browser without one gets a page that
leads to the console's sign-in instead of a 401 JSON body (SIGN_IN_PAGE)."""

from __future__ import annotations

import functools
import html
from collections.abc import Awaitable, Callable
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from gateway.static import LabelledFiles

PAGES = ("/docs", "/redoc")  # the pages install() adds
ASSETS = "/docs/assets"  # open: public library files, no data of the API's
# Relative to /docs and /redoc (both at the root): right under any prefix.
_ASSETS = ASSETS.lstrip("/")
_OPENAPI = "openapi.json"
_CACHED = "public, max-age=86400"

STATIC = files("fastapi_offline") / "static"
# ReDoc's footer shows Redocly's logo from their CDN (hidden when it fails to
# load): the one request to another host. Served without it.
_REDOC_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'


@functools.cache
def _redoc_script() -> bytes:
    return (STATIC / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO, b'""')


def install(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets (create the app with docs_url=None
    and redoc_url=None: FastAPI's own pages load their scripts from a CDN)."""

    @app.get(f"{ASSETS}/redoc.standalone.js", include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(
            _redoc_script(),
            media_type="text/javascript",
            headers={"Cache-Control": _CACHED},
        )

    # Public library files that change only with the package.
    assets = LabelledFiles(label=ASSETS, cache_control=_CACHED, directory=str(STATIC))
    app.mount(ASSETS, assets, name="docs-assets")

    pages = {
        "/docs": functools.partial(
            get_swagger_ui_html,
            title=f"{app.title} API - Swagger UI",
            swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS}/favicon.png",
            # no badge fetched from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        ),
        "/redoc": functools.partial(
            get_redoc_html,
            title=f"{app.title} API - ReDoc",
            redoc_js_url=f"{_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{_ASSETS}/favicon.png",
            with_google_fonts=False,
        ),
    }
    for path, page in pages.items():
        app.add_api_route(path, _page_route(page), include_in_schema=False)


def _page_route(page: Callable[..., HTMLResponse]) -> Callable[[], Awaitable[HTMLResponse]]:
    async def serve() -> HTMLResponse:
        return page(openapi_url=_OPENAPI)

    return serve


def wants_page(path: str, scope) -> bool:
    """A browser opening /docs or /redoc (it asks for HTML); API clients get JSON."""
    if path not in PAGES or scope["method"] != "GET":
        return False
    accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
    return b"text/html" in accept


SIGN_IN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Percept API docs: sign in</title>
<link rel="icon" href="data:,">
<style>
  body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d232b; }}
  main {{ max-width: 34rem; margin: 12vh auto; background: #fff; padding: 2rem 2.25rem;
          border-radius: 10px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
  h1 {{ font-size: 1.4rem; margin: 0 0 .75rem; }}
  .why {{ color: #5c6672; }}
  a.button {{ display: inline-block; background: #2764c5; color: #fff; padding: .55rem 1.1rem;
              border-radius: 6px; text-decoration: none; font-weight: 600; margin: .5rem 0 1rem; }}
  code {{ background: #eef0f3; padding: .1rem .3rem; border-radius: 4px; }}
</style>
</head>
<body>
<main>
  <h1>Sign in to read the API docs</h1>
  <p>The API's documentation needs an API key, like the API itself.</p>
  <p class="why">{reason}</p>
  <a class="button" id="sign-in" href="console/">Sign in on the console</a>
  <p>Once signed in, come back to this page and reload it (the console's
  <em>API docs</em> link leads here). Scripts send the key instead:
  <code>Authorization: Bearer &lt;key&gt;</code>; <code>GATEWAY_DOCS_PUBLIC=true</code>
  serves these pages to anyone.</p>
</main>
</body>
</html>
"""


def sign_in_page(refusal: str) -> HTMLResponse:
    """The answer to a browser opening /docs or /redoc without a key (401);
    `refusal`: why the key or session presented was refused."""
    reason = "You are not signed in" if refusal.startswith("missing") else refusal
    return HTMLResponse(
        SIGN_IN_PAGE.format(reason=html.escape(reason[:1].upper() + reason[1:] + ".")),
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="percept"', "Cache-Control": "no-store"},
    )
