"""/docs (Swagger UI) and /redoc (ReDoc) in a real browser (Debian's chromium)
on a network that reaches nothing but the gateway: every request to another
host is aborted, and the pages still list the API's operations, because the
gateway serves their scripts itself. They open with the console's session
cookie; a browser without one gets a page that leads to the console's sign-in
(API clients still get 401 JSON); and they work under a path prefix."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from gateway.kinds import KINDS
from tests.console_support import (
    PrefixProxy,
    Watched,
    signed_in,
    started,
)
from tests.support import GatewayProcess, RedisServer

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api").expect

# What the submit routes say they do (their OpenAPI summaries).
SUMMARIES = [k.summary for k in KINDS if k.path in ("/api/detect/face/image", "/api/detect/object/image")]  # fmt: skip


@pytest.fixture(scope="module")
def docs_redis(tmp_path_factory):
    store = RedisServer(tmp_path_factory.mktemp("redis"), aof=False).start()
    yield store.url
    store.stop()


def gateway_env(redis_url: str, **more: str) -> dict[str, str]:
    """A gateway with no backend and no dispatcher: the pages need neither."""
    return {"REDIS_URL": redis_url, "GATEWAY_FACE_TARGETS": "127.0.0.1:9",
            "GATEWAY_OBJECT_TARGETS": "127.0.0.1:9", "GATEWAY_DISPATCHERS": "false",
            "GATEWAY_REPLICA_MONITOR": "false", **more}  # fmt: skip


@pytest.fixture(scope="module")
def gateway(docs_redis):
    server = started(GatewayProcess("gateway", env=gateway_env(docs_redis)))
    yield server
    server.stop()


def offline(context, origin: str) -> list[str]:
    """Abort every request whose host is not the gateway's; returns what was tried."""
    host = urlsplit(origin).netloc
    tried: list[str] = []

    def route(r) -> None:
        if urlsplit(r.request.url).netloc == host:
            r.continue_()
        else:
            tried.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return tried


def assert_operations_listed(page, base: str) -> None:
    """Swagger UI at base/docs and ReDoc at base/redoc show the submit routes."""
    page.goto(f"{base}/docs")
    for summary in SUMMARIES:
        expect(page.locator(".opblock-summary-description", has_text=summary)).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/tasks").first).to_be_visible()
    page.goto(f"{base}/redoc")
    expect(page.get_by_role("menuitem", name="submit")).to_be_visible(timeout=30_000)
    for summary in SUMMARIES:
        expect(page.locator("h2", has_text=summary).first).to_be_visible()


def test_docs_and_redoc_work_offline_with_the_console_session(browser, gateway):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tried = offline(context, gateway.url)
    signed_in(context, gateway.url, gateway.api_key)
    watched = Watched(context.new_page())
    try:
        assert_operations_listed(watched.page, gateway.url)
    finally:
        context.close()
    assert not tried, f"the pages reached beyond the gateway: {tried}"
    assert all(u.startswith(gateway.url + "/") for u in watched.requests)
    watched.check()


def test_without_a_key_a_browser_is_led_to_the_sign_in_and_api_clients_get_401_json(
    browser,
    gateway,
):
    for path in ("/docs", "/redoc"):
        refused = httpx.get(gateway.url + path)  # an API client: JSON, as on every route
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        keyed = httpx.get(gateway.url + path, headers=gateway.headers)
        assert keyed.status_code == 200 and "text/html" in keyed.headers["content-type"]
        assert "docs/assets/" in keyed.text and "//cdn." not in keyed.text
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tried = offline(context, gateway.url)
    watched = Watched(context.new_page())
    page = watched.page
    try:
        answer = page.goto(gateway.url + "/redoc")
        assert answer.status == 401
        expect(page.locator("h1")).to_have_text("Sign in to read the API docs")
        expect(page.locator(".why")).to_have_text("You are not signed in.")
        page.click("#sign-in")
        expect(page).to_have_url(gateway.url + "/console/")
        page.fill("#login-key", gateway.api_key)  # the console's own sign-in
        page.click("#login-form button[type=submit]")
        expect(page.locator("#login")).to_be_hidden()
        assert_operations_listed(page, gateway.url)  # the session opens the docs
    finally:
        context.close()
    assert not tried, tried
    # only the refusals of the signed-out moments: 401s (and Chromium's line for each)
    assert not [p for p in watched.problems if "401" not in p], watched.problems


def test_the_docs_work_under_a_path_prefix(browser, docs_redis):
    prefixed = started(
        GatewayProcess("gateway", env=gateway_env(docs_redis, GATEWAY_ROOT_PATH="/percept"))
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watched = Watched(context.new_page())
    try:
        with PrefixProxy(prefixed.url) as proxy:
            tried = offline(context, proxy.url)
            signed_in(context, proxy.url + "/", prefixed.api_key)
            assert_operations_listed(watched.page, proxy.url)
            outside = [u for u in watched.requests if not u.startswith(proxy.url + "/")]
            assert watched.requests and not outside, outside
            assert not tried, tried
    finally:
        context.close()
        prefixed.stop()
    watched.check()
