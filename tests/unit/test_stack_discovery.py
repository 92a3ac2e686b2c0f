"""How the SDK, the `percept` command and `python -m gateway keys` find Percept:
arguments > environment > the running `make run` stack's stack.json > defaults.
REST calls go through httpx's MockTransport; gRPC calls reach an in-process
health server that keeps the metadata it got."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import httpx
import percept
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from percept.types import Kind

from gateway import __main__ as gateway_main
from gateway.keys import Limits

STACK_URL = "http://127.0.0.1:8123"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A project directory with nothing exported: the tests work in a folder below it."""
    for name in list(os.environ):
        if name.startswith("PERCEPT_") or name in ("REDIS_URL", "GATEWAY_REDIS_URL"):
            monkeypatch.delenv(name)
    below = tmp_path / "project" / "notebooks" / "today"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    return tmp_path / "project"


def write_stack(
    run_dir: Path,
    *,
    pid: int | None = None,
    url: str = STACK_URL,
    face: str = "127.0.0.1:7001",
    obj: str = "127.0.0.1:7002",
    key: str = "pk_stack_admin",
    token: str = "stack-grpc-token",
    redis_url: str = "redis://127.0.0.1:7379/0",
) -> Path:
    """A stack.json as scripts/run_stack.py writes it (absolute paths), its secrets beside it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "admin.key").write_text(key + "\n")
    (run_dir / "grpc.token").write_text(token + "\n")
    info = {
        "url": url,
        "console": f"{url}/console/",
        "docs": f"{url}/docs",
        "redis_url": redis_url,
        "face_targets": face,
        "object_targets": obj,
        "admin_key_file": str(run_dir / "admin.key"),
        "grpc_token_file": str(run_dir / "grpc.token"),
        "samples_dir": str(run_dir.parent / "samples"),
        "pid": os.getpid() if pid is None else pid,
    }
    path = run_dir / "stack.json"
    path.write_text(json.dumps(info))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def rest_call(**kwargs) -> httpx.Request:
    """The request percept.Client(**kwargs).health() sends."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok", "checks": {}})

    with percept.Client(transport=httpx.MockTransport(answer), **kwargs) as client:
        client.health()
    return seen[0]


class Recording(health_pb2_grpc.HealthServicer):
    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    def Check(self, request, context):  # noqa: N802 - the generated name
        self.metadata.append(dict(context.invocation_metadata()))
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
def grpc_server():
    """An in-process gRPC health server on a free port: (address, what it received)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    recording = Recording()
    health_pb2_grpc.add_HealthServicer_to_server(recording, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", recording.metadata
    server.stop(None)


# --- REST --------------------------------------------------------------------------------------


def test_rest_defaults_without_environment_or_stack(home):
    request = rest_call()
    assert str(request.url).startswith("http://127.0.0.1:8000/")
    assert "authorization" not in request.headers


def test_rest_finds_the_stack_in_a_parent_run_directory(home):
    write_stack(home / ".run")
    request = rest_call()
    assert str(request.url).startswith(STACK_URL + "/")
    assert request.headers["authorization"] == "Bearer pk_stack_admin"


def test_rest_environment_beats_the_stack_and_the_stack_key_stays_home(home, monkeypatch):
    write_stack(home / ".run")
    monkeypatch.setenv("PERCEPT_URL", "http://gateway.example:9000")
    request = rest_call()
    assert str(request.url).startswith("http://gateway.example:9000/")
    assert "authorization" not in request.headers  # the stack's admin key goes only to the stack
    monkeypatch.setenv("PERCEPT_API_KEY", "pk_env")
    assert rest_call().headers["authorization"] == "Bearer pk_env"
    # the stack's own URL, spelled another way, still gets the stack's key
    monkeypatch.delenv("PERCEPT_API_KEY")
    monkeypatch.setenv("PERCEPT_URL", "http://localhost:8123/")
    assert rest_call().headers["authorization"] == "Bearer pk_stack_admin"


def test_rest_arguments_beat_the_environment(home, monkeypatch):
    write_stack(home / ".run")
    monkeypatch.setenv("PERCEPT_URL", "http://gateway.example:9000")
    monkeypatch.setenv("PERCEPT_API_KEY", "pk_env")
    request = rest_call(url="http://other.example:7000", api_key="pk_arg")
    assert str(request.url).startswith("http://other.example:7000/")
    assert request.headers["authorization"] == "Bearer pk_arg"
    assert "authorization" not in rest_call(api_key="").headers  # "" sends no key at all


def test_a_stale_stack_is_ignored(home):
    write_stack(home / ".run", pid=dead_pid())
    request = rest_call()
    assert str(request.url).startswith("http://127.0.0.1:8000/")
    assert "authorization" not in request.headers


def test_percept_run_dir_names_the_stack(home, monkeypatch, tmp_path):
    write_stack(home / ".run", url="http://127.0.0.1:8124", key="pk_nearby")
    elsewhere = tmp_path / "elsewhere-run"
    write_stack(elsewhere, key="pk_named")
    monkeypatch.setenv("PERCEPT_RUN_DIR", str(elsewhere))
    request = rest_call()
    assert str(request.url).startswith(STACK_URL + "/")
    assert request.headers["authorization"] == "Bearer pk_named"
    # a PERCEPT_RUN_DIR without a stack: no stack, not the nearby one
    monkeypatch.setenv("PERCEPT_RUN_DIR", str(tmp_path / "nothing-here"))
    assert str(rest_call().url).startswith("http://127.0.0.1:8000/")


def test_a_broken_stack_file_is_ignored(home):
    (home / ".run").mkdir()
    (home / ".run" / "stack.json").write_text("{not json")
    assert str(rest_call().url).startswith("http://127.0.0.1:8000/")


# --- gRPC --------------------------------------------------------------------------------------


def test_grpc_defaults_without_environment_or_stack(home):
    with percept.GrpcClient() as client:
        assert client.targets == {Kind.FACE: "127.0.0.1:50051", Kind.OBJECT: "127.0.0.1:50052"}


def test_grpc_client_with_no_arguments_reaches_the_stack_with_its_token(home, grpc_server):
    address, received = grpc_server
    write_stack(home / ".run", face=address, obj=address)
    with percept.GrpcClient() as client:
        assert client.health().ready
    assert [m.get("authorization") for m in received] == ["Bearer stack-grpc-token"] * 2


def test_grpc_token_is_not_the_rest_key(home, grpc_server, monkeypatch):
    address, received = grpc_server
    monkeypatch.setenv("PERCEPT_API_KEY", "pk_rest_only")
    with percept.GrpcClient(face=address, object=address) as client:
        client.health()
    assert [m.get("authorization") for m in received] == [None, None]
    monkeypatch.setenv("PERCEPT_GRPC_TOKEN", "env-token")
    with percept.GrpcClient(face=address, object=address) as client:
        client.health()
    assert received[-1]["authorization"] == "Bearer env-token"
    with percept.GrpcClient(face=address, object=address, token="arg-token") as client:
        client.health()
    assert received[-1]["authorization"] == "Bearer arg-token"


def test_grpc_environment_beats_the_stack_and_the_token_stays_home(home, grpc_server, monkeypatch):
    address, received = grpc_server
    write_stack(home / ".run")
    monkeypatch.setenv("PERCEPT_FACE_TARGET", address)
    with percept.GrpcClient(object=address) as client:
        assert client.targets == {Kind.FACE: address, Kind.OBJECT: address}
        client.health()
    assert [m.get("authorization") for m in received] == [None, None]
    with percept.GrpcClient() as client:  # the face target from the environment, object the stack's
        assert client.targets == {Kind.FACE: address, Kind.OBJECT: "127.0.0.1:7002"}


def test_grpc_stale_stack_is_ignored(home):
    write_stack(home / ".run", pid=dead_pid())
    with percept.GrpcClient() as client:
        assert client.targets[Kind.FACE] == "127.0.0.1:50051"


def test_grpc_api_key_is_a_deprecated_name_for_the_token(home, grpc_server):
    address, received = grpc_server
    with pytest.warns(DeprecationWarning, match="token="):
        client = percept.GrpcClient(face=address, object=address, api_key="old-name")
    with client:
        client.health()
    assert received[-1]["authorization"] == "Bearer old-name"


def test_async_clients_find_the_stack_too(home):
    write_stack(home / ".run")
    seen: list[httpx.Request] = []

    def answer(request):
        seen.append(request)
        return httpx.Response(200, json={"status": "ok"})

    async def run() -> dict:
        async with percept.AsyncGrpcClient() as grpc_client:
            targets = dict(grpc_client.targets)
        async with percept.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            await client.health()
        return targets

    assert asyncio.run(run()) == {Kind.FACE: "127.0.0.1:7001", Kind.OBJECT: "127.0.0.1:7002"}
    assert str(seen[0].url).startswith(STACK_URL + "/")
    assert seen[0].headers["authorization"] == "Bearer pk_stack_admin"


# --- python -m gateway -------------------------------------------------------------------------


def test_gateway_keys_redis_redis_url_then_stack_then_default(home, monkeypatch, capsys):
    assert gateway_main._redis_url() == "redis://127.0.0.1:6379/0"
    assert "no REDIS_URL and no running make run stack found" in capsys.readouterr().err
    write_stack(home / ".run", redis_url="redis://:sekrit@127.0.0.1:7379/0")
    assert gateway_main._redis_url() == "redis://:sekrit@127.0.0.1:7379/0"
    said = capsys.readouterr().err
    assert "make run stack's Redis redis://:***@127.0.0.1:7379/0" in said and "sekrit" not in said
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:7400/2")
    assert gateway_main._redis_url() == "redis://127.0.0.1:7400/2"


def test_gateway_keys_skip_a_stale_stack(home, capsys):
    write_stack(home / ".run", pid=dead_pid())
    assert gateway_main._redis_url() == "redis://127.0.0.1:6379/0"
    assert "no running make run stack" in capsys.readouterr().err


def test_gateway_help_names_the_keys_command(capsys):
    with pytest.raises(SystemExit) as info:
        gateway_main.main(["--help"])
    assert info.value.code == 0
    said = capsys.readouterr().out
    assert "keys" in said and "create, list and revoke API keys" in said


def test_key_limits_read_as_people_write_them():
    text = gateway_main._limits_text(Limits(rps=0.5, burst=3, tasks=1_000_000_000, bytes=500 << 20))
    assert text == "rps=0.5, burst=3, tasks=1000000000, bytes=500 MiB"
    assert gateway_main._limits_text(Limits(bytes=1536, videos=2)) == "bytes=1.5 KiB, videos=2"
    assert gateway_main._limits_text(Limits()) == "no limits"
