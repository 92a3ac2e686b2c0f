"""Cross-site request forgery: a browser sends the console's session cookie
with any request to the gateway's host, whatever page made it - SameSite
stops other sites, not another port or another service of the same host. So
a request signed in by the cookie changes state only when it is provably the
console's (OWASP's CSRF cheat sheet, two defences together):

- the browser's own word: `Sec-Fetch-Site` (when sent) must be
  `same-origin`, and `Origin` (when sent) must be the gateway's own origin -
  GATEWAY_PUBLIC_ORIGIN behind a proxy that changes scheme or host, else the
  request's scheme and Host;
- a token only the console can read: `X-CSRF-Token`, derived from the
  session (GET /api/session answers it to the page). A cross-origin page can
  neither read that answer (no CORS) nor set a custom header without a
  preflight the gateway never grants.

Requests with an API key (`Authorization`, `X-API-Key`) carry no ambient
credential and are not checked; sign-in (which needs no session) gets the
origin check alone, which stops login CSRF.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

from gateway.errors import ApiError

HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def token_for(session: str) -> str:
    """The CSRF token of a session: a one-way function of its (secret, random)
    cookie, so every gateway process agrees without storing anything, and the
    token reveals nothing of the cookie."""
    return hashlib.sha256(b"percept-csrf\0" + session.encode()).hexdigest()


def normalize(origin: str) -> str | None:
    """`scheme://host[:port]`, lower-cased and without a default port; None
    when `origin` is not one (`null`, a path, another scheme)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not host or parts.path not in ("", "/"):
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and str(port) != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def parse_origins(text: str) -> tuple[str, ...]:
    """GATEWAY_PUBLIC_ORIGIN: comma-separated origins; ValueError names a bad one."""
    origins = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        origin = normalize(item)
        if origin is None:
            raise ValueError(
                f"{item!r} is not an origin: give scheme://host[:port] "
                "(http or https, no path), e.g. https://percept.example.com"
            )
        origins.append(origin)
    return tuple(origins)


def own_origins(request: Request, public: tuple[str, ...]) -> tuple[str, ...]:
    """The origins the console is served at: the configured ones, else this
    request's scheme and Host."""
    if public:
        return public
    host = request.headers.get("host", "")
    origin = normalize(f"{request.url.scheme}://{host}") if host else None
    return (origin,) if origin else ()


def check_origin(request: Request, public: tuple[str, ...]) -> None:
    """403 when the browser says the request comes from another origin.
    A request with neither header is not a browser's (or a very old one's)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.lower() != "same-origin":
        raise ApiError(
            403,
            "cross_origin",
            f"refused: the browser says this request came from another page "
            f"(Sec-Fetch-Site: {site[:40]}); only the console itself may use its "
            "session; scripts send an API key (Authorization: Bearer <key>)",
        )
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = own_origins(request, public)
    if normalize(origin) not in allowed:
        raise ApiError(
            403,
            "cross_origin",
            f"refused: this request came from the page at {origin[:200]!r}, not the "
            f"console's origin ({', '.join(allowed) or 'unknown'}); scripts send an API "
            "key (Authorization: Bearer <key>). Behind a reverse proxy that changes the "
            "scheme or host, set GATEWAY_PUBLIC_ORIGIN to the address browsers use",
        )


def check_session_request(request: Request, session: str, public: tuple[str, ...]) -> None:
    """A state-changing request signed in by the session cookie: the origin
    check, then the session's token in the X-CSRF-Token header (403 without)."""
    check_origin(request, public)
    sent = request.headers.get(HEADER.lower(), "")
    if not sent:
        raise ApiError(
            403,
            "csrf_token_missing",
            f"a request signed in by the console's session cookie must send the "
            f"{HEADER} header (the csrf_token GET /api/session answers); scripts "
            "send an API key instead (Authorization: Bearer <key>)",
        )
    if not hmac.compare_digest(sent.encode(), token_for(session).encode()):
        raise ApiError(
            403,
            "csrf_token_invalid",
            f"the {HEADER} header is not this session's: read it again from "
            "GET /api/session (it changes with every sign-in)",
        )
