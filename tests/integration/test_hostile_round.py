"""A hostile user against a gateway with the toy backend declared (tests/toy/):
odd uploads and options on the declared kind's route, another tenant's ids."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import httpx
import numpy as np
import percept
import pytest

from tests.conftest import encode
from tests.redis_cluster import RedisCluster3
from tests.support import ROOT, GatewayProcess, create_key, free_port, fresh_db
from tests.toy import stack as toy_stack

pytestmark = pytest.mark.slow

PATH = "/api/detect/shape/image"
MAX = 1024 * 1024


@pytest.fixture(scope="module")
def toy_path(tmp_path_factory) -> str:
    return toy_stack.pythonpath(tmp_path_factory.mktemp("toy-gen"))


@pytest.fixture(scope="module")
def toy(toy_path):
    server = toy_stack.server(toy_path)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_db(redis_url):
    return fresh_db(redis_url, 11)


@pytest.fixture(scope="module")
def gateway(toy, toy_path, redis_db):
    env = toy_stack.gateway_env(toy, toy_path, redis_db, GATEWAY_MAX_IMAGE_BYTES=str(MAX))
    server = GatewayProcess("gateway", env=env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(gateway):
    with gateway.client(timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def picture() -> bytes:
    return encode(np.full((300, 400, 3), 200, np.uint8), ".png")


def post(http, content, headers=None, **params):
    return http.post(
        PATH, files={"file": ("x.png", content, "image/png")}, params=params, headers=headers
    )


@pytest.mark.parametrize(("content", "status", "says"), [
    (b"", 422, "empty"),
    (b"hello world" * 10, 422, "not a recognised image"),
    ("truncated", 422, "truncated"),
])  # fmt: skip
def test_a_bad_upload_to_the_declared_route_is_refused_at_once(
    http, picture, content, status, says
):
    content = picture[:60] if content == "truncated" else content
    started = time.monotonic()
    refused = post(http, content)
    assert (refused.status_code, time.monotonic() - started < 2) == (status, True)
    assert says in refused.json()["error"]["message"]
    assert post(http, picture, wait="true").status_code == 200  # and it goes on serving


@pytest.mark.parametrize("length", [False, True])
def test_an_upload_over_the_limit_is_refused_before_it_is_read(http, picture, length):
    head = (
        b'--xx\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + picture[:100]
    )
    tail, block, blocks = b"\r\n--xx--\r\n", b"\0" * 65536, 50 * 16  # 50 MiB, never in memory

    def body():
        yield head
        yield from (block for _ in range(blocks))
        yield tail

    headers = {"Content-Type": "multipart/form-data; boundary=xx"}
    if length:
        headers["Content-Length"] = str(len(head) + blocks * len(block) + len(tail))
    started = time.monotonic()
    refused = http.post(PATH, content=body(), headers=headers)
    assert (refused.status_code, time.monotonic() - started < 5) == (413, True)
    assert post(http, picture, wait="true").status_code == 200


@pytest.mark.parametrize("value", ["3", "-1", "abc", "1.5", "", "99999999999999999999"])
def test_an_out_of_range_option_of_the_declared_kind_is_a_422_naming_it(http, picture, value):
    refused = post(http, picture, max_shapes=value)
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"] == ["max_shapes"]


def test_another_tenants_task_is_not_there(http, gateway, picture, redis_db):
    mine = {"Authorization": f"Bearer {create_key(redis_db, role='client', tenant='ta')}"}
    theirs = {"Authorization": f"Bearer {create_key(redis_db, role='client', tenant='tb')}"}
    task_id = post(http, picture, headers=mine).json()["task_id"]
    for method, url in [
        ("GET", f"/api/task/{task_id}"),
        ("DELETE", f"/api/task/{task_id}"),
        ("GET", f"/api/task/{task_id}/events"),
        ("GET", f"/api/task/{task_id}/input"),
    ]:
        assert http.request(method, url, headers=theirs).status_code == 404, (method, url)
    assert http.get("/api/tasks", headers=theirs).json()["tasks"] == []
    assert (
        http.get("/api/events", headers=theirs, params={"task_id": task_id}).json()["events"] == []
    )
    assert http.get(f"/api/task/{task_id}", headers=mine).status_code == 200


def test_another_tenants_webhook_is_not_there(http, redis_db):
    mine = {"Authorization": f"Bearer {create_key(redis_db, role='client', tenant='wa')}"}
    theirs = {"Authorization": f"Bearer {create_key(redis_db, role='client', tenant='wb')}"}
    made = http.post(
        "/api/webhooks",
        json={"url": "http://127.0.0.1:9/h", "types": ["task.succeeded"]},
        headers=mine,
    )
    sub = made.json()["id"]
    for method, url in [
        ("GET", f"/api/webhooks/{sub}"),
        ("POST", f"/api/webhooks/{sub}/rotate"),
        ("GET", f"/api/webhooks/{sub}/deliveries"),
        ("POST", f"/api/webhooks/{sub}/test"),
        ("DELETE", f"/api/webhooks/{sub}"),
    ]:
        assert http.request(method, url, headers=theirs).status_code == 404, (method, url)
    assert http.get("/api/webhooks", headers=theirs).json() == []
    assert http.get(f"/api/webhooks/{sub}", headers=mine).status_code == 200


def test_the_sdk_takes_what_the_gateway_takes_for_a_declared_kind(gateway, picture):
    """0 means "the default" for max_shapes (zero_means_unset): the gateway takes
    it over REST, so the SDK's local check must not refuse it."""
    with percept.Client(gateway.url, api_key=gateway.api_key) as client:
        task = client.wait(client.submit("shape_detection", picture, max_shapes=0))
        assert task.status == "succeeded" and len(task.result.items) == 2
        with pytest.raises(percept.InvalidInput, match=r"max_shapes is 3: it must be in \[1, 2\]"):
            client.submit("shape_detection", picture, max_shapes=3)


def test_an_unknown_kind_names_the_kinds_there_are(gateway, picture):
    client = percept.Client(gateway.url, api_key=gateway.api_key)
    with client, pytest.raises(ValueError) as refused:
        client.submit("nope_kind", picture)
    message = str(refused.value)
    assert "shape_detection" in message and "KindInfo(" not in message, message


DECLARATION = """
from toy.v1 import toy_pb2
from gateway.declare import backend, kind
B = backend("rogue", toy_pb2.DESCRIPTOR.services_by_name["ToyService"], targets="127.0.0.1:1")
kind({kind!r}, "image", B, "FindShapes", {path!r}, "rogue")
"""


@pytest.mark.parametrize(("kind", "path", "says"), [
    # POST /api/webhooks creates subscriptions: the kind took it over, silently
    ("rogue", "/api/webhooks", "/api/webhooks"),
    ("rogue", "/api/collections/c1/faces", "/api/collections/"),  # enrolling there
    ("rogue", "api/rogue", "api/rogue"),  # no leading slash: a route no request reaches
    ("rogue", "/api/rogue/{task_id}", "{task_id}"),  # a template, never filled in
    ("face detection/../x", "/api/rogue/image", "face detection"),  # a kind name for labels, filters
])  # fmt: skip
def test_a_declaration_that_would_break_a_route_stops_the_start(
    tmp_path, toy_path, redis_db, kind, path, says
):
    (tmp_path / "rogue_declaration.py").write_text(DECLARATION.format(kind=kind, path=path))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join((toy_path, str(tmp_path))),
        "REDIS_URL": redis_db,
        "GATEWAY_DECLARATIONS": "rogue_declaration",
    }
    started = subprocess.run(
        [sys.executable, "-m", "gateway", "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert started.returncode != 0, started.stderr[-2000:]
    last = started.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError") and says in last, last


def test_a_gateway_whose_cluster_is_down_answers_503_as_with_one_redis(tmp_path):
    """With redis+cluster://, every node gone: the routes said 500 internal
    (and /api/events dropped the connection), where a plain Redis down is a
    503 store_unavailable with Retry-After that clients retry."""
    cluster = RedisCluster3(tmp_path).start()
    nowhere = f"127.0.0.1:{free_port()}"
    gateway = GatewayProcess(
        "gateway",
        env={
            "REDIS_URL": cluster.url,
            "GATEWAY_AUTH": "disabled",
            "GATEWAY_FACE_TARGETS": nowhere,
            "GATEWAY_OBJECT_TARGETS": nowhere,
        },
    ).start()
    try:
        with gateway.client(timeout=30) as http:
            assert http.get("/api/tasks").status_code == 200
            cluster.stop()
            for url in ("/api/tasks", "/api/events", "/api/task/abc"):
                answer = http.get(url)
                assert answer.status_code == 503, (url, answer.text)
                assert answer.json()["error"]["code"] == "store_unavailable"
                assert answer.headers["Retry-After"]
    finally:
        gateway.stop()
        cluster.stop()


def test_an_idempotency_key_is_the_tenants_own(http, picture, redis_db):
    """Another tenant sending the same Idempotency-Key gets a task of its own,
    never the first tenant's task (nor a 409 that tells the key is taken)."""
    mine = {"Authorization": f"Bearer {create_key(redis_db, role='client', tenant='ia')}"}
    theirs = {"Authorization": f"Bearer {create_key(redis_db, role='client', tenant='ib')}"}
    first = post(http, picture, headers={**mine, "Idempotency-Key": "same-key-1"})
    again = post(http, picture, headers={**theirs, "Idempotency-Key": "same-key-1"})
    assert (first.status_code, again.status_code) == (202, 202), again.text
    assert again.json()["task_id"] != first.json()["task_id"]
    assert http.get(f"/api/task/{again.json()['task_id']}", headers=theirs).status_code == 200


def test_the_event_stream_carries_no_other_tenants_tasks(gateway, picture, redis_db):
    mine = {"Authorization": f"Bearer {create_key(redis_db, role='client', tenant='sa')}"}
    theirs = {"Authorization": f"Bearer {create_key(redis_db, role='client', tenant='sb')}"}
    seen: list[str] = []
    with (
        gateway.client(timeout=httpx.Timeout(5, read=3)) as http,
        http.stream("GET", "/api/events/stream", headers=theirs) as stream,
    ):
        task_id = post(http, picture, headers=mine, wait="true").json()["task_id"]
        with contextlib.suppress(httpx.ReadTimeout):
            for line in stream.iter_lines():
                seen.append(line)
    assert not any(task_id in line for line in seen), seen
