"""Tenants, keys and limits against a real gateway, real Redis and real models:
nobody sees another's tasks, a revoked key stops at once everywhere, limits
answer 429 with Retry-After."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import redis

from harness.faces import FACE_PATCH
from harness.videos import moving_patch_video
from tests.support import ROOT, GatewayProcess, create_key, fresh_db, submit, wait_done

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sec_redis(redis_url):
    return fresh_db(redis_url, 13)


@pytest.fixture(scope="module")
def env(sec_redis, face_server, object_server):
    return {
        "REDIS_URL": sec_redis,
        "GATEWAY_FACE_TARGETS": face_server.address,
        "GATEWAY_OBJECT_TARGETS": object_server.address,
    }


@pytest.fixture(scope="module")
def gw(env):
    server = GatewayProcess("gateway", env=env).start()
    yield server
    server.stop()


def client(gateway: GatewayProcess, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=gateway.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("sec") / "long.avi"
    moving_patch_video(path, np.ascontiguousarray(astronaut[FACE_PATCH]), n_frames=150)
    return path.read_bytes()


def test_no_key_is_401_and_only_the_open_paths_answer(gw, zidane_bytes):
    anonymous = client(gw, None)
    for method, path in (("GET", "/api/tasks"), ("GET", "/api/kinds"), ("GET", "/metrics"),
                         ("GET", "/openapi.json"), ("GET", "/api/task/0123")):  # fmt: skip
        response = anonymous.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in response.json()["error"]["message"]
    refused = submit(anonymous, "/api/detect/face/image", zidane_bytes)
    assert refused.status_code == 401
    bad = submit(client(gw, "pk_00000000_nope"), "/api/detect/face/image", zidane_bytes)
    assert bad.status_code == 401 and "unknown or revoked" in bad.json()["error"]["message"]
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200


def test_tenants_never_see_each_other(gw, sec_redis, zidane_bytes, long_video):
    alice = client(gw, create_key(sec_redis, "client", "alice"))
    bob = client(gw, create_key(sec_redis, "client", "bob"))
    admin = client(gw, gw.api_key)
    done = submit(alice, "/api/detect/face/image", zidane_bytes, data={"encodings": "true"})
    running = submit(alice, "/api/detect/face/video", long_video, "v.avi", "video/x-msvideo")
    task_id, video_id = done.json()["task_id"], running.json()["task_id"]
    assert wait_done(alice, task_id)["result"]["faces"][0]["encoding"]  # alice reads her own
    for path in (f"/api/task/{task_id}", f"/api/task/{task_id}/events"):
        response = bob.get(path)
        assert response.status_code == 404 and "no task" in response.json()["error"]["message"]
    assert bob.delete(f"/api/task/{video_id}").status_code == 404  # cannot cancel it either
    assert alice.get(f"/api/task/{video_id}").json()["status"] in ("queued", "running")
    assert bob.get("/api/tasks").json()["tasks"] == []
    assert bob.get("/api/tasks", params={"q": task_id[:8]}).json()["tasks"] == []
    listed = {t["task_id"] for t in alice.get("/api/tasks").json()["tasks"]}
    assert listed == {task_id, video_id}
    everyone = {t["task_id"] for t in admin.get("/api/tasks").json()["tasks"]}
    assert {task_id, video_id} <= everyone  # an admin sees every tenant
    assert admin.get(f"/api/task/{task_id}").json()["tenant"] == "alice"  # whose it is
    assert "tenant" not in alice.get(f"/api/task/{task_id}").json()  # for admins only
    tenants = {t["task_id"]: t.get("tenant") for t in admin.get("/api/tasks").json()["tasks"]}
    assert tenants[task_id] == tenants[video_id] == "alice"
    assert admin.delete(f"/api/task/{video_id}").json()["status"] == "cancelled"

    # Idempotency keys are per tenant: the same key names different tasks.
    key = {"Idempotency-Key": "order-42"}
    files = {"file": ("z.jpg", zidane_bytes, "image/jpeg")}
    a = alice.post("/api/detect/face/image", files=files, headers=key).json()["task_id"]
    b = bob.post("/api/detect/face/image", files=files, headers=key).json()["task_id"]
    again = alice.post("/api/detect/face/image", files=files, headers=key).json()["task_id"]
    assert a != b and again == a
    conflict = alice.post(
        "/api/detect/face/image", files=files, data={"upsample": "0"}, headers=key
    )
    assert conflict.status_code == 422
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert a in conflict.json()["error"]["message"]


def test_a_revoked_key_is_refused_at_once_on_every_gateway_process(gw, env, sec_redis):
    second = GatewayProcess("gateway", env={**env, "GATEWAY_DISPATCHERS": "false"}).start()
    try:
        key = create_key(sec_redis, "client", "carol")
        on_first, on_second = client(gw, key), client(second, key)
        assert on_first.get("/api/tasks").status_code == 200  # cached in both processes
        assert on_second.get("/api/tasks").status_code == 200
        key_id = key.split("_")[1]
        revoked = client(gw, gw.api_key).delete(f"/api/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked"]
        statuses = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            statuses.append(on_second.get("/api/tasks").status_code)
            if statuses[-1] == 401:
                break
        assert statuses[-1] == 401 and statuses.count(200) <= 2, statuses
        assert on_first.get("/api/tasks").status_code == 401
    finally:
        second.stop()


def test_limits_answer_429_with_retry_after(gw, sec_redis, zidane_bytes, long_video):
    limited = client(gw, create_key(sec_redis, "client", "dave", rps=2, burst=2))
    codes = [limited.get("/api/tasks").status_code for _ in range(4)]
    assert codes[:2] == [200, 200] and 429 in codes
    refused = limited.get("/api/tasks")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "request rate of 2/s" in refused.json()["error"]["message"]

    one = client(gw, create_key(sec_redis, "client", "erin", tasks=1, videos=1))
    video = submit(one, "/api/detect/face/video", long_video, "v.avi", "video/x-msvideo")
    assert video.status_code == 202
    busy = submit(one, "/api/detect/face/image", zidane_bytes, wait="true")
    assert busy.status_code == 429 and busy.headers["retry-after"]
    assert "1 tasks in flight, its limit (1)" in busy.json()["error"]["message"]
    one.delete(f"/api/task/{video.json()['task_id']}")  # ending it frees the slot
    again = submit(one, "/api/detect/face/image", zidane_bytes, wait="true")
    assert again.status_code == 200 and again.json()["status"] == "succeeded"

    # One upload bigger than the key's byte limit could never be queued: 413, not a 429.
    small = client(gw, create_key(sec_redis, "client", "erin", bytes=len(long_video) - 1))
    too_big = submit(small, "/api/detect/face/video", long_video, "v.avi", "video/x-msvideo")
    assert too_big.status_code == 413 and "retry-after" not in too_big.headers
    assert "limit on upload bytes queued at once" in too_big.json()["error"]["message"]


def test_metrics_need_an_admin_and_docs_a_key(gw, sec_redis):
    guest = client(gw, create_key(sec_redis, "client", "frank"))
    assert guest.get("/metrics").status_code == 403
    assert client(gw, gw.api_key).get("/metrics").status_code == 200
    assert guest.get("/openapi.json").status_code == 200
    assert guest.get("/api/keys").status_code == 403  # managing keys is for admins


def test_the_console_logs_in_with_a_session_cookie(gw, sec_redis):
    key = create_key(sec_redis, "client", "grace")
    browser = httpx.Client(base_url=gw.url, timeout=30)
    assert browser.post("/api/session", json={"api_key": "pk_0_wrong"}).status_code == 401
    login = browser.post("/api/session", json={"api_key": key})
    assert login.status_code == 200 and login.json()["tenant"] == "grace"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=43200" in cookie
    token = browser.cookies["percept_session"]
    assert key not in token and key.split("_")[2] not in token  # a session, not the key
    assert browser.get("/api/tasks").status_code == 200  # the cookie alone
    session = browser.get("/api/session").json()
    assert session["role"] == "client"
    signout = {"X-CSRF-Token": session["csrf_token"]}  # state changes need the session's token
    assert browser.delete("/api/session", headers=signout).status_code == 204
    browser.cookies.clear()
    assert browser.get("/api/tasks").status_code == 401
    # Signing out ends the session itself: a copy of the cookie is refused too.
    replay = httpx.Client(base_url=gw.url, timeout=30, cookies={"percept_session": token})
    refused = replay.get("/api/tasks")
    assert refused.status_code == 401 and "session has ended" in refused.json()["error"]["message"]


def test_revoking_a_key_ends_its_console_sessions(gw, sec_redis):
    key = create_key(sec_redis, "client", "hedy")
    browser = httpx.Client(base_url=gw.url, timeout=30)
    assert browser.post("/api/session", json={"api_key": key}).status_code == 200
    assert browser.get("/api/tasks").status_code == 200
    key_id = key.split("_")[1]
    assert client(gw, gw.api_key).delete(f"/api/keys/{key_id}").status_code in (200, 204)
    assert browser.get("/api/tasks").status_code == 401


def test_keys_are_managed_from_the_command_line(gw, sec_redis):
    def keys(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "keys", *args],
            env={**os.environ, "REDIS_URL": sec_redis,
                 "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    made = keys("create", "--name", "ci", "--tenant", "heidi", "--rps", "5", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["info"]["limits"]["rps"] == 5 and created["info"]["role"] == "client"
    assert client(gw, created["key"]).get("/api/tasks").status_code == 200
    listed = json.loads(keys("list", "--json").stdout)
    assert created["info"]["id"] in {k["id"] for k in listed}
    assert all("key" not in k for k in listed)  # only hashes are stored: never shown again
    stored = redis.Redis.from_url(sec_redis).keys("percept:key:*")
    assert created["key"].encode() not in b"".join(stored)
    assert keys("revoke", created["info"]["id"]).returncode == 0
    assert client(gw, created["key"]).get("/api/tasks").status_code == 401
    assert keys("revoke", "ffffffff").returncode == 1
    before = len(listed)
    for bad in (["--rps", "inf"], ["--rps", "nan"], ["--rps", "-5"], ["--tasks", "-1"]):
        refused = keys("create", "--name", "bad", *bad)
        assert refused.returncode == 2 and "must be a number in" in refused.stderr, bad
    assert len(json.loads(keys("list", "--json").stdout)) == before  # nothing stored


def test_key_limits_and_bodies_are_checked_before_anything_is_stored(gw, sec_redis):
    admin = client(gw, gw.api_key)
    before = len(admin.get("/api/keys").json()["keys"])
    for limits in ({"rps": "inf"}, {"rps": 1e308}, {"rps": -1}, {"bytes": "NaN"}, {"rpss": 1}):
        refused = admin.post("/api/keys", json={"name": "x", "tenant": "t", "limits": limits})
        assert refused.status_code == 422, (limits, refused.text)
        assert refused.json()["error"]["fields"], refused.text  # names the field
    slow = admin.post("/api/keys", json={"name": "x", "tenant": "t", "limits": {"rps": 1e-20}})
    assert slow.status_code == 422 and "at least 0.001" in slow.json()["error"]["message"]
    misplaced = admin.post("/api/keys", json={"name": "x", "tenant": "t", "rps": 1})
    assert misplaced.status_code == 422 and "rps" in misplaced.json()["error"]["message"]
    listing = admin.get("/api/keys")
    assert listing.status_code == 200 and len(listing.json()["keys"]) == before
    # A client key is told it may not, before anything about its body.
    guest = client(gw, create_key(sec_redis, "client", "ivan"))
    assert guest.post("/api/keys", json={"name": "x"}).status_code == 403

    # A key an older version stored with limits out of range still lists and works.
    r = redis.Redis.from_url(sec_redis, decode_responses=True)
    legacy = "pk_01dc0de0_legacy-secret"
    sha = hashlib.sha256(legacy.encode()).hexdigest()
    r.hset(f"percept:key:{sha}", mapping={"id": "01dc0de0", "name": "old", "tenant": "t",
                                           "role": "client", "rps": "inf", "tasks": "inf"})  # fmt: skip
    r.hset("percept:keys", "01dc0de0", sha)
    assert admin.get("/api/keys").status_code == 200
    assert client(gw, legacy).get("/api/tasks").status_code == 200


def test_only_uploads_may_send_big_bodies(gw):
    big = b"x" * (2 << 20)
    multipart = {"Content-Type": "multipart/form-data; boundary=xyz"}
    anonymous = httpx.Client(base_url=gw.url, timeout=30)
    refused = anonymous.post("/api/session", content=big, headers=multipart)  # no key needed
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_large"
    admin = client(gw, gw.api_key)
    assert admin.post("/api/collections", content=big, headers=multipart).status_code == 413


def test_auth_can_be_turned_off_and_says_so(env, zidane_bytes):
    open_gateway = GatewayProcess("gateway", env={**env, "GATEWAY_AUTH": "disabled"}).start()
    try:
        assert open_gateway.api_key is None
        response = submit(client(open_gateway, None), "/api/detect/face/image", zidane_bytes)
        assert response.status_code == 202
        assert "GATEWAY_AUTH=disabled" in open_gateway.log()
    finally:
        open_gateway.stop()


def test_keys_made_without_a_tenant_share_nothing(gw, sec_redis, bus_bytes, zidane_bytes):
    """Isolation by default: a key created without naming a tenant (by the admin
    API or by `python -m gateway keys create`) gets one of its own, so two such
    keys never read each other's tasks, inputs or collections."""
    admin = client(gw, gw.api_key)
    made = admin.post("/api/keys", json={"name": "app-one", "role": "client"})
    assert made.status_code == 201, made.text
    one_info = made.json()["info"]
    cli = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "create", "--name", "app-two", "--json"],
        env={**os.environ, "REDIS_URL": sec_redis,
             "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    two_info = json.loads(cli.stdout)["info"]
    assert one_info["tenant"] == f"key-{one_info['id']}"
    assert two_info["tenant"] == f"key-{two_info['id']}"
    one, two = client(gw, made.json()["key"]), client(gw, json.loads(cli.stdout)["key"])

    # Tasks: the record, its input, the list, cancelling.
    task_id = submit(one, "/api/detect/object/image", bus_bytes, wait="true").json()["task_id"]
    assert one.get(f"/api/task/{task_id}/input").content == bus_bytes
    for path in (f"/api/task/{task_id}", f"/api/task/{task_id}/input"):
        assert two.get(path).status_code == 404, path
    assert two.delete(f"/api/task/{task_id}").status_code == 404
    assert two.get("/api/tasks").json()["tasks"] == []
    assert [t["task_id"] for t in one.get("/api/tasks").json()["tasks"]] == [task_id]

    # Collections: the same name is two collections; neither key reaches the other's.
    assert one.post("/api/collections", json={"collection_id": "staff"}).status_code == 201
    assert two.get("/api/collections/staff").status_code == 404
    assert two.delete("/api/collections/staff").status_code == 404
    enroll = two.post(
        "/api/collections/staff/faces",
        files={"file": ("z.jpg", zidane_bytes, "image/jpeg")},
        data={"subject": "intruder"},
    )
    assert enroll.status_code == 404
    assert two.get("/api/collections").json()["collections"] == []
    assert [c["collection_id"] for c in one.get("/api/collections").json()["collections"]] == [
        "staff"
    ]
    assert one.get("/api/collections/staff").json()["face_count"] == 0
    # Sharing is asked for by naming the tenant.
    shared = client(gw, create_key(sec_redis, "client", one_info["tenant"]))
    assert shared.get("/api/collections/staff").status_code == 200
    assert shared.get(f"/api/task/{task_id}").status_code == 200
