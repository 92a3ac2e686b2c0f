"""The CSRF checks and the sign-in throttle's bookkeeping, without servers:
which requests signed in by the session cookie pass, what the origin setting
accepts, and what a throttled sign-in is counted under."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from gateway import csrf, signin
from gateway.errors import ApiError
from gateway.settings import GatewaySettings

SESSION = "ps_" + "s" * 43


def request(method: str = "POST", scheme: str = "http", host: str = "127.0.0.1:8000", **headers):
    raw = [(b"host", host.encode())] + [
        (name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()
    ]
    return Request(
        {"type": "http", "method": method, "scheme": scheme, "path": "/api/keys",
         "headers": raw, "query_string": b"", "server": ("127.0.0.1", 8000)}
    )  # fmt: skip


def refused(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status == 403
    return caught.value


def test_the_console_s_own_request_passes_with_origin_or_fetch_metadata():
    token = csrf.token_for(SESSION)
    for headers in (
        {"origin": "http://127.0.0.1:8000", "sec_fetch_site": "same-origin"},
        {"origin": "http://127.0.0.1:8000"},
        {"sec_fetch_site": "same-origin"},
        {},  # not a browser, but it holds the token only the console can read
    ):
        csrf.check_session_request(request(x_csrf_token=token, **headers), SESSION, ())


def test_another_page_of_the_same_host_is_refused_even_with_the_token():
    token = csrf.token_for(SESSION)
    other_port = refused(
        lambda: csrf.check_session_request(
            request(origin="http://127.0.0.1:9901", x_csrf_token=token), SESSION, ()
        )
    )
    assert other_port.code == "cross_origin" and "127.0.0.1:9901" in other_port.message
    assert "GATEWAY_PUBLIC_ORIGIN" in other_port.message
    for site in ("same-site", "cross-site", "none"):
        error = refused(
            lambda site=site: csrf.check_session_request(
                request(sec_fetch_site=site, x_csrf_token=token), SESSION, ()
            )
        )
        assert error.code == "cross_origin" and site in error.message
    assert refused(lambda: csrf.check_origin(request(origin="null"), ())).code == "cross_origin"


def test_without_the_session_s_token_the_cookie_changes_nothing():
    missing = refused(lambda: csrf.check_session_request(request(), SESSION, ()))
    assert missing.code == "csrf_token_missing" and "X-CSRF-Token" in missing.message
    other = csrf.token_for("ps_another_session")
    wrong = refused(lambda: csrf.check_session_request(request(x_csrf_token=other), SESSION, ()))
    assert wrong.code == "csrf_token_invalid"
    assert csrf.token_for(SESSION) != csrf.token_for(SESSION + "x")
    assert SESSION not in csrf.token_for(SESSION)


def test_behind_a_proxy_the_public_origin_is_the_console_s():
    public = GatewaySettings(public_origin="https://Percept.example:443/").public_origins
    assert public == ("https://percept.example",)
    # the proxy talks plain HTTP to the gateway: the browser's origin is the public one
    behind = request(scheme="http", host="gateway:8000", origin="https://percept.example")
    csrf.check_origin(behind, public)
    refused(lambda: csrf.check_origin(request(origin="http://gateway:8000"), public))
    # without the setting, the request's own scheme and Host (default ports dropped)
    csrf.check_origin(request(host="percept.example", origin="http://percept.example:80"), ())
    csrf.check_origin(request(host="[::1]:8000", origin="http://[::1]:8000"), ())


@pytest.mark.parametrize(
    "bad", ["percept.example", "https://percept.example/console", "ftp://x", "null", "https://"]
)
def test_a_public_origin_that_is_not_one_is_refused_at_start(bad):
    with pytest.raises(ValidationError) as caught:
        GatewaySettings(public_origin=bad)
    assert "scheme://host[:port]" in str(caught.value)


def test_sign_in_is_counted_per_address_and_per_key_id():
    assert signin.counters("10.0.0.7", "pk_1a2b3c4d_secret") == [
        "percept:signin:addr:10.0.0.7",
        "percept:signin:key:1a2b3c4d",
    ]
    # a key of another shape can never be right: only its address counts
    assert signin.counters("10.0.0.7", "hunter2") == ["percept:signin:addr:10.0.0.7"]
    # one IPv6 host usually holds a /64; an IPv4-mapped address is its IPv4 one
    assert signin.client_bucket("2001:db8::1") == signin.client_bucket("2001:db8::ffff")
    assert signin.client_bucket("2001:db8::1") == "2001:db8::/64"
    assert signin.client_bucket("::ffff:10.0.0.7") == "10.0.0.7"
    assert signin.client_bucket(None) == "unknown"


def test_the_openapi_document_names_the_refusal_on_every_state_changing_route():
    from gateway.app import create_app

    paths = create_app(GatewaySettings()).openapi()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method in ("post", "delete") and path.startswith("/api/"):
                assert "403" in operation["responses"], (method, path)
    keys = paths["/api/keys"]["post"]["responses"]["403"]["description"]
    assert keys == "Not allowed"  # a route's own 403 stays; the others say why
    enroll = paths["/api/collections/{collection_id}/faces"]["post"]["responses"]
    assert "X-CSRF-Token" in enroll["403"]["description"]
    assert {"403", "429"} <= set(paths["/api/session"]["post"]["responses"])
