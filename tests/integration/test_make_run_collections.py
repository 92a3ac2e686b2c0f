"""`make run` keeps face collections: created and enrolled through one run, still
there (and identifying) after Ctrl-C and a second `make run`, in the SQLite
default (.run/face-gallery.sqlite3). The test's collection is deleted at the end."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid

import httpx
import pytest

from tests import faces
from tests.support import ROOT, create_key, free_port, fresh_db

pytestmark = pytest.mark.slow


class MakeRun:
    """`make run` in its own session, its output read line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "run", "FACE_REPLICAS=1", "OBJECT_REPLICAS=1"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(
            target=lambda: [self.lines.put(line) for line in self.proc.stdout], daemon=True
        ).start()

    def wait_for(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, "make run exited:\n" + "".join(self.seen)
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "".join(self.seen))

    def stop(self) -> None:
        sid = os.getsid(self.proc.pid)
        os.killpg(sid, signal.SIGINT)  # Ctrl-C
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(sid, signal.SIGKILL)
            raise


def test_collections_survive_make_run_restarts(redis_url):
    port = free_port()
    url = fresh_db(redis_url, 12)
    key = create_key(url)
    env = {**os.environ, "GATEWAY_PORT": str(port), "REDIS_URL": url, "YOLO_OFFLINE": "1"}
    env.pop("FACE_GALLERY_URL", None)  # the default under test
    collection = f"make-run-{uuid.uuid4().hex[:8]}"
    photo = faces.encode(faces.photos()["astronaut"].rgb)
    probe = faces.encode(faces.scenes()[1][1])
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )

    first = MakeRun(env)
    try:
        first.wait_for(r"\[percept\] ready", 400)
        store = ROOT / ".run" / "face-gallery.sqlite3"
        assert f"face collections in sqlite:///{store}" in "".join(first.seen)
        assert http.post("/api/collections", json={"collection_id": collection}).status_code == 201
        enrolled = http.post(
            f"/api/collections/{collection}/faces",
            files={"file": ("a.jpg", photo, "image/jpeg")},
            data={"subject": "eileen"},
        )
        assert enrolled.status_code == 201, enrolled.text
    finally:
        first.stop()
    assert store.exists()

    second = MakeRun(env)
    try:
        second.wait_for(r"\[percept\] ready", 400)
        kept = http.get(f"/api/collections/{collection}")
        assert kept.status_code == 200 and kept.json()["face_count"] == 1
        found = http.post(
            "/api/identify/face/image",
            files={"file": ("scene.jpg", probe, "image/jpeg")},
            data={"collection_id": collection},
            params={"wait": "true"},
        )
        assert found.status_code == 200
        assert "eileen" in [f["subject"] for f in found.json()["result"]["faces"]]
        assert http.delete(f"/api/collections/{collection}").status_code == 204
    finally:
        second.stop()
        http.close()
