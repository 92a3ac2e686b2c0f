"""The `percept` command line, run as a subprocess against the real stack."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.faces import FACE_PATCH
from harness.videos import moving_patch_video
from object_service import synthetic
from tests.conftest import corrupt_png, encode
from tests.support import PERCEPT, ROOT, cli_env, free_port

pytestmark = pytest.mark.slow

FRAMES = 10


@pytest.fixture(scope="module")
def files(tmp_path_factory, zidane_bytes, astronaut):
    d = tmp_path_factory.mktemp("cli")
    (d / "zidane.jpg").write_bytes(zidane_bytes)
    (d / "truncated.jpg").write_bytes(zidane_bytes[: len(zidane_bytes) // 3])
    (d / "corrupt.png").write_bytes(corrupt_png(astronaut))
    (d / "notes.txt").write_text("not an image, not a video\n")
    image, _ = synthetic.make_scene(np.random.default_rng(11), n_objects=(3, 3))
    (d / "scene.png").write_bytes(encode(image, ".png"))
    moving_patch_video(d / "face.avi", np.ascontiguousarray(astronaut[FACE_PATCH]), n_frames=FRAMES)
    return d


@pytest.fixture(scope="module")
def http(gateway):
    with gateway.client(timeout=60) as c:
        yield c


def test_detect_an_image_as_a_table_and_as_json(percept_cli, files, http):
    table = percept_cli("detect", "face", str(files / "zidane.jpg"))
    assert table.returncode == 0, table.stderr
    as_json = percept_cli("detect", "face", str(files / "zidane.jpg"), "--json", "--landmarks")
    assert as_json.returncode == 0, as_json.stderr
    [item] = json.loads(as_json.stdout)
    api = http.get(f"/api/task/{item['task_id']}").json()
    assert item == {"input": str(files / "zidane.jpg"), **api}  # the API's task, as it is
    [face] = item["result"]["faces"]
    assert len(face["landmarks"]["chin"]) == 17
    # The table shows the same face, its box in source pixels.
    assert "zidane.jpg: 1 face (1280×720)" in table.stdout
    b = face["box"]
    row = [f"{b[k]:.1f}" for k in ("left", "top", "right", "bottom")]
    assert re.search(r"[\s│]+".join(map(re.escape, row)), table.stdout), table.stdout
    assert not table.stderr  # no progress bar when nobody watches (not a terminal)


def test_several_images_in_one_command(percept_cli, files):
    result = percept_cli(
        "detect", "object", str(files / "scene.png"), str(files / "zidane.jpg"), "--json"
    )
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert [Path(i["input"]).name for i in items] == ["scene.png", "zidane.jpg"]
    assert all(i["status"] == "succeeded" and i["kind"] == "object_detection" for i in items)
    assert len(items[0]["result"]["detections"]) >= 2


def test_a_video_shows_progress_to_100_percent(gateway, files):
    """Under a terminal (a pty), as a person would run it: the bar is fed by the SSE
    progress events and ends at frames done = total, 100%."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [str(PERCEPT), "detect", "face", str(files / "face.avi")],
        env=cli_env(gateway, TERM="xterm-256color"),
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        cwd=ROOT,
    )
    os.close(secondary)
    screen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    stdout = proc.stdout.read().decode()
    proc.wait(30)
    os.close(main)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    assert proc.returncode == 0, text
    assert f"{FRAMES}/{FRAMES}" in text and "100%" in text, text
    assert re.search(rf"\b[1-9]/{FRAMES}\b", text), "the bar moved through the frames"
    assert f"face.avi: {FRAMES} frames" in stdout


def test_draw_puts_the_boxes_where_the_json_says(percept_cli, files, tmp_path):
    from percept.draw import color_for, pixel_box
    from percept.types import Detection

    out = tmp_path / "drawn.png"
    result = percept_cli("detect", "object", str(files / "scene.png"), "--json", "--draw", str(out))
    assert result.returncode == 0, result.stderr
    [item] = json.loads(result.stdout)
    detections = item["result"]["detections"]
    assert detections
    original = np.asarray(Image.open(files / "scene.png").convert("RGB"))
    drawn = np.asarray(Image.open(out).convert("RGB"))
    assert drawn.shape == original.shape
    size = (drawn.shape[1], drawn.shape[0])
    dets = [Detection.from_json(d) for d in detections]

    def zone(det):  # the box, and its label above it
        left, top, right, bottom = pixel_box(det.box, size)
        return left - 4, top - 40, max(right, left + 200) + 4, bottom + 4

    def overlaps(a, b):
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    # Boxes that share no pixels with another (the model may see one shape twice):
    # each of their edges is drawn in the detection's colour, exactly where the JSON says.
    alone = [d for d in dets if not any(overlaps(zone(d), zone(o)) for o in dets if o is not d)]
    assert alone, detections
    for det in alone:
        left, top, right, bottom = pixel_box(det.box, size)
        middle_x, middle_y = (left + right) // 2, (top + bottom) // 2
        for x, y in ((left, middle_y), (right, middle_y), (middle_x, bottom)):
            assert tuple(drawn[y, x]) == color_for(det), (det, x, y)
        assert tuple(drawn[middle_y, middle_x]) == tuple(original[middle_y, middle_x])
    # Away from every box, the picture is untouched.
    mask = np.ones(original.shape[:2], bool)
    for d in detections:  # each box, and its label above it (or inside, at the top edge)
        b = d["box"]
        mask[
            max(0, int(b["top"]) - 40) : int(b["bottom"]) + 4,
            max(0, int(b["left"]) - 4) : max(int(b["right"]), int(b["left"]) + 200) + 4,
        ] = False
    assert mask.mean() > 0.3  # most of the picture is checked
    assert np.array_equal(drawn[mask], original[mask])


def test_exit_codes(percept_cli, files):
    missing = percept_cli("detect", "face", str(files / "nope.jpg"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad_file = percept_cli("detect", "face", str(files / "notes.txt"))
    assert bad_file.returncode == 2, bad_file.stderr
    assert "notes.txt" in bad_file.stderr and "video" in bad_file.stderr
    bad_option = percept_cli("detect", "face", str(files / "zidane.jpg"), "--upsample", "9")
    assert bad_option.returncode == 2
    refused = percept_cli("detect", "face", str(files / "truncated.jpg"))
    assert refused.returncode == 2 and "truncated" in refused.stderr  # refused before it ran
    failed = percept_cli("detect", "face", str(files / "corrupt.png"))
    assert failed.returncode == 1
    assert "failed" in failed.stderr and "corrupt" in failed.stderr
    down = percept_cli(
        "detect", "face", str(files / "zidane.jpg"), "--server", f"http://127.0.0.1:{free_port()}"
    )
    assert down.returncode == 3 and "cannot reach" in down.stderr
    assert percept_cli("health", "--server", f"http://127.0.0.1:{free_port()}").returncode == 3


def test_task_commands_and_health(percept_cli, files, http):
    submitted = percept_cli("detect", "face", str(files / "zidane.jpg"), "--json")
    task_id = json.loads(submitted.stdout)[0]["task_id"]
    got = percept_cli("task", "get", task_id, "--json")
    assert got.returncode == 0 and json.loads(got.stdout) == http.get(f"/api/task/{task_id}").json()
    shown = percept_cli("task", "get", task_id)
    assert (
        task_id in shown.stdout
        and "succeeded" in shown.stdout
        and "1 face (1280×720)" in shown.stdout
    )
    listed = percept_cli("task", "list", "--kind", "face", "--status", "succeeded", "--json")
    assert task_id in [t["task_id"] for t in json.loads(listed.stdout)["tasks"]]
    table = percept_cli("task", "list", "--limit", "3")
    assert table.returncode == 0 and "3 tasks" in table.stdout
    assert task_id in table.stdout  # whole, to copy, even on an 80-column terminal
    by_prefix = percept_cli("task", "get", task_id[:8], "--json")  # as people type them
    assert by_prefix.returncode == 0 and json.loads(by_prefix.stdout)["task_id"] == task_id
    watched = percept_cli("task", "watch", task_id)
    assert watched.returncode == 0 and "succeeded" in watched.stdout
    too_late = percept_cli("task", "cancel", task_id)
    assert too_late.returncode == 1 and "already ended" in too_late.stderr
    unknown = percept_cli("task", "get", "0" * 32)
    assert unknown.returncode == 2 and "no task" in unknown.stderr
    unknown_prefix = percept_cli("task", "get", "0000000")
    assert (
        unknown_prefix.returncode == 2 and "no task whose id starts with" in unknown_prefix.stderr
    )
    # A long video: cancelled while it runs; watching it then exits 1.
    queued = http.post(
        "/api/detect/face/video",
        files={"file": ("face.avi", (files / "face.avi").read_bytes(), "video/x-msvideo")},
        data={"encodings": "true", "num_jitters": "30"},
    ).json()
    cancelled = percept_cli("task", "cancel", queued["task_id"], "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] == "cancelled"
    assert percept_cli("task", "watch", queued["task_id"]).returncode == 1
    health = percept_cli("health")
    assert health.returncode == 0 and "ready" in health.stdout
    assert json.loads(percept_cli("health", "--json").stdout)["checks"] == {
        "redis": True,
        "queues": True,
        "face": True,
        "object": True,
    }
