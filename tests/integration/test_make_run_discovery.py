"""`make run` names itself: its banner says where the console, the admin key and
the clients' settings are, and its stack.json lets the `percept` command,
`python -m gateway keys`, percept.Client() and percept.GrpcClient() reach it
with nothing exported, from the project directory or below (or from anywhere
with PERCEPT_RUN_DIR). A clean stop removes stack.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.support import ROOT, MakeRun, free_port

pytestmark = pytest.mark.slow

CLIENTS = textwrap.dedent(
    """
    import sys
    import percept

    with percept.Client() as client:
        print("rest", client.url, len(client.detect_faces(sys.argv[1]).faces))
    with percept.GrpcClient() as client:
        print("grpc", len(client.detect_faces(sys.argv[1]).faces))
    """
)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a person who exported nothing for Percept."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PERCEPT_", "GATEWAY_")) and k != "REDIS_URL"
    }
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "gen"), str(ROOT / "clients" / "python")]
    )
    return {**env, **extra}


def run(args: list[str], cwd, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=300
    )


def test_clients_find_make_run_with_nothing_exported(tmp_path, zidane_bytes):
    project = tmp_path / "project"
    run_dir = project / ".run"
    below = project / "notebooks"
    below.mkdir(parents=True)
    photo = below / "zidane.jpg"
    photo.write_bytes(zidane_bytes)
    port = free_port()
    env = {**os.environ, "GATEWAY_PORT": str(port), "PERCEPT_RUN_DIR": str(run_dir)}
    env.update(YOLO_OFFLINE="1", PERCEPT_WORKERS="1", GATEWAY_WORKERS="1")
    for name in ("OBJECT_MODEL", "REDIS_URL", "GATEWAY_AUTH"):
        env.pop(name, None)  # its own Redis (on a port it chooses), auth on
    stack = MakeRun(env)
    url = f"http://127.0.0.1:{port}"
    stopped = False
    try:
        stack.wait_for(r"\[percept\] ready", 400)
        banner = "".join(stack.seen)
        # what a person needs, in the banner
        assert f"console    {url}/console/" in banner
        assert f"admin key  {run_dir / 'admin.key'}" in banner
        assert f"{url}/docs" in banner and str(run_dir / "stack.json") in banner
        assert f"from {project} or below; elsewhere: export PERCEPT_RUN_DIR={run_dir}" in banner

        stack_file = run_dir / "stack.json"
        info = json.loads(stack_file.read_text())
        assert oct(stack_file.stat().st_mode & 0o777) == "0o600"
        assert info["url"] == url and info["console"] == f"{url}/console/"
        assert info["admin_key_file"] == str(run_dir / "admin.key")
        assert info["grpc_token_file"] == str(run_dir / "grpc.token")
        assert info["samples_dir"] == str(ROOT / "samples")
        assert info["redis_url"].startswith("redis://127.0.0.1:")
        assert info["face_targets"].startswith("127.0.0.1:")
        assert info["object_targets"].startswith("127.0.0.1:")

        # the percept command, from a folder below the project: no --server, no --api-key
        health = run([sys.executable, "-m", "percept", "health", "--json"], below)
        assert health.returncode == 0, health.stderr
        assert json.loads(health.stdout)["server"] == url
        faces = run(
            [sys.executable, "-m", "percept", "detect", "face", "zidane.jpg", "--json"], below
        )
        assert faces.returncode == 0, faces.stderr
        assert len(json.loads(faces.stdout)[0]["result"]["faces"]) == 1

        # python -m gateway keys: the stack's Redis, holding the stack's admin key
        keys = run([sys.executable, "-m", "gateway", "keys", "list"], below)
        assert keys.returncode == 0, keys.stderr
        assert f"make run stack's Redis {info['redis_url']}" in keys.stderr
        assert "make run admin" in keys.stdout and "admin" in keys.stdout

        # the SDK: percept.Client() (admin key) and percept.GrpcClient() (the token)
        script = below / "clients.py"
        script.write_text(CLIENTS)
        sdk = run([sys.executable, str(script), str(photo)], below)
        assert sdk.returncode == 0, sdk.stderr
        assert sdk.stdout.split("\n")[:2] == [f"rest {url} 1", "grpc 1"]

        # from anywhere else, PERCEPT_RUN_DIR names the stack
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        named = run(
            [sys.executable, str(script), str(photo)], elsewhere, PERCEPT_RUN_DIR=str(run_dir)
        )
        assert named.returncode == 0 and f"rest {url} 1" in named.stdout, named.stderr

        stack.stop()
        stopped = True
        assert not stack_file.exists()  # a clean stop takes it away
    finally:
        if not stopped:
            stack.stop()
