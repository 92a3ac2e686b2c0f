"""The console in a real browser (Debian's chromium driven by Playwright)
against a real stack: a face replica, object replicas found through a DNS name
whose answers the test changes, a gateway, and a Redis of the test's own.

Every page must load with no console error and no failed request; the
numbers must move while tasks run; a killed replica must turn red within 5 s
and a new one appear by itself; boxes must be drawn at the pixels the API
returned; a video's progress must advance frame by frame and its cancel
button cancel it; the console must work the same under a path prefix; and the
task list is timed with 100,000 tasks in Redis (printed, never asserted).

CONSOLE_SCREENSHOTS=dir saves the pages' screenshots there (`make
console-screenshots` writes docs/)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from harness.faces import FACE_PATCH
from harness.videos import moving_patch_video
from tests.conftest import encode
from tests.console_support import (
    PrefixProxy,
    Watched,
    assert_boxes_drawn_at,
    console_url,
    screenshot,
    signed_in,
    started,
)
from tests.integration.conftest import DEMO_MODEL
from tests.netlab import TinyDNS
from tests.support import GatewayProcess, ServerProcess, create_key, free_port, wait_done

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

OBJECTS_NAME = "objects.percept.test"
FORGET_S = 8
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


# --- the stack ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_port():
    """A redis-server of this module's own (no persistence), stopped at the end."""
    port = free_port()
    subprocess.run(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--daemonize", "yes", "--pidfile", f"/tmp/percept-console-redis-{port}.pid"],
        check=True, capture_output=True,
    )  # fmt: skip
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    yield port
    with contextlib.suppress(redis.ConnectionError):
        client.shutdown(nosave=True)


@pytest.fixture(scope="module")
def dns():
    server = TinyDNS(OBJECTS_NAME)
    yield server
    server.close()


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


def object_replica(ip: str, port: int, onnx_cache) -> ServerProcess:
    server = ServerProcess(
        "object_service",
        env={"OBJECT_MODEL": str(DEMO_MODEL), "OBJECT_WORKERS": "1", "OBJECT_THREADS": "1",
             "OBJECT_CACHE_DIR": str(onnx_cache), "OBJECT_REPLICA_NAME": f"object-{ip}"},
        args=["--host", ip],
    )  # fmt: skip
    server.host, server.port = ip, port
    return server


@pytest.fixture(scope="module")
def face():
    server = ServerProcess("face_service", env={"FACE_WORKERS": "1"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def objects(dns, onnx_cache):
    """Object replicas on 127.0.0.2 and 127.0.0.3, one port, one DNS name;
    only the first runs (and is in DNS) at the start."""
    port = free_port()
    replicas = [object_replica(f"127.0.0.{i}", port, onnx_cache) for i in (2, 3)]
    replicas[0].start()
    dns.addresses = [replicas[0].host]
    yield replicas
    for replica in replicas:
        if getattr(replica, "proc", None) is not None:
            replica.stop()


@pytest.fixture(scope="module")
def gateway(face, objects, dns, redis_port):
    server = GatewayProcess(
        "gateway",
        env={
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "GATEWAY_FACE_TARGETS": face.address,
            "GATEWAY_OBJECT_TARGETS": f"dns://127.0.0.1:{dns.port}/{OBJECTS_NAME}:{objects[0].port}",
            "GATEWAY_REPLICA_FORGET_S": str(FORGET_S),
            "GATEWAY_WAIT_TIMEOUT_S": "60",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(gateway):
    with gateway.client(timeout=60) as client:  # with its admin key
        yield client


# --- the browser ----------------------------------------------------------------------


# --- load -----------------------------------------------------------------------------


class Load:
    """Tasks submitted in the background (simple mode), bounded in count and time."""

    def __init__(
        self, gateway, uploads: list[tuple[str, bytes]], most: int = 400, seconds: float = 120
    ):
        self.gateway, self.uploads, self.most, self.seconds = gateway, uploads, most, seconds
        self.done = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with self.gateway.client(timeout=60) as client:
            while not self.stop.is_set() and time.monotonic() < deadline and self.done < self.most:
                path, data = random.choice(self.uploads)
                try:
                    client.post(path, params={"wait": "true"}, files={"file": ("x.png", data)})
                except httpx.HTTPError:
                    time.sleep(0.1)
                self.done += 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=90)


@pytest.fixture(scope="module")
def face_png(astronaut) -> bytes:
    return encode(np.ascontiguousarray(astronaut[0:260, 100:360]))


@pytest.fixture(scope="module")
def shapes_png() -> bytes:
    from object_service import synthetic

    image, _shapes = synthetic.make_scene(np.random.default_rng(3), 640, 480, (3, 4))
    return encode(image)


def submit(http, path: str, data: bytes, **fields) -> dict:
    response = http.post(path, files={"file": ("upload.png", data)}, data=fields)
    assert response.status_code in (200, 202), response.text
    return response.json()


# --- drawing checks -------------------------------------------------------------------


# --- tests ----------------------------------------------------------------------------


def test_every_page_loads_with_no_error_and_no_failed_request(gateway, http, watched, face_png):
    task = submit(http, "/api/detect/face/image", face_png, landmarks="true")
    task = wait_done(http, task["task_id"])
    page = watched.page
    page.goto(gateway.url + "/")  # the gateway's root leads to the console
    expect(page).to_have_url(console_url(gateway.url))
    for fragment, ready in [
        ("#/", "[data-kind='face_detection:image'] [data-stat='rate'] .value"),
        ("#/replicas", "tr[data-state='serving']"),
        ("#/tasks", f"tr[data-task='{task['task_id']}']"),
        (f"#/task/{task['task_id']}", ".stage rect.box"),
        ("#/try", "#try-options label"),
        ("#/webhooks", "#webhook-table"),
        ("#/sources", "#source-table"),
    ]:
        page.goto(console_url(gateway.url, fragment))
        expect(page.locator(ready).first).to_be_visible()
        expect(page.locator("#live")).to_contain_text("updated")
    # every request stayed under the console's own origin and prefix
    assert not [u for u in watched.requests if not u.startswith(gateway.url + "/")]
    # the console's files are counted under one route in the HTTP metrics
    metrics = http.get("/metrics").text
    assert (
        'percept_gateway_http_requests_total{method="GET",route="/console",status="200"}' in metrics
    )


def test_overview_counts_and_replica_rows_change_while_tasks_run(
    gateway, watched, face_png, shapes_png
):
    page = watched.page
    page.goto(console_url(gateway.url, "#/"))
    succeeded = page.locator("#totals [data-stat='succeeded'] .value")
    face_rate = page.locator("[data-kind='face_detection:image'] [data-stat='rate'] .sub")
    expect(succeeded).not_to_have_text("–")
    before_total, before_rate = succeeded.inner_text(), face_rate.inner_text()
    uploads = [("/api/detect/face/image", face_png), ("/api/detect/object/image", shapes_png)]
    with Load(gateway, uploads):
        expect(succeeded).not_to_have_text(before_total, timeout=30_000)
        expect(face_rate).not_to_have_text(before_rate, timeout=30_000)
        screenshot(page, "overview")
        page.goto(console_url(gateway.url, "#/replicas"))
        served = page.locator("tr[data-state='serving'] td[data-field='served']")
        expect(served.first).to_be_visible()
        first = [served.nth(i).inner_text() for i in range(served.count())]
        expect(served.first).not_to_have_text(first[0], timeout=30_000)
        expect(served.last).not_to_have_text(first[-1], timeout=30_000)
        screenshot(page, "replicas")


def test_try_it_draws_the_boxes_at_the_pixels_the_api_returned(
    gateway, http, watched, tmp_path, astronaut, shapes_png
):
    page = watched.page
    photo = tmp_path / "astronaut.png"
    photo.write_bytes(encode(astronaut))
    scene = tmp_path / "shapes.png"
    scene.write_bytes(shapes_png)
    for backend, path, options in [
        ("face", photo, {"return_landmarks": True}),
        ("object", scene, {}),
    ]:
        page.goto(console_url(gateway.url, "#/try"))
        page.select_option("select[name=kind]", f"{backend}_detection")
        page.set_input_files("input[name=file]", str(path))
        if backend == "object":  # out of the proto's range: the form says so, and sends nothing
            assert_refused_in_the_form(page, "iou_threshold", "0", "more than 0")
            assert_refused_in_the_form(page, "max_detections", "1001", "less than or equal to")
            page.fill("#try-options input[name=max_detections]", "0")  # 0: the default
            page.fill("#try-options input[name=iou_threshold]", "0.5")
        for name in options:
            page.check(f"#try-options input[name={name}]")
        page.click("#try-form button[type=submit]")
        expect(page.locator("#try-status")).to_have_text("succeeded", timeout=60_000)
        task_id = page.locator("#try-result").get_attribute("data-task")
        task = http.get(f"/api/task/{task_id}").json()
        items = task["result"]["faces" if backend == "face" else "detections"]
        assert items, f"the {backend} model found nothing in the test image"
        if backend == "face":
            assert task["options"] == {"return_landmarks": True}
            expect(page.locator("#try-result .landmarks polyline")).to_have_count(9 * len(items))
        page.wait_for_function(
            "document.querySelector('#try-result .stage img')?.complete"
        )  # the picture's own size is known before measuring
        assert_boxes_drawn_at(
            page, "#try-result .stage", items,
            task["result"]["image_width"], task["result"]["image_height"],
        )  # fmt: skip
        if backend == "object":
            labels = page.locator("#try-result .stage text").all_text_contents()
            assert labels[0] == f"{items[0]['label']} {round(items[0]['confidence'] * 100)}%"
            screenshot(page, "try")


def assert_refused_in_the_form(page, name: str, value: str, message: str) -> None:
    field = page.locator(f"#try-options input[name={name}]")
    field.fill(value)
    page.click("#try-form button[type=submit]")
    assert message in field.evaluate("f => f.validationMessage")
    assert page.locator("#try-form").evaluate("f => f.checkValidity()") is False  # not sent


def test_task_page_shows_timings_replica_and_the_uploaded_image_with_boxes(
    gateway, http, watched, face_png
):
    task = wait_done(
        http, submit(http, "/api/detect/face/image", face_png, landmarks="true")["task_id"]
    )
    page = watched.page
    page.goto(console_url(gateway.url, f"#/task/{task['task_id']}"))
    stage = page.locator(".viewer .stage")
    expect(stage.locator("img")).to_have_attribute("src", f"../api/task/{task['task_id']}/input")
    page.wait_for_function("document.querySelector('.viewer .stage img')?.naturalWidth > 0")
    natural = page.evaluate("document.querySelector('.viewer .stage img').naturalWidth")
    assert natural == task["result"]["image_width"]
    assert_boxes_drawn_at(
        page, ".viewer .stage", task["result"]["faces"],
        task["result"]["image_width"], task["result"]["image_height"],
    )  # fmt: skip
    facts = page.locator("#task-facts")
    expect(facts.locator("[data-fact=replica]")).to_have_text(task["replica"])
    expect(facts.locator("[data-fact=attempts]")).to_have_text("1")
    expect(facts.locator("[data-fact=ran]")).not_to_have_text("–")
    expect(page.locator("#cancel")).to_be_hidden()
    screenshot(page, "task")
    # the replica links to its row on the replicas page
    facts.locator("[data-fact=replica] a").click()
    expect(page.locator(f"tr[data-replica='{task['replica']}']")).to_be_visible()


def test_video_progress_advances_frame_by_frame_and_cancel_cancels_it(
    gateway, http, watched, tmp_path, astronaut
):
    video = tmp_path / "face.avi"
    moving_patch_video(
        video, np.ascontiguousarray(astronaut[FACE_PATCH]), n_frames=120, step=(3, 1)
    )
    page = watched.page
    page.goto(console_url(gateway.url, "#/try"))
    page.select_option("select[name=kind]", "face_detection")
    page.set_input_files("input[name=file]", str(video))
    expect(page.locator("#try-options input[name=frame_stride]")).to_be_visible()
    page.click("#try-form button[type=submit]")
    expect(page.locator("#try-status")).to_have_text("running", timeout=60_000)
    bar = page.locator("#try-result .progress")
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while len(set(seen)) < 4 and time.monotonic() < deadline:
        done = bar.get_attribute("data-done")
        if done:
            seen.append(int(done))
        time.sleep(0.05)
    steps = sorted(set(seen))
    assert len(steps) >= 4 and seen == sorted(seen), f"progress seen: {steps}"
    # each frame arrives as a row, the latest drawn (one face box)
    expect(page.locator("#try-result .frames tr[data-frame]").first).to_be_visible()
    assert page.locator("#try-result .frames tr[data-frame]").count() >= steps[-1] - 1
    task_id = page.locator("#try-result").get_attribute("data-task")
    # the task page follows the same video live, and cancels it
    page.click("#try-task-link")
    expect(page.locator("#task-facts")).to_be_visible()  # the task page, not the try page
    progress = page.locator(".viewer .progress")
    expect(progress).to_have_attribute("data-total", "120")
    first = int(progress.get_attribute("data-done") or 0)
    page.wait_for_function(
        f"Number(document.querySelector('.viewer .progress')?.dataset.done) > {first}"
    )
    screenshot(page, "video", full_page=False)
    page.click("#cancel")
    expect(page.locator("h1 .state")).to_have_text("cancelled", timeout=15_000)
    expect(page.locator("#cancel")).to_be_hidden()
    task = http.get(f"/api/task/{task_id}").json()
    assert task["status"] == "cancelled"
    assert 0 < task["progress"]["done"] < 120


def test_console_apis_answer_what_their_models_document(http, face_png, tmp_path, astronaut):
    from gateway.console.models import ReplicaList, Stats

    task = wait_done(http, submit(http, "/api/detect/face/image", face_png)["task_id"])
    stats = Stats.model_validate(http.get("/api/stats", params={"minutes": 5}).json())
    face = next(k for k in stats.kinds if k.id == "face_detection:image")
    assert len(face.series) == 5 and face.last_60m.succeeded >= 1
    assert face.last_60m.run_p50_ms is not None and face.last_60m.success_rate is not None
    from gateway.kinds import KINDS

    assert {k.id for k in stats.kinds} == {k.id for k in KINDS}  # every declared kind
    assert http.get("/api/stats", params={"minutes": 2}).status_code == 422
    replicas = ReplicaList.model_validate(http.get("/api/replicas").json())
    assert task["replica"] in {r.replica for r in replicas.replicas if r.state == "serving"}
    # the upload, byte for byte, for the task page to draw on
    image = http.get(f"/api/task/{task['task_id']}/input")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == face_png
    video = tmp_path / "short.avi"
    moving_patch_video(video, np.ascontiguousarray(astronaut[FACE_PATCH]), n_frames=3)
    response = http.post(
        "/api/detect/face/video", files={"file": ("short.avi", video.read_bytes())}
    )
    missing = http.get(f"/api/task/{response.json()['task_id']}/input")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "input_not_kept"
    assert http.get(f"/api/task/{'0' * 32}/input").status_code == 404


# --- a path prefix --------------------------------------------------------------------


def test_the_console_works_the_same_under_a_path_prefix(
    face, objects, dns, redis_port, browser, tmp_path, shapes_png
):
    prefixed = GatewayProcess(
        "gateway",
        env={
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "GATEWAY_FACE_TARGETS": face.address,
            "GATEWAY_OBJECT_TARGETS": f"dns://127.0.0.1:{dns.port}/{OBJECTS_NAME}:{objects[0].port}",
            "GATEWAY_ROOT_PATH": "/percept",
        },
    )
    started(prefixed)
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    watched = Watched(context.new_page())
    page = watched.page
    try:
        with PrefixProxy(prefixed.url) as proxy:
            signed_in(context, proxy.url + "/", prefixed.api_key)
            page.goto(proxy.url + "/")
            expect(page).to_have_url(proxy.url + "/console/")
            scene = tmp_path / "shapes.png"
            scene.write_bytes(shapes_png)
            page.goto(f"{proxy.url}/console/#/try")
            page.select_option("select[name=kind]", "object_detection")
            page.set_input_files("input[name=file]", str(scene))
            page.click("#try-form button[type=submit]")
            expect(page.locator("#try-status")).to_have_text("succeeded", timeout=60_000)
            expect(page.locator("#try-result .stage rect.box").first).to_be_visible()
            page.click("#try-task-link")
            expect(page.locator("#task-facts")).to_be_visible()  # the task page, not the try page
            expect(page.locator(".viewer .stage rect.box").first).to_be_visible()
            expect(page.locator(".viewer .stage img"), str(watched.problems)).to_be_visible()
            page.wait_for_function("document.querySelector('.viewer .stage img')?.naturalWidth > 0")
            task_id = page.url.rsplit("/", 1)[1]
            for fragment, ready in [
                ("#/", "[data-kind='object_detection:image'] [data-stat='rate'] .value"),
                ("#/replicas", "tr[data-state='serving']"),
                ("#/tasks", "tr[data-task]"),
            ]:
                page.goto(f"{proxy.url}/console/{fragment}")
                expect(page.locator(ready).first).to_be_visible()
            with httpx.Client(headers=prefixed.headers) as client:
                task = client.get(f"{proxy.url}/api/task/{task_id}").json()
            assert task["status_url"] == f"{proxy.url}/api/task/{task_id}"
            outside = [u for u in watched.requests if not u.startswith(proxy.url + "/")]
            assert watched.requests and not outside
    finally:
        context.close()
        prefixed.stop()
    watched.check()


# --- replicas coming and going --------------------------------------------------------


def test_a_killed_replica_turns_red_within_5_s_and_a_new_one_appears_by_itself(
    gateway, objects, dns, watched, shapes_png
):
    page = watched.page
    page.goto(console_url(gateway.url, "#/replicas"))
    first, second = objects
    row = lambda r: page.locator(f"tr[data-address='{r.host}:{r.port}']")  # noqa: E731
    expect(row(first)).to_have_attribute("data-state", "serving")
    expect(row(second)).to_have_count(0)
    # a replica started later appears by itself once DNS names it
    second.start()
    dns.addresses = [first.host, second.host]
    expect(row(second)).to_have_attribute("data-state", "serving", timeout=15_000)
    expect(row(second).locator("td").nth(2)).to_have_text(f"object-{second.host}")
    with Load(gateway, [("/api/detect/object/image", shapes_png)]):
        expect(row(first).locator("td[data-field='served']")).not_to_have_text("0", timeout=30_000)
        # killed under load: red within 5 s
        killed_at = time.monotonic()
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        expect(row(first)).to_have_attribute("data-state", "unreachable", timeout=5_000)
        print(f"\nkilled replica shown unreachable after {time.monotonic() - killed_at:.2f} s")
        expect(row(first)).to_have_class(re.compile(r"\bdown\b"))
        screenshot(page, "replica-down")
        expect(row(second)).to_have_attribute("data-state", "serving")
        # the overview after a few minutes of this module's load (the README's picture)
        page.goto(console_url(gateway.url, "#/"))
        expect(page.locator("#totals [data-stat='replicas'] .sub")).to_have_text("1 unreachable")
        screenshot(page, "overview")
        page.goto(console_url(gateway.url, "#/replicas"))
    # gone from DNS (scaled away) for longer than GATEWAY_REPLICA_FORGET_S: dropped
    dns.addresses = [second.host]
    expect(row(first)).to_have_attribute("data-state", "gone", timeout=10_000)
    expect(row(first)).to_have_count(0, timeout=(FORGET_S + 10) * 1000)
    expect(row(second)).to_have_attribute("data-state", "serving")


# --- 100,000 tasks --------------------------------------------------------------------

MANY = 100_000


async def _fill(url: str, n: int) -> None:
    """n finished tasks written through the job table itself, spread over a day."""
    from gateway.jobs import JobStore, Status, Task
    from gateway.kinds import KINDS

    store = JobStore.from_url(url, 86_400, 604_800, [k.id for k in KINDS])
    rng = random.Random(7)
    now = time.time()

    async def one(i: int) -> None:
        kind = KINDS[i % len(KINDS)]
        created = now - 23 * 3600 * (1 - i / n)
        roll = rng.random()
        status = (
            Status.SUCCEEDED if roll < 0.9 else Status.FAILED if roll < 0.96 else Status.CANCELLED
        )
        box = {"left": 10.0, "top": 20.0, "right": 110.0, "bottom": 140.0}
        items = [{"box": box}] if kind.kind == "face_detection" else [
            {"label": "circle", "class_id": 0, "confidence": 0.9, "box": box}
        ]  # fmt: skip
        key = "faces" if kind.kind == "face_detection" else "detections"
        result = (
            {key: items, "image_width": 640, "image_height": 480}
            if kind.media == "image"
            else {"frames": [{"frame_index": 0, "timestamp": 0.0, key: items, "image_width": 640, "image_height": 480}]}
        )  # fmt: skip
        task = Task(
            uuid.uuid4().hex, kind.kind, kind.media, Status.RUNNING, created, created + 86_400,
            {}, started_at=created + 0.01, attempts=1, replica=f"replica-{i % 3}:50051",
        )  # fmt: skip
        await store.finish(
            task.id, status, create=task,
            result=result if status == Status.SUCCEEDED else None,
            error={"code": "invalid_argument", "message": "not an image"} if status == Status.FAILED else None,
            replica=task.replica,
        )  # fmt: skip

    for start in range(0, n, 50):  # 50 in flight: within the client's connection pool
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 50))))
    await store.close()


def test_task_list_with_100000_tasks_and_the_overview_after_a_gateway_restart(
    redis_port, face, objects, browser
):
    url = f"redis://127.0.0.1:{redis_port}/1"
    t0 = time.monotonic()
    # in a thread of its own: Playwright's sync API holds this thread's event loop
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _fill(url, MANY)).result()
    print(f"\n{MANY:,} tasks written in {time.monotonic() - t0:.1f} s")
    env = {
        "REDIS_URL": url,
        "GATEWAY_FACE_TARGETS": face.address,
        "GATEWAY_OBJECT_TARGETS": "127.0.0.1:9",
        "GATEWAY_DISPATCHERS": "false",
        "GATEWAY_REPLICA_MONITOR": "false",
    }
    server = started(GatewayProcess("gateway", env=env))
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    signed_in(context, server.url, server.api_key)
    watched = Watched(context.new_page())
    page = watched.page
    figures = {}
    try:

        def measured(action, label: str) -> None:
            page.evaluate("document.getElementById('view')?.removeAttribute('data-render-ms')")
            action()
            page.wait_for_function(
                "document.getElementById('view')?.dataset.renderMs !== undefined"
            )
            figures[label] = float(page.locator("#view").get_attribute("data-render-ms"))

        measured(lambda: page.goto(console_url(server.url, "#/tasks")), "first page, no filter")
        expect(page.locator("#task-rows tr[data-task]")).to_have_count(50)
        newest = page.locator("#task-rows tr[data-task]").first.get_attribute("data-task")
        measured(lambda: page.click("text=Older →"), "second page")
        expect(page.locator("#task-info")).to_have_text("page 2 · 50 tasks")
        assert page.locator("#task-rows tr[data-task]").first.get_attribute("data-task") != newest
        measured(lambda: page.select_option("select[name=status]", "failed"), "status = failed")
        statuses = page.locator("#task-rows td .state").all_inner_texts()
        assert len(statuses) == 50 and set(statuses) == {"failed"}
        measured(
            lambda: page.select_option("select[name=kind]", "object_detection:video"),
            "failed object videos",
        )
        kinds = page.locator("#task-rows tr[data-task] td:nth-child(3)").all_inner_texts()
        assert set(kinds) == {"Object · video"}
        measured(
            lambda: page.select_option("select[name=range]", "3600"), "… created in the last hour"
        )
        rows = page.locator("#task-rows tr[data-task]").count()
        assert 0 < rows <= 50
        print("task list with 100,000 tasks in Redis, fetched and drawn in the browser:")
        for label, ms in figures.items():
            print(f"  {label:<28} {ms:7.1f} ms")
        # the overview reads Redis: a restarted gateway shows the same numbers
        page.goto(console_url(server.url, "#/"))
        totals = page.locator("#totals")
        expect(totals.locator("[data-stat='succeeded'] .value")).not_to_have_text("–")
        counts = ("queued", "running", "succeeded", "failed", "cancelled")

        def numbers() -> dict[str, str]:
            return {k: totals.locator(f"[data-stat='{k}'] .value").inner_text() for k in counts}

        before = numbers()
        chart_bars = page.locator("[data-chart='throughput'] rect").count()
        page.goto("about:blank")  # (a page left open would see the gateway go away)
        server.stop()
        server.start()  # the same port: the operator's console URL is unchanged
        page.goto(console_url(server.url, "#/"))
        expect(totals.locator("[data-stat='succeeded'] .value")).not_to_have_text("–")
        assert numbers() == before
        assert page.locator("[data-chart='throughput'] rect").count() == chart_bars > 0
        counted = int(
            totals.locator("[data-stat='succeeded'] .value").inner_text().replace(",", "")
        )
        failed = int(totals.locator("[data-stat='failed'] .value").inner_text().replace(",", ""))
        cancelled = int(
            totals.locator("[data-stat='cancelled'] .value").inner_text().replace(",", "")
        )
        assert counted + failed + cancelled == MANY
    finally:
        context.close()
        server.stop()
    watched.check()


# --- signing in -----------------------------------------------------------------------


def test_a_401_shows_the_sign_in_screen_and_a_key_becomes_the_session(gateway, browser):
    """No session: the console asks for a key (POST /api/session), which becomes
    its HttpOnly, SameSite=Strict cookie; the page never holds the key."""
    context = browser.new_context()
    watched = Watched(context.new_page())
    page = watched.page
    try:
        page.goto(console_url(gateway.url, "#/"))
        login = page.locator("#login")
        expect(login).to_be_visible()
        expect(page.locator("#live")).to_contain_text("signed out")
        page.fill("#login-key", "not-a-key")
        page.click("#login-form button[type=submit]")
        expect(page.locator("#login-error")).to_have_text("That key was not accepted.")
        page.fill("#login-key", gateway.api_key)
        page.click("#login-form button[type=submit]")
        expect(login).to_be_hidden()
        expect(page.locator("#totals [data-stat='succeeded'] .value")).not_to_have_text("–")
        expect(page.locator("#signout")).to_have_text("Sign out tests")
        cookie = next(c for c in context.cookies() if c["name"] == "percept_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # the page itself never holds the key
        page.click("#signout")
        expect(login).to_be_visible()
        assert not [c for c in context.cookies() if c["name"] == "percept_session"]
    finally:
        context.close()
    # only the expected refusals: 401s (and Chromium's console line for each)
    unexpected = [p for p in watched.problems if "401" not in p]
    assert not unexpected, unexpected


def test_a_client_key_gets_its_tenants_pages_and_no_refusals(gateway, browser):
    """The overview and replicas need an admin key: a client key's session opens
    on its tasks, without those pages in the nav, and nothing answers 403."""
    with ThreadPoolExecutor(1) as pool:
        key = pool.submit(create_key, gateway.env["REDIS_URL"], "client", "console-guest").result()
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    signed_in(context, gateway.url, key)
    watched = Watched(context.new_page())
    page = watched.page
    try:
        page.goto(console_url(gateway.url, "#/"))
        expect(page).to_have_url(re.compile(r"#/tasks$"))
        expect(page.locator("#signout")).to_contain_text("Sign out")
        visible = [a.inner_text() for a in page.query_selector_all("nav a") if a.is_visible()]
        assert visible == ["Tasks", "Try it", "Sources", "Webhooks"], visible
        page.goto(console_url(gateway.url, "#/replicas"))
        expect(page).to_have_url(re.compile(r"#/tasks$"))
    finally:
        context.close()
    watched.check()


def test_video_task_draws_each_track_in_its_colour_and_lists_the_tracks(
    gateway, http, watched, tmp_path
):
    from harness.videos import tracking_shapes_video

    video = tmp_path / "tracks.avi"
    tracking_shapes_video(video, seed=1, n_frames=24)
    response = http.post(
        "/api/detect/object/video", files={"file": ("tracks.avi", video.read_bytes())}
    )
    assert response.status_code == 202, response.text
    task = wait_done(http, response.json()["task_id"])
    tracks = task["result"]["summary"]["tracks"]
    assert len(tracks) == 4
    frames = task["result"]["frames"]
    page = watched.page
    page.goto(console_url(gateway.url, f"#/task/{task['task_id']}"))
    rows = page.locator("#tracks tr[data-track]")
    expect(rows).to_have_count(4)
    # the last frame is shown: every tracked box in its track's group, one colour each
    last = frames[-1]
    groups = page.locator(".viewer .stage g[data-track]")
    expect(groups).to_have_count(sum(1 for d in last["detections"] if d.get("track_id")))
    drawn = {
        int(g.get_attribute("data-track")): g.locator("rect.box").evaluate(
            "r => getComputedStyle(r).stroke"
        )
        for g in groups.all()
    }
    assert set(drawn) == {d["track_id"] for d in last["detections"] if d.get("track_id")}
    assert len(set(drawn.values())) == len(drawn)  # a colour per track
    assert page.locator(".viewer .stage polyline.trail").count() == len(drawn)  # trails
    labels = page.locator(".viewer .stage g[data-track] text").all_text_contents()
    assert all(re.match(r"#[1-4] \w+ \d+%", label) for label in labels), labels
    # the list: who/what, first and last seen, frames; a click seeks to the best frame
    track = next(t for t in tracks if t["label"] == "triangle")
    row = page.locator(f"#tracks tr[data-track='{track['track_id']}']")
    expect(row).to_contain_text("triangle")
    expect(row).to_contain_text(f"frame {track['first_frame_index']}")
    expect(row.locator("td").last).to_have_text(str(track["frames_seen"]))
    row.click()
    expect(page.locator(".viewer .frames tr.on")).to_have_attribute(
        "data-frame", str(track["best_frame_index"])
    )
    best = page.locator(f".viewer .stage g[data-track='{track['track_id']}'] rect.box")
    box = track["best_box"]
    assert float(best.get_attribute("x")) == pytest.approx(box["left"], abs=0.01)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky bar over the page otherwise
    screenshot(page, "tracks")
