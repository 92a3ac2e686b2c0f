"""Face collections over gRPC, end to end: a real face service (real models, the
SQLite default store) enrolls real people from photos the packages ship and
identifies them in new images (their heads pasted at other sizes, in other
light, onto other backgrounds), in a video where two of them move along known
paths, and in a live stream; people never enrolled are unknown; every error
case answers its status; tenants see only their own collections; a restarted
replica finds its collections."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from percept.common.v1 import image_pb2, video_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc as face_grpc

from harness import faces
from tests.support import ServerProcess, rpc_error

pytestmark = pytest.mark.slow

COLLECTION = "people"


@pytest.fixture(scope="module")
def gallery_file(tmp_path_factory):
    return tmp_path_factory.mktemp("gallery") / "face-gallery.sqlite3"


@pytest.fixture(scope="module")
def server(gallery_file):
    server = ServerProcess(
        "face_service",
        env={
            "FACE_WORKERS": "2",
            "FACE_GALLERY_URL": f"sqlite:///{gallery_file}",
            "FACE_STREAM_WINDOW": "4",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.address) as channel:
        yield face_grpc.FaceServiceStub(channel)


def image(rgb: np.ndarray) -> image_pb2.Image:
    return image_pb2.Image(content=faces.encode(rgb))


def tenant(name: str) -> tuple[tuple[str, str], ...]:
    return (("x-percept-tenant", name),)


@pytest.fixture(scope="module")
def enrolled(stub):
    """The three people, each enrolled from two versions of their photo."""
    stub.CreateCollection(
        pb.CreateCollectionRequest(collection_id=COLLECTION, description="known people")
    )
    ids: dict[str, list[str]] = {}
    for person in faces.PEOPLE:
        for rgb in faces.enrollment_images(person):
            response = stub.EnrollFaces(
                pb.EnrollFacesRequest(
                    collection_id=COLLECTION, image=image(rgb), subject=person,
                    external_id=f"{person}-photo",
                )
            )  # fmt: skip
            assert len(response.faces) == 1  # the largest face only, by default
            face = response.faces[0]
            assert face.subject == person and face.external_id == f"{person}-photo"
            assert 0 <= face.box.left < face.box.right <= response.image_width
            ids.setdefault(person, []).append(face.face_id)
    return ids


def names_in(response_faces, placed: list[faces.Placed]) -> list[tuple[str, str | None]]:
    """(who is really there, who the service says) for every face found."""
    out = []
    for face in response_faces:
        centre = ((face.box.left + face.box.right) / 2, (face.box.top + face.box.bottom) / 2)
        truth = [p.person for p in placed if p.contains(centre)]
        assert len(truth) == 1, f"a face at {centre} is in no pasted head"
        out.append((truth[0], face.matches[0].subject if face.matches else None))
    return out


# --- identification -----------------------------------------------------------------------


def test_enrolled_people_are_identified_in_new_images_and_strangers_are_unknown(
    stub, enrolled, server
):
    for name, rgb, placed in faces.scenes():
        response = stub.IdentifyFaces(
            pb.IdentifyFacesRequest(collection_id=COLLECTION, image=image(rgb), top_k=3)
        )
        found = names_in(response.faces, placed)
        # Every pasted person is found, and named right at rank 1.
        assert sorted(found) == sorted((p.person, p.person) for p in placed), name
        assert response.threshold == pytest.approx(0.6)
        for face in response.faces:
            distances = [m.distance for m in face.matches]
            assert 1 <= len(distances) <= 3 and distances == sorted(distances)
            assert all(d <= 0.6 for d in distances)
            assert not face.encoding  # encodings are computed, never returned unasked
        assert {m.face_id for f in response.faces for m in f.matches} <= {
            i for ids in enrolled.values() for i in ids
        }

    bus = stub.IdentifyFaces(
        pb.IdentifyFacesRequest(collection_id=COLLECTION, image=image(faces.strangers()))
    )
    assert len(bus.faces) >= 2
    assert all(not face.matches for face in bus.faces)  # never enrolled: unknown

    # A stricter threshold per request: the same faces no longer match.
    name, rgb, placed = faces.scenes()[0]
    strict = stub.IdentifyFaces(
        pb.IdentifyFacesRequest(collection_id=COLLECTION, image=image(rgb), threshold=0.01)
    )
    assert strict.threshold == pytest.approx(0.01)
    assert len(strict.faces) == 3 and all(not f.matches for f in strict.faces)

    # Encodings come back only when asked, and never reach the log.
    asked = stub.IdentifyFaces(
        pb.IdentifyFacesRequest(
            collection_id=COLLECTION,
            image=image(rgb),
            options=pb.FaceOptions(return_encodings=True),
        )
    )
    assert all(len(f.encoding) == 128 for f in asked.faces)
    log = server.log()
    for face in asked.faces:
        for value in face.encoding[:8]:
            assert repr(value)[:10] not in log


def test_search_by_face_id_and_verify(stub, enrolled):
    first, second = enrolled["grace-hopper"]
    found = stub.SearchFaces(
        pb.SearchFacesRequest(collection_id=COLLECTION, face_id=first, top_k=5)
    )
    assert [m.face_id for m in found.matches][0] == second  # her other photo, not herself
    assert first not in [m.face_id for m in found.matches]
    assert {m.subject for m in found.matches} == {"grace-hopper"}

    _, rgb, placed = faces.scenes()[1]
    crop_of = {p.person: rgb[p.region[1] : p.region[3], p.region[0] : p.region[2]] for p in placed}
    yes = stub.VerifyFace(
        pb.VerifyFaceRequest(
            collection_id=COLLECTION, subject="zidane", image=image(crop_of["zidane"])
        )
    )
    assert yes.match and yes.distance < 0.6 and yes.face_id in enrolled["zidane"]
    assert yes.face.box.right > yes.face.box.left
    no = stub.VerifyFace(
        pb.VerifyFaceRequest(
            collection_id=COLLECTION, subject="astronaut", image=image(crop_of["zidane"])
        )
    )
    assert not no.match and no.distance > 0.6 and no.face_id in enrolled["astronaut"]


def test_video_names_two_people_along_their_paths(stub, enrolled, tmp_path):
    path = tmp_path / "two.avi"
    truth = faces.moving_heads_video(path, ("astronaut", "zidane"), n_frames=12)
    responses = list(
        stub.DetectFacesInVideo(
            pb.DetectFacesInVideoRequest(
                video=video_pb2.VideoSource(content=path.read_bytes()),
                collection_id=COLLECTION,
                top_k=2,
            ),
            timeout=300,
        )
    )
    assert [r.frame_index for r in responses] == list(range(12))
    for response, placed in zip(responses, truth, strict=True):
        found = names_in(response.faces, placed)
        assert sorted(found) == [("astronaut", "astronaut"), ("zidane", "zidane")], (
            response.frame_index
        )

    # Without a collection the same call only detects.
    plain = next(
        iter(
            stub.DetectFacesInVideo(
                pb.DetectFacesInVideoRequest(
                    video=video_pb2.VideoSource(content=path.read_bytes()), max_frames=1
                )
            )
        )
    )
    assert len(plain.faces) == 2 and all(not f.matches for f in plain.faces)


def test_live_stream_names_every_face_of_every_frame(stub, enrolled):
    scenes = faces.scenes()

    def requests():
        for i, (_, rgb, _) in enumerate(scenes * 2):
            first = i == 0
            yield pb.StreamFacesRequest(
                image=image(rgb),
                collection_id=COLLECTION if first else "",
                top_k=1 if first else 0,
            )

    responses = list(stub.StreamFaces(requests(), timeout=120))
    assert [r.frame_index for r in responses] == [0, 1, 2, 3]
    for response, (_, _, placed) in zip(responses, scenes * 2, strict=True):
        assert sorted(names_in(response.faces, placed)) == sorted(
            (p.person, p.person) for p in placed
        )


# --- the collection's life ------------------------------------------------------------------


def test_collections_list_page_describe_and_forget(stub):
    for cid in ("life-a", "life-b", "life-c"):
        stub.CreateCollection(
            pb.CreateCollectionRequest(collection_id=cid), metadata=tenant("life")
        )
    first = stub.ListCollections(pb.ListCollectionsRequest(page_size=2), metadata=tenant("life"))
    assert [c.collection_id for c in first.collections] == ["life-a", "life-b"]
    rest = stub.ListCollections(
        pb.ListCollectionsRequest(page_size=2, page_token=first.next_page_token),
        metadata=tenant("life"),
    )
    assert [c.collection_id for c in rest.collections] == ["life-c"] and not rest.next_page_token

    md = tenant("life")
    enrolled = {}
    for person in ("astronaut", "zidane"):
        for rgb in faces.enrollment_images(person):
            r = stub.EnrollFaces(
                pb.EnrollFacesRequest(collection_id="life-a", image=image(rgb), subject=person),
                metadata=md,
            )
            enrolled.setdefault(person, []).append(r.faces[0].face_id)
    described = stub.DescribeCollection(
        pb.DescribeCollectionRequest(collection_id="life-a"), metadata=md
    ).collection
    assert (described.face_count, described.subject_count) == (4, 2)
    assert described.created_at.seconds > 0

    listed = stub.ListFaces(
        pb.ListFacesRequest(collection_id="life-a", subject="zidane"), metadata=md
    )
    assert [f.face_id for f in listed.faces] == enrolled["zidane"]
    page = stub.ListFaces(pb.ListFacesRequest(collection_id="life-a", page_size=3), metadata=md)
    assert len(page.faces) == 3 and page.next_page_token

    _, rgb, placed = faces.scenes()[0]

    def who() -> set[str]:
        response = stub.IdentifyFaces(
            pb.IdentifyFacesRequest(collection_id="life-a", image=image(rgb)), metadata=md
        )
        return {f.matches[0].subject for f in response.faces if f.matches}

    assert who() == {"astronaut", "zidane"}
    # Forget one of the astronaut's faces: the other still matches; then both.
    gone = stub.DeleteFaces(
        pb.DeleteFacesRequest(
            collection_id="life-a",
            face_ids=[enrolled["astronaut"][0], "00000000-0000-0000-0000-000000000000"],
        ),
        metadata=md,
    )
    assert list(gone.deleted_face_ids) == [enrolled["astronaut"][0]]  # the unknown id is skipped
    assert who() == {"astronaut", "zidane"}
    stub.DeleteFaces(
        pb.DeleteFacesRequest(collection_id="life-a", face_ids=[enrolled["astronaut"][1]]),
        metadata=md,
    )
    assert who() == {"zidane"}
    deleted = stub.DeleteSubject(
        pb.DeleteSubjectRequest(collection_id="life-a", subject="zidane"), metadata=md
    )
    assert deleted.deleted_faces == 2
    assert who() == set()
    assert (
        stub.DescribeCollection(
            pb.DescribeCollectionRequest(collection_id="life-a"), metadata=md
        ).collection.face_count
        == 0
    )
    stub.DeleteCollection(pb.DeleteCollectionRequest(collection_id="life-a"), metadata=md)
    error = rpc_error(
        stub.IdentifyFaces,
        pb.IdentifyFacesRequest(collection_id="life-a", image=image(rgb)),
        metadata=md,
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_enroll_several_faces_and_the_quality_guard(stub):
    md = tenant("guard")
    stub.CreateCollection(pb.CreateCollectionRequest(collection_id="guard"), metadata=md)
    _, rgb, placed = faces.scenes()[0]
    several = stub.EnrollFaces(
        pb.EnrollFacesRequest(
            collection_id="guard", image=image(rgb), subject="group", max_faces=2
        ),
        metadata=md,
    )
    assert several.faces_found == 3 and len(several.faces) == 2
    sides = [f.box.right - f.box.left for f in several.faces]
    assert sides == sorted(sides, reverse=True)  # the largest first

    tiny = stub.EnrollFaces
    error = rpc_error(
        tiny,
        pb.EnrollFacesRequest(
            collection_id="guard",
            image=image(faces.tiny_face_image()),
            subject="small",
            options=pb.FaceOptions(upsample=2),
        ),
        metadata=md,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "smaller than the 48 pixels a side enrollment needs" in error.details()
    blank = faces.background("rocket", (400, 300))
    error = rpc_error(
        tiny,
        pb.EnrollFacesRequest(collection_id="guard", image=image(blank), subject="nobody"),
        metadata=md,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("no face found in the 400x300 image")
    count = stub.DescribeCollection(
        pb.DescribeCollectionRequest(collection_id="guard"), metadata=md
    ).collection.face_count
    assert count == 2  # nothing of the refused ones was stored


# --- errors and tenants -----------------------------------------------------------------------


def test_every_error_answers_its_status(stub, enrolled):
    rgb = faces.photos()["astronaut"].rgb
    missing = "no-such-collection"
    calls = [
        (stub.DescribeCollection, pb.DescribeCollectionRequest(collection_id=missing)),
        (stub.DeleteCollection, pb.DeleteCollectionRequest(collection_id=missing)),
        (stub.EnrollFaces, pb.EnrollFacesRequest(collection_id=missing, image=image(rgb), subject="x")),
        (stub.ListFaces, pb.ListFacesRequest(collection_id=missing)),
        (stub.DeleteFaces, pb.DeleteFacesRequest(collection_id=missing, face_ids=[enrolled["zidane"][0]])),
        (stub.DeleteSubject, pb.DeleteSubjectRequest(collection_id=missing, subject="zidane")),
        (stub.IdentifyFaces, pb.IdentifyFacesRequest(collection_id=missing, image=image(rgb))),
        (stub.SearchFaces, pb.SearchFacesRequest(collection_id=missing, face_id=enrolled["zidane"][0])),
        (stub.VerifyFace, pb.VerifyFaceRequest(collection_id=missing, subject="zidane", image=image(rgb))),
    ]  # fmt: skip
    for method, request in calls:
        error = rpc_error(method, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND, method
        assert error.details() == f"collection {missing!r} does not exist", method
    video = rpc_error(
        stub.DetectFacesInVideo,
        pb.DetectFacesInVideoRequest(
            video=video_pb2.VideoSource(content=b"not even read"), collection_id=missing
        ),
    )
    assert video.code() == grpc.StatusCode.NOT_FOUND  # before the video is opened

    exists = rpc_error(stub.CreateCollection, pb.CreateCollectionRequest(collection_id=COLLECTION))
    assert exists.code() == grpc.StatusCode.ALREADY_EXISTS
    assert exists.details() == f"collection {COLLECTION!r} already exists"

    invalid = {
        "collection id": (stub.CreateCollection, pb.CreateCollectionRequest(collection_id="no spaces")),
        "subject must be a non-empty name": (
            stub.EnrollFaces, pb.EnrollFacesRequest(collection_id=COLLECTION, image=image(rgb), subject=" ")),
        "top_k is 101": (
            stub.IdentifyFaces, pb.IdentifyFacesRequest(collection_id=COLLECTION, image=image(rgb), top_k=101)),
        "threshold is 5": (
            stub.SearchFaces, pb.SearchFacesRequest(collection_id=COLLECTION, face_id=enrolled["zidane"][0], threshold=5)),
        "is not a face id": (stub.SearchFaces, pb.SearchFacesRequest(collection_id=COLLECTION, face_id="nope")),
        "page_token is not a token of this listing": (
            stub.ListFaces, pb.ListFacesRequest(collection_id=COLLECTION, page_token="garbage")),
        "max_faces is 101": (
            stub.EnrollFaces, pb.EnrollFacesRequest(collection_id=COLLECTION, image=image(rgb), subject="x", max_faces=101)),
    }  # fmt: skip
    for needle, (method, request) in invalid.items():
        error = rpc_error(method, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, needle
        assert needle in error.details(), (needle, error.details())

    unknown_subject = rpc_error(
        stub.VerifyFace,
        pb.VerifyFaceRequest(collection_id=COLLECTION, subject="nobody", image=image(rgb)),
    )
    assert unknown_subject.code() == grpc.StatusCode.NOT_FOUND
    assert "no face of subject 'nobody'" in unknown_subject.details()
    unknown_face = rpc_error(
        stub.SearchFaces,
        pb.SearchFacesRequest(
            collection_id=COLLECTION, face_id="00000000-0000-0000-0000-000000000001"
        ),
    )
    assert unknown_face.code() == grpc.StatusCode.NOT_FOUND


def test_tenants_see_only_their_own_collections(stub, enrolled):
    rgb = faces.scenes()[0][1]
    # The default tenant's collection is invisible to tenant "other"...
    other = tenant("other")
    for method, request in (
        (stub.DescribeCollection, pb.DescribeCollectionRequest(collection_id=COLLECTION)),
        (stub.IdentifyFaces, pb.IdentifyFacesRequest(collection_id=COLLECTION, image=image(rgb))),
        (stub.DeleteCollection, pb.DeleteCollectionRequest(collection_id=COLLECTION)),
    ):
        assert rpc_error(method, request, metadata=other).code() == grpc.StatusCode.NOT_FOUND
    assert not stub.ListCollections(pb.ListCollectionsRequest(), metadata=other).collections
    # ...which may use the same id for a collection of its own, without its faces.
    stub.CreateCollection(pb.CreateCollectionRequest(collection_id=COLLECTION), metadata=other)
    response = stub.IdentifyFaces(
        pb.IdentifyFacesRequest(collection_id=COLLECTION, image=image(rgb)), metadata=other
    )
    assert len(response.faces) == 3 and all(not f.matches for f in response.faces)
    mine = stub.DescribeCollection(pb.DescribeCollectionRequest(collection_id=COLLECTION))
    assert mine.collection.face_count == 6  # untouched
    bad = rpc_error(stub.ListCollections, pb.ListCollectionsRequest(), metadata=tenant("x" * 200))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- last: a restart -------------------------------------------------------------------------


def test_a_restarted_replica_finds_its_collections(server, stub, enrolled):
    before = stub.DescribeCollection(pb.DescribeCollectionRequest(collection_id=COLLECTION))
    server.stop()
    server.start()
    with grpc.insecure_channel(server.address) as channel:
        fresh = face_grpc.FaceServiceStub(channel)
        after = fresh.DescribeCollection(pb.DescribeCollectionRequest(collection_id=COLLECTION))
        assert after.collection == before.collection
        _, rgb, placed = faces.scenes()[1]
        response = fresh.IdentifyFaces(
            pb.IdentifyFacesRequest(collection_id=COLLECTION, image=image(rgb))
        )
        assert sorted(names_in(response.faces, placed)) == sorted(
            (p.person, p.person) for p in placed
        )
