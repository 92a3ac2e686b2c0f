"""FaceServicer translation with a fake engine (no model, no server)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as pb

from face_service.inference import Box, Face, FaceOptions, ImageFaces, compare_encodings
from face_service.servicer import FaceServicer, options_from_proto
from percept_runtime.errors import InvalidInput
from percept_runtime.video import VideoPolicy


class FakeEngine:
    """Finds one face whose box encodes the request, and records options."""

    def __init__(self) -> None:
        self.seen: list[FaceOptions] = []

    async def detect_image(self, data: bytes, opts: FaceOptions) -> ImageFaces:
        self.seen.append(opts)
        if data == b"bad":
            raise InvalidInput("not an image")
        n = len(data)
        face = Face(
            Box(n, 2 * n, 3 * n, 4 * n),
            encoding=np.full(128, n / 100, np.float32) if opts.encodings else None,
        )
        return ImageFaces(100, 50, [face])

    async def detect_frame(self, rgb, opts):
        raise AssertionError("not used")


def servicer(engine=None) -> FaceServicer:
    return FaceServicer(engine or FakeEngine(), VideoPolicy(), window=3)


def test_option_defaults():
    opts = options_from_proto(pb.FaceOptions())
    assert opts == FaceOptions(
        detector="hog", upsample=1, landmarks=False, encodings=False, num_jitters=1
    )
    assert opts == FaceOptions()  # the domain's defaults are the proto's
    assert options_from_proto(pb.FaceOptions(upsample=0)).upsample == 0
    assert options_from_proto(pb.FaceOptions(detector=pb.DETECTOR_CNN)).detector == "cnn"


@pytest.mark.parametrize(
    ("options", "field"),
    [(pb.FaceOptions(detector=7), "detector"), (pb.FaceOptions(upsample=4), "upsample"),
     (pb.FaceOptions(num_jitters=101), "num_jitters"), (pb.FaceOptions(detection_max_side=8), "detection_max_side")],
)  # fmt: skip
def test_bad_options_name_the_field(options, field):
    with pytest.raises(InvalidInput, match=field):
        options_from_proto(options)


def test_detect_translates_boxes_and_sizes():
    response = asyncio.run(
        servicer().DetectFaces(pb.DetectFacesRequest(image=image_pb2.Image(content=b"abc")), None)
    )
    assert (response.image_width, response.image_height) == (100, 50)
    box = response.faces[0].box
    assert (box.left, box.top, box.right, box.bottom) == (3, 6, 9, 12)
    assert len(response.faces[0].encoding) == 0


def test_compare_with_given_encodings_forces_encodings():
    engine = FakeEngine()
    request = pb.CompareFacesRequest(
        probe=image_pb2.Image(content=b"x" * 10),
        reference_encodings=pb.FaceEncodingList(
            encodings=[pb.FaceEncoding(values=[0.1] * 128), pb.FaceEncoding(values=[0.9] * 128)]
        ),
    )
    response = asyncio.run(servicer(engine).CompareFaces(request, None))
    assert engine.seen[0].encodings
    assert [(m.reference_index, m.match) for m in response.matches] == [(0, True), (1, False)]
    assert response.tolerance == pytest.approx(0.6)


def test_compare_needs_a_reference():
    with pytest.raises(InvalidInput, match="reference"):
        asyncio.run(
            servicer().CompareFaces(
                pb.CompareFacesRequest(probe=image_pb2.Image(content=b"x")), None
            )
        )


def test_compare_encodings_distances():
    a, b = np.zeros(128), np.full(128, 0.1)
    matches = compare_encodings([a], [a, b], tolerance=0.6)
    assert matches[0].distance == 0 and matches[0].match
    assert matches[1].distance == pytest.approx(np.sqrt(128) * 0.1) and not matches[1].match


def test_stream_uses_first_options_and_names_bad_frame():
    engine = FakeEngine()

    async def requests():
        yield pb.StreamFacesRequest(
            image=image_pb2.Image(content=b"a"), options=pb.FaceOptions(upsample=2)
        )
        yield pb.StreamFacesRequest(image=image_pb2.Image(content=b"bb"))
        yield pb.StreamFacesRequest(image=image_pb2.Image(content=b"bad"))

    async def main():
        out = []
        with pytest.raises(InvalidInput, match="frame 2"):
            async for response in servicer(engine).StreamFaces(requests(), None):
                out.append(response)
        return out

    out = asyncio.run(main())
    assert [r.frame_index for r in out] == [0, 1]
    assert [r.faces[0].box.left for r in out] == [1, 2]
    assert [o.upsample for o in engine.seen] == [2, 2, 2]
