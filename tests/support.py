"""What the test modules share (they never import one another): the real
processes of harness.processes, named here for them, and what only tests use:
errors of gRPC calls, README sections, submitting a task and waiting for it,
a Redis of a test's own, `make run`, the `percept` and `gateway keys` commands."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import redis

from harness.processes import (  # noqa: F401 - the tests import them from here
    ROOT,
    GatewayProcess,
    ServerProcess,
    create_key,
    free_port,
    fresh_db,
    health_status,
)


def rpc_error(fn, *args, **kwargs) -> grpc.RpcError:
    """The error a call raises; a streaming call is read to its end first."""
    with pytest.raises(grpc.RpcError) as info:
        result = fn(*args, **kwargs)
        if isinstance(result, grpc.Call) and hasattr(result, "__next__"):
            list(result)
    return info.value


def readme_section(heading: str, text: str | None = None) -> str:
    """README.md's text under `heading` (a whole line such as "## Quick start") up to
    the next heading of its level or above; lines in code blocks are never headings."""
    lines = (text if text is not None else (ROOT / "README.md").read_text()).splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    assert heading in lines, f"README.md has no {heading!r} section"
    out, fenced = [], False
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(rf"#{{1,{level}}} ", line):
            break
        out.append(line)
    return "\n".join(out) + "\n"


def code_blocks(text: str, lang: str) -> list[str]:
    """The ```lang fenced blocks of a markdown text, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def submit(
    http,
    path: str,
    content: bytes,
    filename="upload.jpg",
    content_type="image/jpeg",
    data=None,
    **params,
):
    """POST one file to a submit route (`params` go in the query string)."""
    return http.post(
        path, files={"file": (filename, content, content_type)}, data=data or {}, params=params
    )


def wait_until(
    check,
    timeout: float = 60.0,
    what: str = "the condition",
    step: float = 0.05,
    errors: tuple[type[BaseException], ...] = (),
):
    """Poll `check()` until it returns something truthy, and return that: how a
    test waits for an event it cannot subscribe to (never a bare sleep). An
    exception of `errors` counts as "not yet"; `timeout` seconds fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except errors:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(step)


def wait_done(http, task_id: str, timeout: float = 120) -> dict:
    """The task's body once it has finished (succeeded, failed or cancelled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(f"/api/task/{task_id}").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish: {body}")


def task_events(gateway, task_id: str, timeout: float = 120) -> Iterator[tuple[str, dict]]:
    """The task's event stream (GET /api/task/{id}/events), each event as
    (name, data) as it arrives; the stream ends after the task's final status."""
    url = f"{gateway.url}/api/task/{task_id}/events"
    with httpx.stream("GET", url, headers=gateway.headers, timeout=timeout) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield name, json.loads(line.removeprefix("data: "))


class RedisServer:
    """A redis-server of the test's own, restartable on the same port."""

    def __init__(self, data_dir, aof: bool, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.dir = data_dir
        self.aof = aof
        self.args = args  # more redis-server options (--maxmemory ...)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
                "--appendonly", "yes" if self.aof else "no", "--appendfsync", "always",
                *self.args]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # a clean shutdown: with AOF, fsynced
            self.proc.wait(30)


def gateway_keys(*args: str, redis_url: str) -> subprocess.CompletedProcess:
    """`python -m gateway keys ARGS` against `redis_url`, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCEPT_")}
    env.update(REDIS_URL=redis_url, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'gen'}")
    return subprocess.run(
        [sys.executable, "-m", "gateway", "keys", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


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


PERCEPT = Path(sys.executable).with_name("percept")


def cli_env(gateway, **extra) -> dict[str, str]:
    """The environment the `percept` command runs in against `gateway`."""
    return {
        **os.environ,
        # The checkout's SDK and generated code first (an installed SDK may be another checkout's).
        "PYTHONPATH": os.pathsep.join(
            str(p) for p in (ROOT / "clients" / "python", ROOT, ROOT / "gen")
        ),
        "PERCEPT_URL": gateway.url,
        "PERCEPT_API_KEY": gateway.api_key,
        "COLUMNS": "160",
        **extra,
    }


def run_percept(
    gateway, *args: str, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess:
    """The `percept` command against `gateway`, with its admin key (`env` adds to
    or replaces cli_env's variables)."""
    if not PERCEPT.exists():
        pytest.fail(
            f"{PERCEPT} is missing: `make setup` installs the SDK (clients/python) and its command"
        )
    return subprocess.run(
        [str(PERCEPT), *args],
        env=cli_env(gateway, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
