"""`make run` end to end, as a person runs it: ready, tasks succeed, a crashed
replica comes back, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time

import httpx
import numpy as np
import psutil
import pytest
import redis

from gateway.settings import GatewaySettings, redis_maxmemory
from harness.shapes import scene_of_reliable_size
from tests.conftest import encode
from tests.support import ROOT, free_port

pytestmark = pytest.mark.slow


def session_processes(sid: int) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return out


def test_make_run_serves_restarts_and_stops_cleanly(tmp_path, zidane_bytes):
    port = free_port()
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "PERCEPT_RUN_DIR": str(run_dir),
        "YOLO_OFFLINE": "1",
    }
    for name in ("OBJECT_MODEL", "REDIS_URL", "GATEWAY_AUTH"):
        env.pop(name, None)  # as a person runs it: its own Redis, auth on
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run", "FACE_REPLICAS=1", "OBJECT_REPLICAS=1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()

    def wait_for(pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, "make run exited:\n" + "".join(seen)
                continue
            seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "".join(seen))

    sid = os.getsid(proc.pid)
    try:
        wait_for(r"\[percept\] ready", 400)
        output = "".join(seen)
        assert "DEMO model" in output and "OBJECT_MODEL=" in output  # says how to use real weights
        assert f"http://127.0.0.1:{port}/docs" in output
        # its own Redis, persisting to an append-only file in the run directory
        assert "the stack's own" in output and (run_dir / "redis" / "appendonlydir").is_dir()
        # with a maxmemory that fits the gateway's caps, and no eviction
        own = redis.Redis.from_url(re.search(r"own on (redis://\S+)", output).group(1))
        memory = own.config_get("maxmemory*")
        assert int(memory["maxmemory"]) == redis_maxmemory(GatewaySettings()) > 0
        assert memory["maxmemory-policy"] == "noeviction"
        # an admin key, printed once and kept readable by its owner only
        key_file = run_dir / "admin.key"
        key = key_file.read_text().strip()
        assert key in output and oct(key_file.stat().st_mode & 0o777) == "0o600"
        headers = {"Authorization": f"Bearer {key}"}
        face_port = int(re.search(r"face-1\s+grpc 127\.0\.0\.1:(\d+)", output).group(1))

        # No static core split: each replica's workers together can use every core.
        cores = os.cpu_count()
        for module in ("face_service", "object_service"):
            server = next(
                p for p in session_processes(sid) if f"-m {module}" in " ".join(p.cmdline())
            )
            workers = [c for c in server.children() if "spawn_main" in " ".join(c.cmdline())]
            assert len(workers) == cores, (module, [w.cmdline() for w in workers])

        anonymous = httpx.get(f"http://127.0.0.1:{port}/api/tasks", timeout=10)
        assert anonymous.status_code == 401
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=120, headers=headers
        ) as http:
            face = http.post(
                "/api/detect/face/image",
                params={"wait": "true"},
                files={"file": ("z.jpg", zidane_bytes, "image/jpeg")},
            )
            assert face.status_code == 200 and len(face.json()["result"]["faces"]) == 1
            img, truth = scene_of_reliable_size(np.random.default_rng(5))
            obj = http.post(
                "/api/detect/object/image",
                params={"wait": "true"},
                files={"file": ("s.png", encode(img), "image/png")},
            )
            assert obj.status_code == 200
            assert {d["label"] for d in obj.json()["result"]["detections"]} >= {
                s.name for s in truth
            }

            # A replica that crashes is reported and restarted on its port.
            victim = next(
                p for p in session_processes(sid)
                if "face_service" in " ".join(p.cmdline()) and any(c.laddr.port == face_port for c in p.net_connections("tcp"))
            )  # fmt: skip
            victim.send_signal(signal.SIGKILL)
            wait_for(r"face-1 exited with code -9; restarting", 30)
            wait_for(r"face-1 restarted on port", 300)
            again = http.post(
                "/api/detect/face/image",
                params={"wait": "true"},
                files={"file": ("z.jpg", zidane_bytes, "image/jpeg")},
            )
            assert again.status_code == 200
        # make, launcher, redis, replicas, gateway (and workers)
        assert len(session_processes(sid)) >= 5
    finally:
        os.killpg(sid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(sid, signal.SIGKILL)
            raise
    deadline = time.monotonic() + 20
    while session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_processes(sid) == [], [p.cmdline() for p in session_processes(sid)]
    rest = "".join(seen) + "".join(
        iter(lambda: lines.get(timeout=2) if not lines.empty() else "", "")
    )
    assert "[percept] stopped" in rest
