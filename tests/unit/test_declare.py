"""Backends and kinds declared once: what a declaration gives (settings by
the backend's name, the generic result shape) and what it refuses."""

from __future__ import annotations

import sys

import pytest
from percept.object.v1 import object_service_pb2 as object_pb

from gateway import declare, models, results
from gateway.kinds import FACE, KINDS, OBJECT
from gateway.settings import GatewaySettings
from tests.toy.build import generate

OBJECT_SERVICE = object_pb.DESCRIPTOR.services_by_name["ObjectService"]


@pytest.fixture(scope="module")
def toy_pb(tmp_path_factory):
    """The toy's generated messages (tests/toy), importable for this module."""
    out = generate(tmp_path_factory.mktemp("toy-gen"))
    sys.path.insert(0, str(out))
    try:
        from toy.v1 import toy_pb2

        yield toy_pb2
    finally:
        sys.path.remove(str(out))


def test_built_in_backends_are_declared_with_their_settings_defaults(monkeypatch):
    for name in ("GATEWAY_FACE_TARGETS", "GATEWAY_OBJECT_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    assert declare.backends()[:2] == (FACE, OBJECT)
    assert declare.kinds()[: len(KINDS)] == KINDS
    settings = GatewaySettings()
    assert (settings.backend(FACE).targets, settings.backend(FACE).concurrency) == (
        "127.0.0.1:50051",
        4,
    )
    assert settings.backend(OBJECT).targets == "127.0.0.1:50052"


def test_a_backends_settings_come_from_its_name(monkeypatch):
    registry = declare.Registry()
    pose = registry.backend("pose", OBJECT_SERVICE, targets="127.0.0.1:50099", concurrency=2)
    assert GatewaySettings().backend(pose).model_dump() == {
        "targets": "127.0.0.1:50099",
        "concurrency": 2,
    }
    monkeypatch.setenv("GATEWAY_POSE_TARGETS", "dns:///pose:50099")
    monkeypatch.setenv("GATEWAY_POSE_CONCURRENCY", "9")
    assert GatewaySettings().backend(pose).model_dump() == {
        "targets": "dns:///pose:50099",
        "concurrency": 9,
    }
    # a keyword wins over env, as for every setting
    assert GatewaySettings(pose_targets="10.0.0.1:1").backend(pose).targets == "10.0.0.1:1"
    monkeypatch.setenv("GATEWAY_POSE_CONCURRENCY", "0")
    with pytest.raises(ValueError, match="GATEWAY_POSE_"):
        GatewaySettings().backend(pose)


def test_declarations_are_checked_when_made():
    registry = declare.Registry()
    with pytest.raises(ValueError, match="lower-case"):
        registry.backend("Pose", OBJECT_SERVICE, targets="x:1")
    pose = registry.backend("pose", OBJECT_SERVICE, targets="127.0.0.1:50099")
    assert registry.backend("pose", OBJECT_SERVICE, targets="127.0.0.1:50099") == pose
    with pytest.raises(ValueError, match="declared twice"):
        registry.backend("pose", OBJECT_SERVICE, targets="127.0.0.1:1")
    with pytest.raises(ValueError, match="declare its backend"):
        registry.kind("k", "image", FACE, "DetectFaces", "/api/k", "k")
    with pytest.raises(ValueError, match="no method 'Nope'"):
        registry.kind("k", "image", pose, "Nope", "/api/k", "k")
    with pytest.raises(ValueError, match="has no video field"):
        registry.kind("k", "video", pose, "DetectObjects", "/api/k", "k")
    first = registry.kind("k", "image", pose, "DetectObjects", "/api/k", "k")
    with pytest.raises(ValueError, match="already k:image's route"):
        registry.kind("other", "image", pose, "DetectObjects", "/api/k", "k")
    assert registry.kinds() == (first,) and registry.backends() == (pose,)
    # the generic shape, unless the kind names its own
    assert first.result_model is models.GenericImageResult
    video = registry.kind("k", "video", pose, "DetectObjectsInVideo", "/api/kv", "k")
    assert video.result_model is models.GenericVideoResult


def test_the_generic_shape_carries_what_each_item_has(toy_pb):
    response = toy_pb.FindShapesResponse(
        image_width=40,
        image_height=30,
        items=[
            toy_pb.Shape(
                box={"left": 1, "top": 2, "right": 3, "bottom": 4},
                label="cat",
                score=0.5,
                keypoints=[toy_pb.Keypoint(x=1.5, y=2.5)],
                mask=[{"x": 1, "y": 2}, {"x": 3, "y": 2}, {"x": 2, "y": 4}],
                track_id=3,
            ),
            toy_pb.Shape(),  # nothing set: no box, label, keypoints, mask or track
        ],
    )
    assert results.generic()(response) == {
        "items": [
            {
                "box": {"left": 1.0, "top": 2.0, "right": 3.0, "bottom": 4.0},
                "label": "cat",
                "score": 0.5,
                "keypoints": [{"x": 1.5, "y": 2.5, "score": 0.0}],
                "mask": [[1.0, 2.0], [3.0, 2.0], [2.0, 4.0]],
                "track_id": 3,
            },
            {"score": 0.0},
        ],
        "image_width": 40,
        "image_height": 30,
    }
    # and it validates against the model OpenAPI documents
    models.GenericImageResult.model_validate(results.generic()(response))


def test_every_built_in_backends_settings_are_in_the_readme():
    from tests.support import ROOT

    readme = (ROOT / "README.md").read_text()
    missing = [
        f"GATEWAY_{b.name.upper()}_{setting}"
        for b in declare.backends()
        for setting in ("TARGETS", "CONCURRENCY")
        if f"`GATEWAY_{b.name.upper()}_{setting}`" not in readme
    ]
    assert not missing, f"README.md lacks {missing}"
