"""The images `make images` builds and the docker-compose stack, run as a user would.

docker-compose.yml comes up with two face and two object replicas (plus the third-party
stand-ins of deploy/standins/ where redis/postgres cannot be pulled), waits on every
health check, then: detections through the gateway over REST (both replicas of each
service serve some: the gateway records the replica per task), straight to each replica
over gRPC from inside the compose network (replicas name themselves in trailing
metadata), one face replica killed mid-batch (its work finishes on the other), and the
stack brought down with nothing left behind. The images themselves: non-root, no
compiler, the gateway without a model library. Image sizes and cold starts (container
start -> SERVING in its log) are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pytest
from percept import Kind

from harness.faces import encode, photos
from tests.support import ROOT, free_port

pytestmark = [pytest.mark.compose, pytest.mark.timeout(3600)]

TAG = os.environ.get("PERCEPT_TAG", "0.1.0")
IMAGES = {name: f"percept/{name}:{TAG}" for name in ("gateway", "face", "object")}
SECRETS = ROOT / "deploy" / "k8s" / "secrets"
STANDINS = ROOT / "deploy" / "standins" / "compose.standins.yml"
REPLICAS = {"face": 2, "object": 2}
UP_TIMEOUT_S = 1800  # two cores: four model replicas load side by side
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "make")
MODEL_LIBRARIES = ("torch", "torchvision", "dlib", "face_recognition", "ultralytics", "onnxruntime")

# Run inside the gateway container (which holds the client certificate, the token and
# the generated stubs): one DetectFaces / DetectObjects call to every address the
# service's DNS name resolves to; prints, per address, the replica named in the
# trailing metadata and how many things it found.
GRPC_PROBE = r"""
import json, socket, sys
import grpc
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as fpb, face_service_pb2_grpc as fgrpc
from percept.object.v1 import object_service_pb2 as opb, object_service_pb2_grpc as ogrpc

images = json.loads(sys.stdin.read())
read = lambda p: open(p, "rb").read()
credentials = grpc.ssl_channel_credentials(
    read("/run/secrets/grpc-ca"), read("/run/secrets/grpc-client-key"),
    read("/run/secrets/grpc-client-cert"))
metadata = (("authorization", "Bearer " + read("/run/secrets/grpc-token").decode().strip()),)
out = {}
for service, port in (("face", 50051), ("object", 50052)):
    addresses = sorted({info[4][0] for info in socket.getaddrinfo(service, port, type=socket.SOCK_STREAM)})
    out[service] = []
    for address in addresses:
        channel = grpc.secure_channel(
            f"{address}:{port}", credentials, (("grpc.ssl_target_name_override", service),))
        image = image_pb2.Image(content=bytes.fromhex(images[service]))
        if service == "face":
            call = fgrpc.FaceServiceStub(channel).DetectFaces.with_call
            reply, c = call(fpb.DetectFacesRequest(image=image), metadata=metadata, timeout=120)
            found = len(reply.faces)
        else:
            call = ogrpc.ObjectServiceStub(channel).DetectObjects.with_call
            reply, c = call(opb.DetectObjectsRequest(image=image), metadata=metadata, timeout=120)
            found = len(reply.detections)
        trailing = dict(c.trailing_metadata())
        out[service].append({"replica": trailing.get("x-percept-replica"), "found": found})
        channel.close()
print(json.dumps(out))
"""


def run(argv: Sequence[str], *, timeout: float = 600, check: bool = True, **kw):
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv[:6])}... exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def docker(*args: str, **kw):
    return run(["docker", *args], **kw)


def pullable(image: str) -> bool:
    if docker("image", "inspect", image, check=False).returncode == 0:
        return True
    return docker("pull", "-q", image, check=False, timeout=120).returncode == 0


def parse_time(stamp: str) -> datetime:
    """Docker's RFC 3339 times, nanoseconds cut to what datetime holds."""
    stamp = stamp.strip().replace("Z", "+00:00")
    if "." in stamp:
        head, rest = stamp.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        stamp = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(stamp)


@dataclass
class Stack:
    project: str
    files: list[str]
    port: int
    env: dict[str, str]
    down_result: subprocess.CompletedProcess | None = None
    volumes_seen: set[str] = field(default_factory=set)

    def compose(
        self, *args: str, timeout: float = 600, check: bool = True, stdin: str | None = None
    ):
        binary = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
        files = [arg for f in self.files for arg in ("-f", f)]
        argv = [*binary, "-p", self.project, *files, *args]
        return run(argv, timeout=timeout, check=check, env=self.env, input=stdin)

    def containers(self, service: str | None = None, *, running: bool = True) -> list[dict]:
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = docker("ps", "-q", *([] if running else ["-a"]), *filters).stdout.split()
        if not ids:
            return []
        found = json.loads(docker("inspect", *ids).stdout)
        for info in found:
            self.volumes_seen |= {m["Name"] for m in info["Mounts"] if m["Type"] == "volume"}
        return sorted(found, key=lambda c: c["Name"])

    def replica_name(self, container: dict, port: int) -> str:
        # A replica names itself host:port; a container's host name is its short id.
        return f"{container['Config']['Hostname']}:{port}"

    def down(self) -> subprocess.CompletedProcess:
        if self.down_result is None:
            self.containers(running=False)  # note their volumes first
            self.down_result = self.compose(
                "down", "--volumes", "--remove-orphans", "--timeout", "60", timeout=600, check=False
            )
        return self.down_result


def wait_healthy(stack: Stack, expected: dict[str, int], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        containers = stack.containers()
        states = {c["Name"]: (c["State"].get("Health") or {}).get("Status") for c in containers}
        counts: dict[str, int] = {}
        for c in containers:
            service = c["Config"]["Labels"]["com.docker.compose.service"]
            counts[service] = counts.get(service, 0) + 1
        if counts == expected and all(s == "healthy" for s in states.values()):
            return containers
        if time.monotonic() > deadline:
            logs = stack.compose("logs", "--tail", "40", check=False).stdout
            raise AssertionError(f"not all healthy after {timeout:.0f} s: {states}\n{logs[-8000:]}")
        time.sleep(5)


@pytest.fixture(scope="module")
def images() -> dict[str, dict]:
    if shutil.which("docker") is None:
        pytest.fail("no docker client: install Docker (Debian: apt-get install docker.io)")
    missing = [i for i in IMAGES.values() if docker("image", "inspect", i, check=False).returncode]
    assert not missing, f"{missing} not built: run `make images` first"
    return {name: json.loads(docker("image", "inspect", i).stdout)[0] for name, i in IMAGES.items()}


@pytest.fixture(scope="module")
def stack(images) -> Iterator[Stack]:
    if not (SECRETS / "gallery-url").is_file():
        sys.path.insert(0, str(ROOT / "scripts"))
        from make_certs import write_pki

        write_pki(SECRETS)
    files = ["docker-compose.yml"]
    standins = not pullable("redis:7.4.6-bookworm") or not pullable("postgres:16.6-bookworm")
    if standins:
        files.append(str(STANDINS.relative_to(ROOT)))
    port = free_port()
    env = {**os.environ, "GATEWAY_PUBLISH_PORT": str(port), "PERCEPT_TAG": TAG}
    project = f"percepttest{os.getpid()}"
    stack = Stack(project, files, port, env)
    if standins:
        stack.compose("build", "redis", "postgres", timeout=1200)
    try:
        started = time.monotonic()
        stack.compose(
            "up", "--detach", "--no-build",
            "--scale", f"face={REPLICAS['face']}", "--scale", f"object={REPLICAS['object']}",
            timeout=UP_TIMEOUT_S,
        )  # fmt: skip
        expected = {"redis": 1, "postgres": 1, "gateway": 1, "worker": 1, "sources": 1, **REPLICAS}
        wait_healthy(stack, expected, UP_TIMEOUT_S - (time.monotonic() - started))
        print(
            f"\nstack {project} healthy in {time.monotonic() - started:.0f} s (up -> all healthy)"
        )
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def client(stack):
    import percept

    created = stack.compose(
        "exec", "-T", "gateway", "python", "-m", "gateway", "keys", "create",
        "--role", "admin", "--name", "compose-test", "--json",
    )  # fmt: skip
    key = json.loads(created.stdout.strip().splitlines()[-1])["key"]
    with percept.Client(f"http://127.0.0.1:{stack.port}", api_key=key, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def face_jpeg() -> bytes:
    return encode(photos()["astronaut"].rgb)


@pytest.fixture(scope="module")
def slow_face_jpeg() -> bytes:
    """The astronaut tiled 3 x 3 (1536 px square): about a second of HOG per call."""
    return encode(np.tile(photos()["astronaut"].rgb, (3, 3, 1)))


@pytest.fixture(scope="module")
def object_jpeg() -> bytes:
    from object_service.synthetic import make_scene

    scene, shapes = make_scene(np.random.default_rng(7), n_objects=(3, 4))
    assert shapes
    return encode(scene)


def assert_finds_the_astronaut(task) -> None:
    left, top, right, bottom = photos()["astronaut"].box
    boxes = [f.box for f in task.result.faces]
    assert any(
        abs(b.left - left) < 15 and abs(b.top - top) < 15 and abs(b.right - right) < 15
        for b in boxes
    ), boxes


def replicas_of(stack: Stack, service: str) -> set[str]:
    port = {"face": 50051, "object": 50052}[service]
    return {stack.replica_name(c, port) for c in stack.containers(service)}


# --- the images -----------------------------------------------------------------------


def test_images_are_non_root_without_a_compiler_and_the_gateway_has_no_model_library(images):
    print()
    for name, info in images.items():
        image = IMAGES[name]
        print(f"{image}: {info['Size'] / 1e6:.0f} MB")
        assert info["Config"]["User"] == "10001:10001", (
            f"{image} runs as {info['Config']['User']!r}"
        )
        probe = "for c in " + " ".join(COMPILERS) + '; do command -v "$c"; done; true'
        found = docker("run", "--rm", "--entrypoint", "sh", image, "-c", probe).stdout.split()
        assert not found, f"{image} carries a compiler: {found}"
        whoami = docker("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
        assert whoami == "10001"
    probe = (
        "import importlib.util, json; "
        f"print(json.dumps([m for m in {list(MODEL_LIBRARIES)!r} if importlib.util.find_spec(m)]))"
    )
    present = docker("run", "--rm", IMAGES["gateway"], "python", "-c", probe).stdout
    assert json.loads(present) == [], f"the gateway image carries {present}"
    # ...while the model images do carry theirs (the probe finds what is there).
    present = json.loads(docker("run", "--rm", IMAGES["object"], "python", "-c", probe).stdout)
    assert {"torch", "ultralytics", "onnxruntime"} <= set(present)


# --- the stack ------------------------------------------------------------------------


def test_every_service_is_healthy_and_each_replica_reached_serving(stack):
    print()
    for service in ("face", "object"):
        containers = stack.containers(service)
        assert len(containers) == REPLICAS[service]
        for container in containers:
            started = parse_time(container["State"]["StartedAt"])
            logs = docker("logs", "--timestamps", container["Id"])
            lines = (logs.stdout + logs.stderr).splitlines()
            serving = [line for line in lines if " SERVING " in f" {line} "]
            assert serving, f"{container['Name']} never logged SERVING:\n" + "\n".join(lines[-20:])
            cold = (parse_time(serving[0].split(" ", 1)[0]) - started).total_seconds()
            print(f"{container['Name']}: container start -> SERVING in {cold:.1f} s")


def test_rest_detections_through_the_gateway_reach_both_replicas(
    stack, client, face_jpeg, object_jpeg
):
    tasks = []
    for _ in range(8):
        tasks.append(client.submit("face", face_jpeg, media="image"))
        tasks.append(client.submit("object", object_jpeg, media="image"))
    done = [client.wait(task, timeout=600) for task in tasks]
    served: dict[str, set[str]] = {"face": set(), "object": set()}
    for task in done:
        assert task.succeeded, (task.task_id, task.status, task.error)
        if task.kind is Kind.FACE:
            served["face"].add(task.replica)
            assert_finds_the_astronaut(task)
        else:
            served["object"].add(task.replica)
            assert len(task.result.detections) >= 1
    for service in ("face", "object"):
        assert served[service] == replicas_of(stack, service), (service, served[service])


def test_grpc_straight_to_each_replica_names_it_in_trailing_metadata(stack, face_jpeg, object_jpeg):
    images = json.dumps({"face": face_jpeg.hex(), "object": object_jpeg.hex()})
    probe = stack.compose("exec", "-T", "gateway", "python", "-c", GRPC_PROBE, stdin=images)
    answers = json.loads(probe.stdout.strip().splitlines()[-1])
    for service in ("face", "object"):
        named = {a["replica"] for a in answers[service]}
        assert named == replicas_of(stack, service), (service, answers[service])
        assert all(a["found"] >= 1 for a in answers[service]), answers[service]


def test_a_killed_face_replica_s_work_finishes_on_the_other(stack, client, slow_face_jpeg):
    victim, survivor = stack.containers("face")
    victim_name = stack.replica_name(victim, 50051)
    survivor_name = stack.replica_name(survivor, 50051)
    # Kept down once killed (compose's restart policy would bring it back).
    docker("update", "--restart=no", victim["Id"])
    tasks = [client.submit("face", slow_face_jpeg, media="image") for _ in range(12)]
    # Killed as soon as it has finished one task: it is busy with the next by then
    # (each takes about a second; the gateway keeps 2 calls per replica in flight).
    open_ids, deadline = [t.task_id for t in tasks], time.monotonic() + 600
    while open_ids and time.monotonic() < deadline:
        states = [client.task(task_id) for task_id in open_ids]
        if any(t.ended and t.replica == victim_name for t in states):
            break
        open_ids = [t.task_id for t in states if not t.ended]
        time.sleep(0.1)
    docker("kill", victim["Id"])
    killed_at = time.time()
    done = [client.wait(task, timeout=600) for task in tasks]
    after = [t for t in done if t.finished_at and t.finished_at.timestamp() > killed_at]
    retried = [t for t in done if t.attempts > 1]
    counts = {name: sum(t.replica == name for t in done) for name in (victim_name, survivor_name)}
    print(
        f"\n{len(done)} tasks, {len(after)} finished after the kill, {len(retried)} retried: {counts}"
    )
    for task in done:
        assert task.succeeded, (task.task_id, task.status, task.error)
        assert_finds_the_astronaut(task)
    assert counts[victim_name] >= 1, "the victim never served: nothing was in flight on it"
    assert after and {t.replica for t in after} == {survivor_name}
    # What the victim was running when it died was run again, on the survivor.
    assert retried and {t.replica for t in retried} == {survivor_name}
    later = client.submit("face", slow_face_jpeg, media="image")
    assert client.wait(later, timeout=600).replica == survivor_name


def test_the_stack_comes_down_with_nothing_left_behind(stack):
    volumes = set(stack.volumes_seen)
    result = stack.down()
    assert result.returncode == 0, result.stderr[-3000:]
    label = f"label=com.docker.compose.project={stack.project}"
    assert docker("ps", "-aq", "--filter", label).stdout.split() == []
    assert docker("network", "ls", "-q", "--filter", label).stdout.split() == []
    assert docker("volume", "ls", "-q", "--filter", label).stdout.split() == []
    assert volumes, "the stack mounted no volume at all?"
    left = [v for v in volumes if docker("volume", "inspect", v, check=False).returncode == 0]
    assert not left, f"volumes left behind: {left}"
