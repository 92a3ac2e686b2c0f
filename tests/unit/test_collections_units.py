"""Face collections without models: the servicer's translation with a fake engine
over a real gallery (SQLite in a temporary directory), health following a
dependency, the gateway's JSON and the SDK's types reading it back."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import numpy as np
import percept
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as pb

from face_service.collections import FaceCollections
from face_service.gallery import Gallery, GallerySettings
from face_service.inference import Box, ChosenFaces, Face, ImageFaces
from face_service.servicer import FaceServicer
from gateway import results
from percept_runtime.errors import InvalidInput, NotFound
from percept_runtime.server import Availability, serve
from percept_runtime.settings import ServerSettings
from percept_runtime.video import VideoPolicy
from tests.support import free_port


def encoding_of(name: str) -> np.ndarray:
    """A stable unit-ish vector per person name."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


class FakeEngine:
    """Images are b"name,name,...": one 100-pixel face per name, left to right;
    b"tiny" holds a face too small; b"" none."""

    async def detect_image(self, data: bytes, opts) -> ImageFaces:
        names = [n for n in data.decode().split(",") if n]
        faces = [
            Face(Box(120 * i, 0, 120 * i + 100, 100), encoding=encoding_of(n) if opts.encodings else None)
            for i, n in enumerate(names)
        ]  # fmt: skip
        return ImageFaces(120 * max(1, len(names)), 100, faces)

    async def detect_frame(self, rgb, opts) -> ImageFaces:
        raise AssertionError("not used")

    async def largest_faces(self, data, opts, max_faces, min_side, purpose) -> ChosenFaces:
        if data == b"tiny":
            raise InvalidInput(f"too small for {purpose}")
        found = await self.detect_image(data, opts)
        if not found.faces:
            raise InvalidInput(f"no face found: {purpose} needs one")
        return ChosenFaces(found.width, found.height, found.faces[:max_faces], len(found.faces))


class Context:
    def __init__(self, tenant: str | None = None) -> None:
        self.metadata = (("x-percept-tenant", tenant),) if tenant else ()

    def invocation_metadata(self):
        return self.metadata


@pytest.fixture
def servicer(tmp_path):
    gallery = Gallery.open(GallerySettings(url=f"sqlite:///{tmp_path / 'g.sqlite3'}"))
    assert gallery.start(wait_s=10)
    yield FaceServicer(FakeEngine(), VideoPolicy(), 2, FaceCollections(FakeEngine(), gallery, 48))
    gallery.close()


def run(coro):
    return asyncio.run(coro)


def test_enroll_identify_search_verify_translate_to_the_protos(servicer):
    ctx = Context("acme")
    created = run(servicer.CreateCollection(pb.CreateCollectionRequest(collection_id="c"), ctx))
    assert created.collection.collection_id == "c" and created.collection.created_at.seconds > 0
    enrolled = run(
        servicer.EnrollFaces(
            pb.EnrollFacesRequest(
                collection_id="c", image=image_pb2.Image(content=b"ann,bob"), subject="ann",
                external_id="badge-7",
            ),
            ctx,
        )
    )  # fmt: skip
    assert enrolled.faces_found == 2 and len(enrolled.faces) == 1  # the largest only
    face = enrolled.faces[0]
    assert (face.subject, face.external_id, face.box.right) == ("ann", "badge-7", 100)
    run(
        servicer.EnrollFaces(
            pb.EnrollFacesRequest(collection_id="c", image=image_pb2.Image(content=b"bob"), subject="bob"),
            ctx,
        )
    )  # fmt: skip

    identified = run(
        servicer.IdentifyFaces(
            pb.IdentifyFacesRequest(
                collection_id="c", image=image_pb2.Image(content=b"bob,carl,ann"), top_k=2
            ),
            ctx,
        )
    )
    assert [[m.subject for m in f.matches] for f in identified.faces] == [["bob"], [], ["ann"]]
    assert all(not f.encoding for f in identified.faces)
    assert identified.threshold == pytest.approx(0.6)
    assert identified.faces[0].matches[0].distance == pytest.approx(0.0, abs=1e-5)

    verify = run(
        servicer.VerifyFace(
            pb.VerifyFaceRequest(
                collection_id="c", subject="ann", image=image_pb2.Image(content=b"bob")
            ),
            ctx,
        )
    )
    assert not verify.match and verify.distance > 0.6 and verify.face_id == face.face_id

    listed = run(servicer.ListFaces(pb.ListFacesRequest(collection_id="c", subject="bob"), ctx))
    assert [f.subject for f in listed.faces] == ["bob"]
    search = run(
        servicer.SearchFaces(pb.SearchFacesRequest(collection_id="c", face_id=face.face_id), ctx)
    )
    assert list(search.matches) == []  # nobody else looks like ann


def test_the_tenant_comes_from_the_metadata(servicer):
    run(servicer.CreateCollection(pb.CreateCollectionRequest(collection_id="c"), Context("a")))
    with pytest.raises(NotFound):
        run(servicer.DescribeCollection(pb.DescribeCollectionRequest(collection_id="c"), Context("b")))  # fmt: skip
    with pytest.raises(NotFound):  # no metadata: the "default" tenant
        run(servicer.DescribeCollection(pb.DescribeCollectionRequest(collection_id="c"), Context()))  # fmt: skip
    page = run(servicer.ListCollections(pb.ListCollectionsRequest(), Context("a")))
    assert [c.collection_id for c in page.collections] == ["c"]


def test_refusals_happen_before_detection(servicer):
    ctx = Context("t")
    run(servicer.CreateCollection(pb.CreateCollectionRequest(collection_id="c"), ctx))
    with pytest.raises(InvalidInput, match="too small for enrollment"):
        run(
            servicer.EnrollFaces(
                pb.EnrollFacesRequest(collection_id="c", image=image_pb2.Image(content=b"tiny"), subject="x"),
                ctx,
            )
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="subject"):
        run(servicer.EnrollFaces(pb.EnrollFacesRequest(collection_id="c", subject=""), ctx))
    with pytest.raises(InvalidInput, match="max_faces is 500"):
        run(servicer.EnrollFaces(pb.EnrollFacesRequest(collection_id="c", subject="x", max_faces=500), ctx))  # fmt: skip
    with pytest.raises(NotFound, match="collection 'nope' does not exist"):
        run(
            servicer.IdentifyFaces(
                pb.IdentifyFacesRequest(collection_id="nope", image=image_pb2.Image(content=b"x")), ctx
            )
        )  # fmt: skip
    count = run(servicer.DescribeCollection(pb.DescribeCollectionRequest(collection_id="c"), ctx))
    assert count.collection.face_count == 0


def test_health_follows_a_dependency():
    """serve() reports NOT_SERVING while an Availability says a dependency is down."""

    async def main():
        availability = Availability()
        availability.set("database", False)  # down before start-up ends
        stop = asyncio.Event()
        port = free_port()
        settings = ServerSettings(port=port, host="127.0.0.1", drain_delay_s=0, grace_period_s=0)

        async def nothing():
            return None

        server = asyncio.ensure_future(
            serve(settings, [], nothing, nothing, lambda: None, stop, availability)
        )
        statuses = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def status():
                for _ in range(100):
                    try:
                        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                        return reply.status
                    except grpc.aio.AioRpcError:
                        await asyncio.sleep(0.05)
                raise AssertionError("no health answer")

            await asyncio.sleep(0.3)
            statuses.append(await status())
            # From another thread, as the gallery's watchdog does.
            await asyncio.to_thread(availability.set, "database", True)
            await asyncio.sleep(0.1)
            statuses.append(await status())
            await asyncio.to_thread(availability.set, "database", False)
            await asyncio.sleep(0.1)
            statuses.append(await status())
        stop.set()
        await server
        return statuses

    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    assert asyncio.run(main()) == [not_serving, serving, not_serving]


# --- the gateway's JSON, read back by the SDK --------------------------------------------------


def test_the_sdk_reads_what_the_gateway_writes():
    response = pb.IdentifyFacesResponse(
        faces=[
            pb.Face(
                box=image_pb2.BoundingBox(left=1, top=2, right=30, bottom=40),
                matches=[
                    pb.IdentityMatch(face_id="f1", subject="ann", distance=0.25),
                    pb.IdentityMatch(face_id="f2", subject="ann", distance=0.31),
                ],
            ),
            pb.Face(box=image_pb2.BoundingBox(left=50, top=2, right=80, bottom=40)),
        ],
        image_width=100,
        image_height=60,
        threshold=0.6,
    )
    result_json = results.identification_result(response)
    assert [f["subject"] for f in result_json["faces"]] == ["ann", None]
    assert result_json["faces"][1]["matches"] == [] and result_json["threshold"] == 0.6
    task = percept.Task.from_json(
        {
            "task_id": "t", "kind": "face_identification", "media": "image",
            "status": "succeeded", "result": result_json,
        }
    )  # fmt: skip
    result = task.result
    assert task.kind is percept.Kind.IDENTIFY and result.kind is percept.Kind.IDENTIFY
    assert result.subjects == ("ann", None) and result.faces[1].unknown
    assert result.faces[0].matches[1] == percept.Match("f2", "ann", pytest.approx(0.31))
    assert result.to_json() == result_json
    frame = results.identification_frame(
        pb.DetectFacesInVideoResponse(frame_index=3, timestamp=0.3, faces=response.faces)
    )
    video = percept.VideoResult.from_json({"frames": [frame]}, percept.Kind.IDENTIFY)
    assert video.frames[0].subjects == ("ann", None)

    assert percept.Kind.parse("identify") is percept.Kind.IDENTIFY
    assert percept.Kind.IDENTIFY.path("video") == "/api/identify/face/video"
    assert percept.Kind.FACE.path("image") == "/api/detect/face/image"
    plain = percept.Face.from_json({"box": {"left": 0, "top": 0, "right": 1, "bottom": 1}})
    assert plain.matches is None and not plain.unknown and plain.subject is None
