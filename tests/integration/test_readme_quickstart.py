"""The README's first hour, as written, against a fresh `make run` with auth on.

The quick start's shell blocks (`make run` first, then the second terminal's),
its Python snippet, and every ```python and ```sh block of the README's
"Python SDK and the `percept` command line" section are read from README.md
and run unchanged, twice in a row, each answer checked against what the
samples hold (the faces in people.jpg, the shapes, who is at the door).

- The stack: the quick start's `make run` line, run from the checkout with
  PERCEPT_RUN_DIR in a temporary "checkout" (its `.run`, next to links to the
  real `.venv` and `samples/`), where the examples run; the SDK and the CLI
  find the stack there through `.run/stack.json`, as from the repository root.
- The port: the README's http://127.0.0.1:8000 when that port is free, so the
  curl line runs as written; when it is taken (another stack on this machine)
  the stack takes a free port and only that URL in the shell blocks is
  replaced — the SDK and the CLI need no replacing, they read stack.json.
- A block that is not meant to run against `make run` starts with
  `# readme: not run (WHY)`; it is skipped, and must say why.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import ROOT, code_blocks, free_port, readme_section

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # the first test waits for make run

README_URL = "http://127.0.0.1:8000"
NOT_RUN = re.compile(r"^# readme: not run \((?P<why>[^)]{8,})\)")
PYTHONPATH = os.pathsep.join(str(p) for p in (ROOT / "clients" / "python", ROOT, ROOT / "gen"))


def examples() -> dict[str, list[str]]:
    quick = readme_section("## Quick start")
    sdk = readme_section("### Python SDK and the `percept` command line")
    return {
        "quick_sh": code_blocks(quick, "sh"),
        "python": code_blocks(quick, "python") + code_blocks(sdk, "python"),
        "sdk_sh": code_blocks(sdk, "sh"),
    }


def runnable(block: str) -> bool:
    first = block.lstrip().splitlines()[0]
    if first.startswith("# readme: not run"):
        assert NOT_RUN.match(first), f"say why a block is not run: {first!r}"
        return False
    return True


# What each Python block prints, told apart by a call only it makes: (needle, check).
def _lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def _faces_in_people(out: str) -> None:  # samples/people.jpg: two faces turned to the camera
    assert out.count("Box(") == 2, out


def _faces_with_landmarks(out: str) -> None:
    lines = _lines(out)
    assert len(lines) == 2 and all("Box(" in x and x.endswith(" 17") for x in lines), out


def _shapes_video(out: str) -> None:  # 12 frames, every other one: 0, 2, ... 10
    lines = _lines(out)
    assert [int(x.split()[0]) for x in lines] == list(range(0, 12, 2)), out
    assert all("'circle'" in x and "'square'" in x for x in lines), out


def _collections(out: str) -> None:
    lines = _lines(out)
    assert lines[0] == "['grace', 'unknown']", out  # door.jpg: Grace Hopper and a stranger
    assert lines[1:-1] == [f"{i} ('grace',)" for i in range(12)], out  # faces.avi
    assert lines[-1] == "False", out  # visitor.jpg is someone else


def _grpc_stream(out: str) -> None:
    lines = _lines(out)
    assert [int(x.split()[0]) for x in lines] == list(range(12)), out
    assert all(x.count("Box(") == 1 for x in lines), out


def _grpc_async(out: str) -> None:
    values = re.findall(r"-?\d+\.\d+", out)
    assert len(values) == 4 and any(float(v) != 0 for v in values), out  # an encoding's start


PYTHON_CHECKS = [
    ("make run's URL and key", _faces_in_people),
    ("landmarks=True", _faces_with_landmarks),
    ("detect_objects_in_video", _shapes_video),
    ("create_collection", _collections),
    ("stream_faces", _grpc_stream),
    ("AsyncGrpcClient", _grpc_async),
]


def check_for(block: str):
    found = [check for needle, check in PYTHON_CHECKS if needle in block]
    assert len(found) == 1, f"no single check for this README block (add one):\n{block}"
    return found[0]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """`make run` as the quick start writes it, its `.run` in a temporary checkout."""
    commands = [c for c in examples()["quick_sh"][0].splitlines() if c.strip()]
    assert commands == ["make run"], "the quick start's first block is `make run`"
    checkout = tmp_path_factory.mktemp("checkout")
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    (checkout / "samples").symlink_to(ROOT / "samples", target_is_directory=True)
    with socket.socket() as sock:
        port = 8000 if sock.connect_ex(("127.0.0.1", 8000)) != 0 else free_port()
    env = {**os.environ, "PERCEPT_RUN_DIR": str(checkout / ".run"), "GATEWAY_PORT": str(port)}
    for name in ("OBJECT_MODEL", "REDIS_URL", "GATEWAY_AUTH"):
        env.pop(name, None)  # as a person runs it: its own Redis, auth on, no weights
    proc = subprocess.Popen(
        ["bash", "-c", commands[0]], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        deadline = time.monotonic() + 600
        while not any("[percept] ready" in line for line in seen):
            assert time.monotonic() < deadline, "make run not ready:\n" + "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, "make run exited:\n" + "".join(seen)
        yield checkout, f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def run(checkout: Path, argv: list[str], stdin: str = "", activated: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCEPT_")}
    env.update(PYTHONPATH=PYTHONPATH, COLUMNS="200", YOLO_OFFLINE="1")
    if activated:  # in the shell the quick start activated .venv in
        env["PATH"] = f"{checkout / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        argv, cwd=checkout, env=env, input=stdin, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (
        f"exit {done.returncode}\n{stdin}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done.stdout


def run_shell(checkout: Path, url: str, block: str, activated: bool = False) -> str:
    argv = ["bash", "-e", "-o", "pipefail"]
    return run(checkout, argv, block.replace(README_URL, url), activated)


@pytest.mark.parametrize("attempt", [1, 2])
def test_the_quick_start_runs_as_written(stack, attempt):
    checkout, url = stack
    second_terminal = examples()["quick_sh"][1:]
    assert len(second_terminal) == 1
    out = run_shell(checkout, url, second_terminal[0])
    assert "Authorization: Bearer $(cat .run/admin.key)" in second_terminal[0]
    # the upload: the finished task with samples/people.jpg's two faces, as the README shows
    answer, _ = json.JSONDecoder().raw_decode(out)
    (shown,) = code_blocks(readme_section("## Quick start"), "json")
    assert answer["status"] == "succeeded", out
    assert answer["result"] == json.loads(shown)["result"], out
    # the CLI: the demo model finds the circle and the square of samples/shapes.png
    assert "circle" in out and "square" in out, out


@pytest.mark.parametrize("attempt", [1, 2])
def test_every_python_example_runs_as_written(stack, attempt):
    checkout, _ = stack
    python = examples()["python"]
    assert len(python) >= 6
    for block in filter(runnable, python):
        check_for(block)(run(checkout, [sys.executable, "-"], block))


@pytest.mark.parametrize("attempt", [1, 2])
def test_the_command_line_examples_run_as_written(stack, attempt):
    checkout, url = stack
    (block,) = examples()["sdk_sh"]
    out = run_shell(checkout, url, block, activated=True)
    assert "circle" in out and "grace" in out and "unknown" in out, out
    assert (checkout / "shapes-boxes.png").stat().st_size > 0  # --draw wrote it
    # each enrolled photo, then the two identified files (door.jpg: one face known)
    assert re.search(r"door\.jpg.*grace", out, re.S), out
