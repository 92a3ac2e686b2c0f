"""No task is lost: replicas and dispatchers killed under load, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from harness.faces import FACE_PATCH
from harness.videos import moving_patch_video
from tests.support import ROOT, GatewayProcess, ServerProcess, fresh_db, submit, wait_done

pytestmark = pytest.mark.slow

LEASE_S = "2"


@pytest.fixture(scope="module")
def own_redis(redis_url):
    """A database of its own: the session gateway's dispatchers must not take these tasks."""
    return fresh_db(redis_url, 10)


@pytest.fixture(scope="module")
def replicas():
    servers = [ServerProcess("face_service", env={"FACE_WORKERS": "1"}).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def env(own_redis, replicas, object_server):
    return {
        "REDIS_URL": own_redis,
        "GATEWAY_FACE_TARGETS": ",".join(s.address for s in replicas),
        "GATEWAY_OBJECT_TARGETS": object_server.address,
        "GATEWAY_LEASE_S": LEASE_S,
        "GATEWAY_FACE_CONCURRENCY": "4",
    }


@pytest.fixture(scope="module")
def api(env):
    server = GatewayProcess("gateway", env={**env, "GATEWAY_DISPATCHERS": "false"}).start()
    yield server
    server.stop()


def calls(server: ServerProcess) -> float:
    return server.metric(
        "percept_grpc_requests_total", method="/percept.face.v1.FaceService/DetectFaces", code="OK"
    )


def test_work_spreads_over_replicas_and_survives_a_killed_one(
    api, env, replicas, zidane_bytes, bus_bytes
):
    worker = GatewayProcess("gateway.worker", env=env).start()
    http = api.client(timeout=60)
    try:
        before = [calls(r) for r in replicas]
        ids = [
            submit(http, "/api/detect/face/image", zidane_bytes).json()["task_id"] for _ in range(8)
        ]
        assert all(wait_done(http, i)["status"] == "succeeded" for i in ids)
        spread = [calls(r) - b for r, b in zip(replicas, before, strict=True)]
        assert sum(spread) == 8 and min(spread) >= 2, spread  # round-robin, not one replica

        # Under load, SIGKILL one replica: every task still succeeds on the other.
        ids = [
            submit(http, "/api/detect/face/image", bus_bytes).json()["task_id"] for _ in range(12)
        ]
        for _ in range(200):
            if sum(http.get(f"/api/task/{i}").json()["status"] == "succeeded" for i in ids) >= 2:
                break
            time.sleep(0.05)
        victim = replicas[0]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        results = [wait_done(http, i, timeout=180) for i in ids]
        assert [r["status"] for r in results] == ["succeeded"] * 12, [
            r.get("error") for r in results
        ]
        assert all(len(r["result"]["faces"]) == 2 for r in results)
    finally:
        worker.stop()
        http.close()
        if replicas[0].proc.poll() is not None:
            replicas[0].stop()
            replicas[0].start()  # same port: the channel reconnects to it


def test_a_killed_dispatcher_loses_no_task(api, env, tmp_path, astronaut):
    path = tmp_path / "video.avi"
    n_frames = 40
    moving_patch_video(
        path, np.ascontiguousarray(astronaut[FACE_PATCH]), n_frames=n_frames, step=(8, 4)
    )
    http = api.client(timeout=60)
    heartbeat = tmp_path / "first.alive"
    first = GatewayProcess(
        "gateway.worker", env={**env, "GATEWAY_HEARTBEAT_FILE": str(heartbeat)}
    ).start()
    second = None

    def probe(max_age: str) -> int:  # what a container liveness probe runs
        return subprocess.run(
            [sys.executable, "-m", "gateway.worker", "--check", "--max-age", max_age],
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}",
                 "GATEWAY_HEARTBEAT_FILE": str(heartbeat)},
            capture_output=True,
        ).returncode  # fmt: skip

    try:
        task_id = submit(
            http, "/api/detect/face/video", path.read_bytes(), "v.avi", "video/x-msvideo"
        ).json()["task_id"]
        for _ in range(600):
            task = http.get(f"/api/task/{task_id}").json()
            if task["progress"]["done"] >= 3:
                break
            time.sleep(0.05)
        assert task["status"] == "running" and task["progress"]["done"] < n_frames
        assert probe("10") == 0
        first.proc.send_signal(signal.SIGKILL)  # mid-task, no goodbye
        first.proc.wait()
        second = GatewayProcess("gateway.worker", env=env).start()
        done = wait_done(http, task_id, timeout=240)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2  # claimed again after the lease ran out
        assert [f["frame_index"] for f in done["result"]["frames"]] == list(range(n_frames))
        assert all(len(f["faces"]) == 1 for f in done["result"]["frames"])
        events = httpx.get(
            f"{api.url}/api/task/{task_id}/events", headers=api.headers, timeout=30
        ).text
        assert (
            events.count("event: frame") == n_frames
        )  # frames of the first attempt are not announced twice
    finally:
        first.stop()
        if second:
            second.stop()
        http.close()
