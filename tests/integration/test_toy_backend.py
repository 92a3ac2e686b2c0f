"""A third backend added by declaration alone: the toy gRPC service of
tests/toy/ (its proto, its server, one declaration module named in
GATEWAY_DECLARATIONS) reached end to end through REST (queued and simple
mode), the task's SSE stream, the console's task page in a real browser and
the SDK, while no file of the gateway, the console or the SDK names it.

The toy answers two shapes for any image, each with a box, a label, a score,
two keypoints and a mask (a diamond); the first is on track 7."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import percept
import pytest

from tests.conftest import encode
from tests.console_support import assert_boxes_drawn_at, console_url, screenshot
from tests.support import (
    ROOT,
    GatewayProcess,
    fresh_db,
    task_events,
    wait_done,
)
from tests.toy import stack as toy_stack

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

KIND, PATH = "shape_detection", "/api/detect/shape/image"
WIDTH, HEIGHT = 400, 300
# What the toy finds in any WIDTH x HEIGHT image (tests/toy/server.py), as the gateway says it.
SQUARE = {"left": 40.0, "top": 30.0, "right": 180.0, "bottom": 165.0}
CIRCLE = {"left": 220.0, "top": 90.0, "right": 360.0, "bottom": 255.0}


@pytest.fixture(scope="module")
def toy_path(tmp_path_factory) -> str:
    return toy_stack.pythonpath(tmp_path_factory.mktemp("toy-gen"))


@pytest.fixture(scope="module")
def toy(toy_path):
    server = toy_stack.server(toy_path)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(toy, toy_path, redis_url):
    env = toy_stack.gateway_env(toy, toy_path, fresh_db(redis_url, 10), GATEWAY_TOY_CONCURRENCY="2")
    server = GatewayProcess("gateway", env=env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(gateway):
    with gateway.client(timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def picture() -> bytes:
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rgb[:, :, 2] = np.linspace(
        60, 200, WIDTH, dtype=np.uint8
    )  # a blue ramp: a picture, not a blank
    return encode(rgb)


def submit(http, picture: bytes, **params) -> httpx.Response:
    return http.post(PATH, files={"file": ("toy.png", picture, "image/png")}, params=params)


def assert_toy_result(result: dict) -> None:
    """The toy's two shapes, every part of the generic shape there."""
    assert (result["image_width"], result["image_height"]) == (WIDTH, HEIGHT)
    square, circle = result["items"]
    assert square["box"] == pytest.approx(SQUARE) and circle["box"] == pytest.approx(CIRCLE)
    assert (square["label"], square["score"]) == ("square", pytest.approx(0.93))
    assert (circle["label"], circle["score"]) == ("circle", pytest.approx(0.71))
    assert square["keypoints"] == [
        {"name": "centre", "x": 110.0, "y": 97.5, "score": pytest.approx(0.9)},
        {"name": "top", "x": 110.0, "y": 30.0, "score": pytest.approx(0.8)},
    ]
    assert square["mask"] == [[110.0, 30.0], [180.0, 97.5], [110.0, 165.0], [40.0, 97.5]]
    assert square["track_id"] == 7 and "track_id" not in circle


def test_the_toy_is_declared_and_documented(http):
    kinds = {k["kind"]: k for k in http.get("/api/kinds").json()["kinds"]}
    toy = kinds[KIND]
    assert toy["path"] == PATH and toy["backend"] == "toy"
    assert toy["rpc"] == "toy.v1.ToyService/FindShapes"
    # its option, with the proto's range, default and comment
    shapes = toy["options"]["max_shapes"]
    assert (shapes["minimum"], shapes["maximum"], shapes["default"]) == (1, 2, 2)
    assert "Shapes to return" in shapes["description"]
    assert {"face_detection", "object_detection"} <= kinds.keys()  # the built-ins still there
    spec = http.get("/openapi.json").json()
    assert PATH in spec["paths"]
    assert "GenericImageResult" in spec["components"]["schemas"]
    ready = http.get("/readyz").json()["checks"]
    assert ready["toy"] is True  # its replica answers SERVING


def test_the_replica_monitor_watches_the_toys_replica(http, toy):
    """Probed as the built-in replicas are: listed for the console, serving."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replicas = http.get("/api/replicas").json()
        toys = [r for r in replicas["replicas"] if r["backend"] == "toy"]
        if toys and toys[0]["state"] == "serving":
            break
        time.sleep(0.2)  # the monitor probes every GATEWAY_REPLICA_PROBE_S
    assert [(r["address"], r["state"]) for r in toys] == [(toy.address, "serving")]
    assert replicas["targets"]["toy"] == toy.address


def test_rest_queued_and_simple_mode(http, picture):
    queued = submit(http, picture)
    assert queued.status_code == 202, queued.text
    task = wait_done(http, queued.json()["task_id"])
    assert task["status"] == "succeeded" and task["kind"] == KIND, task
    assert_toy_result(task["result"])
    simple = submit(http, picture, wait="true")
    assert simple.status_code == 200, simple.text
    assert_toy_result(simple.json()["result"])
    # an option the proto bounds, checked at the gateway from the toy's proto alone
    assert (
        submit(http, picture, max_shapes="1", wait="true").json()["result"]["items"][0]["label"]
        == "square"
    )
    refused = submit(http, picture, max_shapes="3")
    assert refused.status_code == 422 and refused.json()["error"]["fields"] == ["max_shapes"]
    listed = http.get("/api/tasks", params={"kind": KIND}).json()["tasks"]
    assert {t["task_id"] for t in listed} >= {task["task_id"], simple.json()["task_id"]}
    metrics = http.get("/metrics").text
    assert f'kind="{KIND}",media="image",status="succeeded"' in metrics


def test_webhooks_filter_on_the_toys_kind(http):
    hook = {"url": "http://127.0.0.1:9/toy", "types": ["task.succeeded"]}  # deleted unused
    created = http.post("/api/webhooks", json={**hook, "kinds": [KIND]})
    assert created.status_code == 201, created.text
    assert http.delete(f"/api/webhooks/{created.json()['id']}").status_code == 204
    unknown = http.post("/api/webhooks", json={**hook, "kinds": ["no_such_kind"]})
    assert unknown.status_code == 422 and KIND in unknown.json()["error"]["message"]


def test_sse_stream_ends_with_the_result(gateway, http, picture):
    task_id = submit(http, picture).json()["task_id"]
    events = list(task_events(gateway, task_id))
    name, final = events[-1]
    assert name == "status" and final["status"] == "succeeded"
    assert_toy_result(final["task"]["result"])


def test_console_task_page_draws_boxes_keypoints_and_masks(gateway, http, watched, picture):
    task = wait_done(http, submit(http, picture).json()["task_id"])
    page = watched.page
    page.goto(console_url(gateway.url, f"#/task/{task['task_id']}"))
    stage = page.locator(".viewer .stage")
    page.wait_for_function("document.querySelector('.viewer .stage img')?.naturalWidth > 0")
    assert_boxes_drawn_at(page, ".viewer .stage", task["result"]["items"], WIDTH, HEIGHT)
    groups = stage.locator("g.item")
    expect(groups).to_have_count(2)
    expect(groups.nth(0).locator("text")).to_have_text("square 93% · track 7")
    expect(groups.nth(1).locator("text")).to_have_text("circle 71%")
    # keypoints at their pixels, named
    points = groups.nth(0).locator("circle.keypoint")
    expect(points).to_have_count(2)
    assert [
        (float(points.nth(i).get_attribute("cx")), float(points.nth(i).get_attribute("cy")))
        for i in range(2)
    ] == [(110.0, 97.5), (110.0, 30.0)]
    expect(points.nth(0).locator("title")).to_have_text("centre 90%")
    # the masks: one polygon each, at the API's points
    masks = stage.locator("polygon.mask")
    expect(masks).to_have_count(2)
    assert masks.nth(0).get_attribute("points") == "110,30 180,97.5 110,165 40,97.5"
    expect(page.locator("#task-facts [data-fact=attempts]")).to_have_text("1")
    screenshot(page, "generic")


def test_console_try_it_runs_the_toy_with_its_option(gateway, watched, picture, tmp_path):
    path = tmp_path / "toy.png"
    path.write_bytes(picture)
    page = watched.page
    page.goto(console_url(gateway.url, "#/try"))
    page.select_option("select[name=kind]", KIND)  # listed from /api/kinds
    page.set_input_files("input[name=file]", str(path))
    page.fill("#try-options input[name=max_shapes]", "1")  # its option, from the toy's proto
    page.click("#try-form button[type=submit]")
    expect(page.locator("#try-status")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#try-result .stage g.item")).to_have_count(1)
    expect(page.locator("#try-result .stage polygon.mask")).to_have_count(1)
    expect(page.locator("#try-result .stage text")).to_have_text("square 93% · track 7")


def test_toy_backend_through_sdk(gateway, picture, tmp_path):
    path = tmp_path / "toy.png"
    path.write_bytes(picture)
    with percept.Client(gateway.url, api_key=gateway.api_key) as client:
        assert KIND in [k.kind for k in client.kinds()]
        task = client.wait(client.submit(KIND, path))
    result = task.result
    assert isinstance(result, percept.GenericResult)
    assert (result.image_width, result.image_height) == (WIDTH, HEIGHT)
    square, circle = result.items
    assert (square.label, circle.label) == ("square", "circle")
    assert square.box.left == pytest.approx(SQUARE["left"])
    assert [k.name for k in square.keypoints] == ["centre", "top"]
    assert len(square.mask) == 4 and square.track_id == 7 and not circle.track_id
    assert_toy_result(result.raw)


def test_the_toy_touches_no_file_of_the_gateway_console_or_sdk():
    """Nothing outside tests/ names the toy: it is known by its declaration only."""
    named = subprocess.run(
        ["git", "grep", "-l", "-i", "-e", "toy.v1", "-e", "tests.toy", "-e", KIND, "--",
         "gateway", "clients", "percept_runtime", "scripts", "deploy"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert named.stdout == "", named.stdout
    assert Path(ROOT / "tests/toy/declaration.py").exists()
