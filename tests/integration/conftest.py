"""Real servers, started once per test session."""

from __future__ import annotations

import functools
import os
import sys

import pytest

from tests.console_support import Watched, signed_in
from tests.support import (
    ROOT,
    GatewayProcess,
    ServerProcess,
    create_key,
    free_port,
    fresh_db,
    run_percept,
)
from tests.webhooks_support import DELIVERY_ENV, DeliveryProcess

FACE_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
FACE_MAX_IMAGE_PIXELS = 20_000_000


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def face_server(video_dir, tmp_path_factory):
    gallery = tmp_path_factory.mktemp("face-gallery") / "gallery.sqlite3"
    server = ServerProcess(
        "face_service",
        env={
            "FACE_WORKERS": "2",
            "FACE_GALLERY_URL": f"sqlite:///{gallery}",
            "FACE_MAX_MESSAGE_BYTES": str(FACE_MAX_MESSAGE_BYTES),
            "FACE_MAX_IMAGE_PIXELS": str(FACE_MAX_IMAGE_PIXELS),
            "FACE_VIDEO_ALLOWED_DIRS": str(video_dir),
            "FACE_STREAM_WINDOW": "4",
        },
    ).start()
    yield server
    server.stop()


DEMO_MODEL = ROOT / "object_service" / "models" / "shapes-yolo.pt"


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def object_server(video_dir, onnx_cache):
    """The demo model on ONNX Runtime (the CPU default), two workers."""
    server = ServerProcess(
        "object_service",
        env={
            "OBJECT_MODEL": str(DEMO_MODEL),
            "OBJECT_WORKERS": "2",
            "OBJECT_CACHE_DIR": str(onnx_cache),
            "OBJECT_MAX_MESSAGE_BYTES": str(FACE_MAX_MESSAGE_BYTES),
            "OBJECT_MAX_IMAGE_PIXELS": str(FACE_MAX_IMAGE_PIXELS),
            "OBJECT_VIDEO_ALLOWED_DIRS": str(video_dir),
            "OBJECT_STREAM_WINDOW": "4",
            "OBJECT_VIDEO_BATCH": "2",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def object_server_pytorch(onnx_cache):
    """The same model on the PyTorch backend, one worker."""
    server = ServerProcess(
        "object_service",
        env={"OBJECT_MODEL": str(DEMO_MODEL), "OBJECT_WORKERS": "1", "OBJECT_BACKEND": "pytorch"},
    ).start()
    yield server
    server.stop()


GATEWAY_MAX_IMAGE_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="session")
def redis_url():
    """A Redis database of the tests' own (`make test` starts Redis when none answers)."""
    import os

    import redis

    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    url = f"{base}/9"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="session")
def gateway(face_server, object_server, redis_url):
    server = GatewayProcess(
        "gateway",
        env={
            "REDIS_URL": redis_url,
            "GATEWAY_FACE_TARGETS": face_server.address,
            "GATEWAY_OBJECT_TARGETS": object_server.address,
            "GATEWAY_MAX_IMAGE_BYTES": str(GATEWAY_MAX_IMAGE_BYTES),
            "GATEWAY_WAIT_TIMEOUT_S": "60",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (the console's browser tests)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import ensure_tools
    finally:
        sys.path.pop(0)
    executable = ensure_tools.chromium()
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=args)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def webhooks_stack(redis_url):
    """An API process (subscriptions; no dispatchers, no delivery) and one
    delivery process, sharing a fresh Redis database."""
    url = fresh_db(redis_url, 14)
    dead = f"127.0.0.1:{free_port()}"
    env = {"REDIS_URL": url, "GATEWAY_FACE_TARGETS": dead, "GATEWAY_OBJECT_TARGETS": dead,
           "GATEWAY_REPLICA_MONITOR": "false", **DELIVERY_ENV}  # fmt: skip
    api = GatewayProcess("gateway", env={**env, "GATEWAY_DISPATCHERS": "false"}).start()
    delivery = DeliveryProcess("gateway.webhooks_delivery", env=env).start(60)
    api.redis_url, api.env_all = url, env
    api.keys = {t: create_key(url, role="client", tenant=t) for t in ("acme", "globex")}
    api.delivery = delivery
    yield api
    api.delivery.stop()
    api.stop()


@pytest.fixture(scope="module")
def percept_cli(gateway):
    """Runs the `percept` command against the session gateway: run(*args, timeout=, **env)."""
    return functools.partial(run_percept, gateway)


@pytest.fixture
def watched(browser, gateway):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    signed_in(context, gateway.url, gateway.api_key)
    page = context.new_page()
    w = Watched(page)
    yield w
    context.close()
    w.check()
