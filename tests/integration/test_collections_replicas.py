"""Two face-service replicas on one PostgreSQL, as the product runs at scale:
enrolled through one, identified through the other within a second; deleted
through one, the other stops matching within a second; a restarted replica
finds its collections; a replica cut off from the database answers
UNAVAILABLE (503 through the gateway) and reports NOT_SERVING until it is back.
Real servers, real models, a real PostgreSQL database of the test's own."""

from __future__ import annotations

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc as face_grpc
from psycopg.conninfo import conninfo_to_dict

from harness import faces
from tests.gallery_support import TcpProxy, pg_databases, postgres_url, within  # noqa: F401
from tests.support import GatewayProcess, ServerProcess, fresh_db, health_status, rpc_error

pytestmark = pytest.mark.slow

SERVICE = "percept.face.v1.FaceService"
COLLECTION = "lobby"


@pytest.fixture(scope="module")
def database(pg_databases):  # noqa: F811
    return postgres_url(pg_databases.create())


@pytest.fixture(scope="module")
def proxy(database):
    info = conninfo_to_dict(database)
    proxy = TcpProxy((info.get("host", "127.0.0.1"), int(info.get("port", 5432)))).start()
    yield proxy
    proxy.stop()


def replica(url: str) -> ServerProcess:
    return ServerProcess(
        "face_service",
        env={
            "FACE_WORKERS": "1",
            "FACE_GALLERY_URL": url,
            "FACE_GALLERY_CONNECT_TIMEOUT_S": "1",
            "FACE_DRAIN_DELAY_S": "0",
        },
    )


@pytest.fixture(scope="module")
def one(database):
    server = replica(database).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def two(database, proxy):
    """The second replica reaches the database through a proxy the test can cut."""
    info = conninfo_to_dict(database)
    server = replica(database.replace(f":{info.get('port', 5432)}/", f":{proxy.port}/", 1))
    server.start()
    yield server
    server.stop()


def stub(server: ServerProcess) -> face_grpc.FaceServiceStub:
    return face_grpc.FaceServiceStub(grpc.insecure_channel(server.address))


def head_image(person: str) -> image_pb2.Image:
    """A small probe: the person's head alone (fast to detect), slightly darker."""
    crop, _ = faces.head(person)
    return image_pb2.Image(content=faces.encode(faces.relight(crop, 0.9)))


def who(server_stub, person: str) -> list[str | None]:
    response = server_stub.IdentifyFaces(
        pb.IdentifyFacesRequest(collection_id=COLLECTION, image=head_image(person)), timeout=30
    )
    return [f.matches[0].subject if f.matches else None for f in response.faces]


def test_enrolled_through_one_identified_through_the_other_within_a_second(one, two):
    a, b = stub(one), stub(two)
    a.CreateCollection(pb.CreateCollectionRequest(collection_id=COLLECTION))
    # The other replica knows the collection at once (it looks at the log when asked).
    assert who(b, "astronaut") == [None]

    enrolled = a.EnrollFaces(
        pb.EnrollFacesRequest(
            collection_id=COLLECTION,
            image=image_pb2.Image(content=faces.encode(faces.photos()["astronaut"].rgb)),
            subject="astronaut",
        )
    )
    _, took = within(1.0, lambda: who(b, "astronaut") == ["astronaut"])
    print(f"enrolled on one replica, identified on the other after {took * 1000:.0f} ms")

    for rgb in faces.enrollment_images("zidane"):
        b.EnrollFaces(
            pb.EnrollFacesRequest(
                collection_id=COLLECTION,
                image=image_pb2.Image(content=faces.encode(rgb)),
                subject="zidane",
            )
        )
    within(1.0, lambda: who(a, "zidane") == ["zidane"])

    a.DeleteFaces(
        pb.DeleteFacesRequest(collection_id=COLLECTION, face_ids=[enrolled.faces[0].face_id])
    )
    _, took = within(1.0, lambda: who(b, "astronaut") == [None])
    print(f"deleted on one replica, unknown on the other after {took * 1000:.0f} ms")

    b.DeleteSubject(pb.DeleteSubjectRequest(collection_id=COLLECTION, subject="zidane"))
    within(1.0, lambda: who(a, "zidane") == [None])


def test_a_restarted_replica_finds_its_collections(one, two):
    a = stub(one)
    a.EnrollFaces(
        pb.EnrollFacesRequest(
            collection_id=COLLECTION,
            image=image_pb2.Image(content=faces.encode(faces.photos()["grace-hopper"].rgb)),
            subject="grace-hopper",
        )
    )
    before = a.DescribeCollection(pb.DescribeCollectionRequest(collection_id=COLLECTION))
    one.stop()
    one.start()
    a = stub(one)
    after = a.DescribeCollection(pb.DescribeCollectionRequest(collection_id=COLLECTION))
    assert after.collection == before.collection
    assert who(a, "grace-hopper") == ["grace-hopper"]


@pytest.fixture(scope="module")
def gateway_to_two(two, redis_url):
    url = fresh_db(redis_url, 12)
    server = GatewayProcess(
        "gateway",
        env={
            "REDIS_URL": url,
            "GATEWAY_FACE_TARGETS": two.address,
            "GATEWAY_OBJECT_TARGETS": two.address,
            "GATEWAY_WAIT_TIMEOUT_S": "30",
        },
    ).start()
    yield server
    server.stop()


def test_a_replica_cut_off_from_the_database_is_unavailable_until_it_is_back(
    one, two, proxy, gateway_to_two
):
    b = stub(two)
    crop = faces.encode(faces.head("grace-hopper")[0])
    with gateway_to_two.client(timeout=60) as http:
        assert http.get(f"/api/collections/{COLLECTION}").status_code == 200

        proxy.stop()
        within(5.0, lambda: health_status(two.address, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING)  # fmt: skip
        assert health_status(one.address, SERVICE) == health_pb2.HealthCheckResponse.SERVING
        for method, request in (
            (b.IdentifyFaces, pb.IdentifyFacesRequest(collection_id=COLLECTION, image=head_image("grace-hopper"))),
            (b.CreateCollection, pb.CreateCollectionRequest(collection_id="while-down")),
            (b.ListFaces, pb.ListFacesRequest(collection_id=COLLECTION)),
        ):  # fmt: skip
            error = rpc_error(method, request, timeout=30)
            assert error.code() == grpc.StatusCode.UNAVAILABLE, method
            assert "unreachable" in error.details() or "connect" in error.details()

        # Through the gateway: 503, with Retry-After, for every route that needs it.
        for response in (
            http.get(f"/api/collections/{COLLECTION}"),
            http.post("/api/collections", json={"collection_id": "while-down"}),
            http.post(
                "/api/identify/face/image",
                files={"file": ("g.jpg", crop, "image/jpeg")},
                data={"collection_id": COLLECTION},
                params={"wait": "true"},
            ),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "unavailable"
            assert response.headers["retry-after"]

        # Meanwhile the other replica serves, and forgets her.
        stub(one).DeleteSubject(
            pb.DeleteSubjectRequest(collection_id=COLLECTION, subject="grace-hopper")
        )

        proxy.start()
        within(15.0, lambda: health_status(two.address, SERVICE) == health_pb2.HealthCheckResponse.SERVING)  # fmt: skip
        assert who(b, "grace-hopper") == [None]  # the deletion made while cut off was caught up
        ok = httpx.post(
            f"{gateway_to_two.url}/api/identify/face/image",
            headers=gateway_to_two.headers,
            files={"file": ("g.jpg", crop, "image/jpeg")},
            data={"collection_id": COLLECTION},
            params={"wait": "true"},
            timeout=60,
        )
        assert ok.status_code == 200
        assert [f["subject"] for f in ok.json()["result"]["faces"]] == [None]
        assert np.isclose(ok.json()["result"]["threshold"], 0.6)
