"""Cross-site request forgery and sign-in guessing, against a real gateway, a
real face service and a real Redis: the console's session cookie changes
nothing unless the request is provably the console's (its Origin, its
Sec-Fetch-Site, its X-CSRF-Token); a page on another port of the same host,
in real Chromium with the admin signed in, changes nothing at all; API keys
are unaffected; wrong sign-ins get 429 with Retry-After, and the right key
works again once the window ends."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from gateway.app import create_app
from gateway.csrf import SAFE_METHODS
from gateway.settings import GatewaySettings
from tests.console_support import console_url
from tests.support import GatewayProcess, create_key, free_port, fresh_db, wait_done

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

WINDOW_S = 10  # GATEWAY_LOGIN_WINDOW_S: short, so the test waits it out
FAILURES = 10  # GATEWAY_LOGIN_FAILURES (the default)
COLLECTION = "csrf-target"
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def redis_db(redis_url):
    return fresh_db(redis_url, 12)


@pytest.fixture(scope="module")
def gw(face_server, redis_db):
    server = GatewayProcess(
        "gateway",
        env={
            "REDIS_URL": redis_db,
            "GATEWAY_FACE_TARGETS": face_server.address,
            "GATEWAY_OBJECT_TARGETS": face_server.address,  # no object kind is used here
            "GATEWAY_LOGIN_WINDOW_S": str(WINDOW_S),
            "GATEWAY_LOGIN_FAILURES": str(FAILURES),
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(gw):
    with gw.client(timeout=120) as client:
        created = client.post("/api/collections", json={"collection_id": COLLECTION})
        assert created.status_code in (201, 409), created.text
        yield client


def signed_in(gw, key: str) -> tuple[httpx.Client, str]:
    """A cookie-only client, as curl with the console's cookie; and the session's token."""
    client = httpx.Client(base_url=gw.url, timeout=120)
    login = client.post("/api/session", json={"api_key": key})
    assert login.status_code == 200, login.text
    token = login.json()["csrf_token"]
    assert token and client.get("/api/session").json()["csrf_token"] == token
    return client, token


def state_changing_routes() -> list[tuple[str, str]]:
    """(method, path) of every route that is not GET/HEAD, from the app's own
    OpenAPI document, with sample path parameters: a new route is covered
    without editing this."""
    samples = {"task_id": "0" * 32, "key_id": "0" * 8, "collection_id": COLLECTION,
               "face_id": str(uuid.uuid4())}  # fmt: skip
    paths = create_app(GatewaySettings()).openapi()["paths"]
    found = []
    for template, operations in paths.items():
        path = re.sub(r"{(\w+)}", lambda m: samples.get(m.group(1), "x"), template)
        found += [(m.upper(), path) for m in operations if m.upper() not in SAFE_METHODS]
    return sorted(found)


def send(client: httpx.Client, method: str, path: str, **headers) -> httpx.Response:
    return client.request(
        method, path, headers=headers, files={"file": ("face.jpg", b"\xff\xd8", "image/jpeg")}
    )


def state(admin: httpx.Client) -> dict:
    """What an attack would change, read with the admin's bearer key."""
    return {
        "tasks": [t["task_id"] for t in admin.get("/api/tasks").json()["tasks"]],
        "faces": admin.get(f"/api/collections/{COLLECTION}/faces").json()["faces"],
        "collections": sorted(
            c["collection_id"] for c in admin.get("/api/collections").json()["collections"]
        ),
        "keys": sorted(k["id"] for k in admin.get("/api/keys").json()["keys"]),
    }


def test_the_cookie_from_another_origin_changes_nothing_on_any_route(gw, admin):
    routes = state_changing_routes()
    assert ("POST", "/api/keys") in routes and ("POST", "/api/detect/face/image") in routes
    assert ("POST", f"/api/collections/{COLLECTION}/faces") in routes
    attacker = create_key(gw.env["REDIS_URL"], "client", "mallory", name="mallory")
    before = state(admin)
    cookie, token = signed_in(gw, gw.api_key)
    refusals = {}
    for method, path in routes:
        if (method, path) == ("POST", "/api/session"):
            continue  # sign-in: below
        # another origin, even holding this session's token (a leaked one, say)
        foreign = send(cookie, method, path, Origin=EVIL, **{"X-CSRF-Token": token})
        # another page of the same site (another port), as fetch metadata says
        same_site = send(cookie, method, path, **{"Sec-Fetch-Site": "same-site"})
        # no browser headers at all, and no token: curl with a stolen cookie
        bare = send(cookie, method, path)
        wrong = send(cookie, method, path, **{"X-CSRF-Token": "0" * 64})
        refusals[f"{method} {path}"] = [
            (r.status_code, r.json()["error"]["code"]) for r in (foreign, same_site, bare, wrong)
        ]
    expected = [(403, "cross_origin"), (403, "cross_origin"), (403, "csrf_token_missing"),
                (403, "csrf_token_invalid")]  # fmt: skip
    assert {route: seen for route, seen in refusals.items() if seen != expected} == {}
    assert "X-CSRF-Token" in send(cookie, "POST", "/api/keys").json()["error"]["message"]
    # login CSRF: no other page may sign this browser in with another key
    for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        login = cookie.post("/api/session", data={"api_key": attacker}, headers=headers)
        assert login.status_code == 403 and login.json()["error"]["code"] == "cross_origin"
    assert cookie.get("/api/session").json()["name"] == "tests"  # still the admin's session
    assert state(admin) == before


def test_the_console_s_own_requests_and_api_keys_pass(gw, admin, zidane_bytes):
    cookie, token = signed_in(gw, gw.api_key)
    console = {"Origin": gw.url, "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": token}
    accepted = cookie.post(
        "/api/detect/face/image",
        files={"file": ("z.jpg", zidane_bytes, "image/jpeg")},
        headers=console,
    )
    assert accepted.status_code == 202, accepted.text
    assert wait_done(admin, accepted.json()["task_id"])["status"] == "succeeded"
    made = cookie.post(
        "/api/keys", json={"name": "from-console", "tenant": "default"}, headers=console
    )
    assert made.status_code == 201, made.text
    assert cookie.delete(f"/api/keys/{made.json()['info']['id']}", headers=console).is_success
    # a bearer key (or X-API-Key) is no ambient credential: its caller's Origin is irrelevant
    foreign = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    by_key = admin.post(
        "/api/detect/face/image",
        files={"file": ("z.jpg", zidane_bytes, "image/jpeg")},
        headers=foreign,
    )
    assert by_key.status_code == 202, by_key.text
    with httpx.Client(base_url=gw.url, headers={"X-API-Key": gw.api_key, **foreign}) as x_key:
        made = x_key.post("/api/keys", json={"name": "by-x-api-key", "tenant": "default"})
        assert made.status_code == 201, made.text
    # signing out is the console's too: refused without the token, done with it
    assert cookie.delete("/api/session").status_code == 403
    assert cookie.delete("/api/session", headers=console).status_code == 204
    cookie.cookies.clear()


def wrong_sign_ins(client: httpx.Client, keys: list[str]) -> list[httpx.Response]:
    return [client.post("/api/session", json={"api_key": key}) for key in keys]


def retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= WINDOW_S
    return seconds


def from_address(gw, address: str, **kwargs) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x is loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=gw.url, transport=transport, timeout=60, **kwargs)


def test_wrong_sign_ins_are_throttled_per_address_and_end_with_the_window(gw):
    guesser = from_address(gw, "127.0.0.2")
    answers = wrong_sign_ins(guesser, [f"guess-{i}" for i in range(50)])
    statuses = [r.status_code for r in answers]
    assert statuses[:FAILURES] == [401] * FAILURES
    assert statuses[FAILURES:] == [429] * (50 - FAILURES)
    assert "too many wrong API keys" in answers[-1].json()["error"]["message"]
    retry_after(answers[-1])
    # the right key is no way around it (no oracle), nor a forged X-Forwarded-For
    right = guesser.post("/api/session", json={"api_key": gw.api_key})
    wait = retry_after(right)
    spoofed = guesser.post(
        "/api/session", json={"api_key": gw.api_key}, headers={"X-Forwarded-For": "10.9.9.9"}
    )
    assert spoofed.status_code == 429
    # another address, and the API itself, are untouched
    assert (
        from_address(gw, "127.0.0.3").post("/api/session", json={"api_key": gw.api_key}).is_success
    )
    assert guesser.get("/api/tasks", headers=gw.headers).status_code == 200
    time.sleep(wait)  # what Retry-After said
    assert guesser.post("/api/session", json={"api_key": gw.api_key}).status_code == 200


def test_wrong_sign_ins_for_one_key_id_throttle_that_key_alone(gw):
    key = create_key(gw.env["REDIS_URL"], "client", "acme", name="acme")
    key_id = key.split("_")[1]
    answers = wrong_sign_ins(
        from_address(gw, "127.0.0.4"), [f"pk_{key_id}_guess{i}" for i in range(FAILURES)]
    )
    assert [r.status_code for r in answers] == [401] * FAILURES
    elsewhere = from_address(gw, "127.0.0.5")
    wait = retry_after(elsewhere.post("/api/session", json={"api_key": f"pk_{key_id}_x"}))
    retry_after(elsewhere.post("/api/session", json={"api_key": key}))
    assert elsewhere.post("/api/session", json={"api_key": gw.api_key}).status_code == 200
    assert elsewhere.get("/api/tasks", headers={"Authorization": f"Bearer {key}"}).is_success
    time.sleep(wait)
    assert elsewhere.post("/api/session", json={"api_key": key}).status_code == 200


def test_successes_neither_count_nor_reset_the_failures(gw):
    # a success leaves nothing behind: no window opened for later failures to land in
    signed = from_address(gw, "127.0.0.7").post("/api/session", json={"api_key": gw.api_key})
    assert signed.status_code == 200
    assert not redis.Redis.from_url(gw.env["REDIS_URL"]).keys("percept:signin:*127.0.0.7")
    client = from_address(gw, "127.0.0.6")
    assert {r.status_code for r in wrong_sign_ins(client, ["nope"] * (FAILURES - 1))} == {401}
    for _ in range(5):
        assert client.post("/api/session", json={"api_key": gw.api_key}).status_code == 200
    assert client.post("/api/session", json={"api_key": "nope"}).status_code == 401
    retry_after(client.post("/api/session", json={"api_key": "nope"}))


# --- behind a reverse proxy ---------------------------------------------------------------

PUBLIC = "https://percept.example"


@pytest.fixture(scope="module")
def proxied(redis_db):
    """A gateway as a proxy that believes it would see it: GATEWAY_PUBLIC_ORIGIN
    names the address browsers use, GATEWAY_FORWARDED_ALLOW_IPS the proxy
    (this test, on 127.0.0.1)."""
    server = GatewayProcess(
        "gateway",
        env={
            "REDIS_URL": redis_db,
            "GATEWAY_FACE_TARGETS": "127.0.0.1:1",  # no task runs here
            "GATEWAY_OBJECT_TARGETS": "127.0.0.1:1",
            "GATEWAY_PUBLIC_ORIGIN": PUBLIC,
            "GATEWAY_FORWARDED_ALLOW_IPS": "127.0.0.1",
            "GATEWAY_LOGIN_WINDOW_S": str(WINDOW_S),
            "GATEWAY_LOGIN_FAILURES": str(FAILURES),
            "GATEWAY_DISPATCHERS": "false",
            "GATEWAY_REPLICA_MONITOR": "false",
        },
    ).start()
    yield server
    server.stop()


def test_behind_a_proxy_the_public_origin_is_the_console_s(proxied):
    cookie = httpx.Client(base_url=proxied.url, timeout=60)
    assert (
        cookie.post(
            "/api/session", json={"api_key": proxied.api_key}, headers={"Origin": proxied.url}
        ).status_code
        == 403
    )
    login = cookie.post(
        "/api/session", json={"api_key": proxied.api_key}, headers={"Origin": PUBLIC}
    )
    assert login.status_code == 200, login.text
    token = {"X-CSRF-Token": login.json()["csrf_token"]}
    new_key = {"name": "via-proxy", "tenant": "default"}
    # the gateway's own address is not the console's any more: only the public one is
    direct = cookie.post("/api/keys", json=new_key, headers={"Origin": proxied.url, **token})
    assert direct.status_code == 403 and PUBLIC in direct.json()["error"]["message"]
    made = cookie.post("/api/keys", json=new_key, headers={"Origin": PUBLIC, **token})
    assert made.status_code == 201, made.text


def test_behind_a_believed_proxy_each_forwarded_client_is_counted_alone(proxied):
    def sign_in(client_address: str, key: str, claimed: str = "198.51.100.99") -> httpx.Response:
        return httpx.post(  # the proxy appends the address it saw to what the client claimed
            f"{proxied.url}/api/session",
            json={"api_key": key},
            headers={"X-Forwarded-For": f"{claimed}, {client_address}"},
            timeout=60,
        )

    statuses = [sign_in("203.0.113.7", "wrong").status_code for _ in range(FAILURES + 1)]
    assert statuses == [401] * FAILURES + [429]
    # another client behind the same proxy is not held up by the first one's guesses
    assert sign_in("203.0.113.8", proxied.api_key).status_code == 200
    # what the proxy saw is believed, not what the client claimed before it
    assert sign_in("203.0.113.7", proxied.api_key, claimed="203.0.113.8").status_code == 429


# --- a real browser: another port of the same host, the admin signed in -------------------

ATTACK_PAGE = """<!doctype html>
<html><body>
<iframe name="sink-submit"></iframe><iframe name="sink-enroll"></iframe>
<iframe name="sink-login"></iframe><iframe name="sink-key"></iframe>
<form id="form-submit" method="POST" enctype="multipart/form-data" target="sink-submit"
      action="GW/api/detect/face/image"><input type="file" name="file"></form>
<form id="form-enroll" method="POST" enctype="multipart/form-data" target="sink-enroll"
      action="GW/api/collections/COLLECTION/faces">
  <input type="file" name="file"><input name="subject" value="mallory"></form>
<form id="form-login" method="POST" target="sink-login" action="GW/api/session">
  <input name="api_key" value="ATTACKER"></form>
<form id="form-key" method="POST" enctype="text/plain" target="sink-key" action="GW/api/keys">
  <input name='{"name":"evil","tenant":"default","role":"admin","pad":"' value='"}'></form>
<script>
const gw = "GW";
async function attack() {
  const blob = await (await fetch("face.jpg")).blob();
  const upload = (extra = {}) => {
    const body = new FormData();
    body.append("file", blob, "face.jpg");
    for (const [k, v] of Object.entries(extra)) body.append(k, v);
    return body;
  };
  const ride = { mode: "no-cors", credentials: "include", method: "POST" };
  const keyJson = JSON.stringify({ name: "evil", tenant: "default", role: "admin" });
  const tries = {
    submit: () => fetch(gw + "/api/detect/face/image", { ...ride, body: upload() }),
    enroll: () => fetch(gw + "/api/collections/COLLECTION/faces",
                        { ...ride, body: upload({ subject: "mallory" }) }),
    key_no_cors: () => fetch(gw + "/api/keys",
                             { ...ride, headers: { "Content-Type": "text/plain" }, body: keyJson }),
    key_json: () => fetch(gw + "/api/keys", { method: "POST", credentials: "include",
                          headers: { "Content-Type": "application/json" }, body: keyJson }),
    collection: () => fetch(gw + "/api/collections", { ...ride,
                            headers: { "Content-Type": "text/plain" },
                            body: JSON.stringify({ collection_id: "evil" }) }),
    login: () => fetch(gw + "/api/session",
                       { ...ride, body: new URLSearchParams({ api_key: "ATTACKER" }) }),
    sign_out: () => fetch(gw + "/api/session", { method: "DELETE", credentials: "include" }),
  };
  const results = {};
  for (const [name, run] of Object.entries(tries)) {
    try { results[name] = (await run()).type; } catch (err) { results[name] = "blocked"; }
  }
  for (const name of ["submit", "enroll", "key", "login"]) {
    const form = document.getElementById("form-" + name);
    const input = form.querySelector("input[type=file]");
    if (input) {
      const files = new DataTransfer();
      files.items.add(new File([blob], "face.jpg", { type: "image/jpeg" }));
      input.files = files.files;
    }
    const frame = document.querySelector(`iframe[name=sink-${name}]`);
    const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
    form.submit();
    await loaded;
    results["form_" + name] = "sent";
  }
  return results;
}
</script></body></html>"""


@contextlib.contextmanager
def attacker_site(directory):
    """A plain http.server on another port of 127.0.0.1: the same site as the gateway."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def refused_403s(admin: httpx.Client) -> float:
    """403s the gateway answered before any route ran, plus refused sign-ins (its metrics)."""
    total = 0.0
    for line in admin.get("/metrics").text.splitlines():
        if line.startswith("percept_gateway_http_requests_total{") and 'status="403"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def sign_in_answer(response) -> bool:
    return response.url.endswith("/api/session") and response.request.method == "POST"


def test_a_page_on_another_port_changes_nothing_and_the_console_still_works(
    gw, admin, browser, tmp_path, zidane_bytes
):
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
        attacker_key = pool.submit(
            create_key, gw.env["REDIS_URL"], "client", "mallory", name="mallory"
        ).result()
    page_text = (
        ATTACK_PAGE.replace("GW", gw.url)
        .replace("COLLECTION", COLLECTION)
        .replace("ATTACKER", attacker_key)
    )
    (tmp_path / "attack.html").write_text(page_text)
    (tmp_path / "face.jpg").write_bytes(zidane_bytes)
    context = browser.new_context()
    try:
        page = context.new_page()
        # the admin signs in to the console, in this browser, as a person would
        page.goto(console_url(gw.url, "#/tasks"))
        page.fill("#login-key", gw.api_key)
        page.click("#login-form button[type=submit]")
        expect(page.locator("#signout")).to_have_text("Sign out tests")
        before, refused_before = state(admin), refused_403s(admin)
        session = context.request.get(f"{gw.url}/api/session").json()
        assert session["key_id"] == gw.api_key.split("_")[1]

        with attacker_site(tmp_path) as site:
            evil = context.new_page()
            evil.goto(f"{site}/attack.html")
            results = evil.evaluate("attack()")
        # the attacks left the page (opaque answers, forms loaded); the JSON and
        # DELETE ones need a preflight the gateway never grants
        assert results["submit"] == results["enroll"] == results["login"] == "opaque"
        assert results["key_json"] == results["sign_out"] == "blocked"
        assert state(admin) == before  # no task, no enrolled face, no collection, no key
        assert context.request.get(f"{gw.url}/api/session").json() == session  # not replaced
        # ... though they reached the gateway, which refused each with 403: the
        # no-cors fetches (submit, enroll, key, collection, sign-in) and the four forms
        assert refused_403s(admin) - refused_before >= 9

        # the console itself still works: try-it submits a face task, then sign out
        page.goto(console_url(gw.url, "#/try"))
        page.select_option("select[name=kind]", "face_detection")
        (tmp_path / "z.jpg").write_bytes(zidane_bytes)
        page.set_input_files("input[name=file]", str(tmp_path / "z.jpg"))
        page.click("#try-form button[type=submit]")
        expect(page.locator("#try-status")).to_have_text("succeeded", timeout=120_000)
        task_id = page.locator("#try-result").get_attribute("data-task")
        assert admin.get(f"/api/task/{task_id}").json()["status"] == "succeeded"
        cookie = next(c for c in context.cookies() if c["name"] == "percept_session")
        page.click("#signout")
        expect(page.locator("#login")).to_be_visible()
        replay = httpx.get(
            f"{gw.url}/api/session", cookies={"percept_session": cookie["value"]}, timeout=30
        )
        assert replay.status_code == 401  # the sign-out ended the session on the server

        # a wrong key typed into the console is refused; past the limit (the rest sent
        # at once, so that the window cannot end between them), held off with a clear word
        def typed_sign_in(key: str):
            page.fill("#login-key", key)
            with page.expect_response(sign_in_answer) as answer:
                page.click("#login-form button[type=submit]")
            return answer.value

        assert typed_sign_in("pk_00000000_wrong").status == 401
        expect(page.locator("#login-error")).to_have_text("That key was not accepted.")
        with httpx.Client(base_url=gw.url, timeout=30) as same_address:
            wrong_sign_ins(same_address, ["pk_00000000_wrong"] * (FAILURES - 1))
        assert typed_sign_in(gw.api_key).status == 429
        expect(page.locator("#login-error")).to_have_text(
            re.compile(r"Too many wrong keys: try again in \d+ s\.")
        )
    finally:
        context.close()
