"""One value per option, numbers in ASCII digits, ids every client can reach,
against the real gateway and face service: a repeated option, a number
spelled in other digits or padded, a collection id or subject made of dots,
each is 422 (INVALID_ARGUMENT over gRPC) naming the field and what is
accepted, and the servers keep serving."""

from __future__ import annotations

import grpc
import httpx
import pytest
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as face_pb
from percept.face.v1 import face_service_pb2_grpc as face_grpc

from harness.faces import FACE_PATCH
from tests.conftest import encode

pytestmark = pytest.mark.slow

DOTS = (".", "..", "...")
COLLECTION = "one-value"
FACE_IMAGE = "/api/detect/face/image"
OBJECT_IMAGE = "/api/detect/object/image"
IDENTIFY = "/api/identify/face/image"

# (route, option, a valid value, another valid value): every kind of option.
OPTIONS = [
    (FACE_IMAGE, "upsample", "0", "1"),  # int
    (OBJECT_IMAGE, "confidence_threshold", "0.5", "0.25"),  # float
    (FACE_IMAGE, "landmarks", "true", "false"),  # bool (an alias)
    (FACE_IMAGE, "return_encodings", "true", "false"),  # bool
    (FACE_IMAGE, "detector", "hog", "cnn"),  # enum
    (OBJECT_IMAGE, "classes", "0", "1"),  # list
    (IDENTIFY, "collection_id", COLLECTION, "other"),  # string
    (IDENTIFY, "top_k", "1", "2"),
]


@pytest.fixture(scope="module")
def http(gateway):
    with gateway.client(timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def face_jpeg(astronaut) -> bytes:
    return encode(astronaut[FACE_PATCH].copy(), ".jpg")


@pytest.fixture(scope="module")
def stub(face_server):
    with grpc.insecure_channel(face_server.address) as channel:
        yield face_grpc.FaceServiceStub(channel)


@pytest.fixture(scope="module")
def collection(http):
    created = http.post("/api/collections", json={"collection_id": COLLECTION})
    assert created.status_code in (201, 409), created.text
    return COLLECTION


def refused(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["fields"] == [field], error
    return error["message"]


def post(http, path, content, data=None, params=None):
    return http.post(
        path, files={"file": ("face.jpg", content, "image/jpeg")}, data=data or {}, params=params
    )


@pytest.mark.parametrize(("path", "name", "one", "two"), OPTIONS)
def test_an_option_given_twice_is_refused_naming_it(
    http, face_jpeg, collection, path, name, one, two
):
    base = {"collection_id": collection} if path == IDENTIFY and name != "collection_id" else {}
    twice_in_form = post(http, path, face_jpeg, data={**base, name: [one, two]})
    assert "given twice as a form field" in refused(twice_in_form, name)
    twice_in_query = post(http, path, face_jpeg, data=base, params=[(name, one), (name, two)])
    assert "given twice as a query parameter" in refused(twice_in_query, name)
    in_both = post(http, path, face_jpeg, data={**base, name: one}, params={name: one})
    message = refused(in_both, name)
    assert "both as a query parameter and as a form field" in message
    assert "send each option once" in message


def test_wait_given_twice_is_refused(http, face_jpeg):
    response = post(http, FACE_IMAGE, face_jpeg, params=[("wait", "true"), ("wait", "false")])
    assert "wait is given twice" in refused(response, "wait")


def test_enroll_and_verify_fields_given_twice_are_refused(http, face_jpeg, collection):
    for route in ("faces", "verify"):
        path = f"/api/collections/{collection}/{route}"
        response = post(http, path, face_jpeg, data={"subject": ["Ada", "Bob"]})
        assert "subject is given twice" in refused(response, "subject")
        response = post(http, path, face_jpeg, data={"subject": "Ada"}, params={"subject": "Ada"})
        assert "both as a query parameter and as a form field" in refused(response, "subject")


@pytest.mark.parametrize("text", ["١", "２", "²", " 2", "2 ", "1_0"])
def test_integers_in_other_digits_or_padded_are_refused(http, face_jpeg, text):
    for how in ("data", "params"):
        response = post(http, FACE_IMAGE, face_jpeg, **{how: {"upsample": text}})
        message = refused(response, "upsample")
        assert "use an integer in ASCII digits (0-9, no spaces)" in message


@pytest.mark.parametrize("text", ["٠.٥", "０.５", "0.5²", " 0.5", "0.5 "])
def test_decimals_in_other_digits_or_padded_are_refused(http, face_jpeg, text):
    response = post(http, OBJECT_IMAGE, face_jpeg, data={"confidence_threshold": text})
    message = refused(response, "confidence_threshold")
    assert "use a finite number in ASCII digits, such as 0.25" in message


def test_search_numbers_sent_as_strings_must_be_ascii(http, collection):
    path = f"/api/collections/{collection}/search"
    for field, text in (("top_k", "١"), ("top_k", " 2"), ("threshold", "０.５")):
        response = http.post(path, json={"face_id": "0" * 32, field: text})
        assert "ASCII digits" in refused(response, field)


@pytest.mark.parametrize(
    ("path", "name", "one", "two"),
    [
        ("/api/tasks", "limit", "1", "2"),
        ("/api/tasks", "media", "image", "video"),
        ("/api/collections", "page_size", "1", "2"),
        ("/api/stats", "minutes", "5", "60"),
    ],
)
def test_every_route_refuses_a_query_parameter_given_twice(http, path, name, one, two):
    response = http.get(path, params=[(name, one), (name, two)])
    assert f"{name} is given twice as a query parameter" in refused(response, name)
    assert http.get(path, params={name: one}).status_code == 200


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/tasks", "limit"),
        ("/api/tasks", "since"),
        ("/api/collections", "page_size"),
        ("/api/stats", "minutes"),
    ],
)
@pytest.mark.parametrize("text", ["١٠", "１０", " 10", "10 ", "1_0"])
def test_every_routes_numbers_are_ascii(http, path, name, text):
    assert "ASCII digits" in refused(http.get(path, params={name: text}), name)


@pytest.mark.parametrize("dots", DOTS)
def test_dot_collection_ids_are_refused_over_rest(http, dots):
    message = refused(http.post("/api/collections", json={"collection_id": dots}), "collection_id")
    assert message.startswith(f"collection_id: collection id {dots!r} is only dots")
    assert "1-64 letters, digits, '.', '_' or '-', not only dots" in message
    assert http.post("/api/collections", json={"collection_id": dots + "a"}).status_code in (
        201,
        409,
    )


@pytest.mark.parametrize("dots", DOTS)
def test_dot_subjects_are_refused_over_rest(http, face_jpeg, collection, dots):
    response = post(http, f"/api/collections/{collection}/faces", face_jpeg, data={"subject": dots})
    assert f"subject {dots!r} cannot be used" in refused(response, "subject")
    listed = http.get(f"/api/collections/{collection}/faces").json()["faces"]
    assert dots not in {f["subject"] for f in listed}


@pytest.mark.parametrize("dots", DOTS)
def test_dot_ids_are_invalid_argument_over_grpc(stub, face_jpeg, collection, dots):
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateCollection(face_pb.CreateCollectionRequest(collection_id=dots))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"collection id {dots!r} is only dots" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.EnrollFaces(
            face_pb.EnrollFacesRequest(
                collection_id=collection,
                subject=dots,
                image=image_pb2.Image(content=face_jpeg),
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"subject {dots!r} cannot be used" in info.value.details()


@pytest.mark.parametrize("dots", DOTS)
def test_the_cli_says_the_same(percept_cli, dots):
    created = percept_cli("collections", "create", dots)
    assert created.returncode == 2, created.stderr  # a usage error
    said = " ".join(created.stderr.split())
    assert f"collection id {dots!r} is only dots: use 1-64 letters, digits" in said
    shown = percept_cli("collections", "show", dots)  # never sent: it would reach another URL
    assert shown.returncode == 2, shown.stderr
    said = " ".join(shown.stderr.split())
    assert f"collection id {dots!r} is only dots: a URL path cannot carry" in said


def test_the_servers_keep_serving_and_one_value_each_still_works(http, face_jpeg, collection):
    response = post(
        http,
        FACE_IMAGE,
        face_jpeg,
        data={"upsample": "0"},
        params={"wait": "true", "landmarks": "true"},
    )
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["options"]["upsample"] == 0 and task["options"]["return_landmarks"] is True
    assert len(task["result"]["faces"]) == 1
    enrolled = post(
        http, f"/api/collections/{collection}/faces", face_jpeg, data={"subject": "Ada. L."}
    )
    assert enrolled.status_code == 201, enrolled.text
    deleted = http.delete(f"/api/collections/{collection}/subjects/Ada.%20L.")
    assert deleted.status_code == 200 and deleted.json()["deleted_faces"] == 1
