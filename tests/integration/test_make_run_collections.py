"""`make run` keeps face collections: created and enrolled through one run, still
there (and identifying) after Ctrl-C and a second `make run`, in the SQLite
default (.run/face-gallery.sqlite3). The test's collection is deleted at the end."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

from harness import faces
from tests.support import ROOT, MakeRun, create_key, free_port, fresh_db

pytestmark = pytest.mark.slow


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
