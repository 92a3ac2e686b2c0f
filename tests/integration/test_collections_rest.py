"""Face collections through the REST gateway: collections and faces as
resources (201/200/204/404/409/422 as REST users expect), identification as a
task kind (202 + task, ?wait=true, SSE frames for videos), search and verify,
and tenants: each API key sees only its tenant's collections. A real face
service (real models, the SQLite store), a real gateway, a real Redis."""

from __future__ import annotations

import httpx
import pytest

from gateway import models
from harness import faces
from tests.support import (
    GatewayProcess,
    ServerProcess,
    create_key,
    fresh_db,
    task_events,
    wait_done,
)

pytestmark = pytest.mark.slow

PEOPLE = "people"


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    path = tmp_path_factory.mktemp("rest-gallery") / "gallery.sqlite3"
    server = ServerProcess(
        "face_service", env={"FACE_WORKERS": "2", "FACE_GALLERY_URL": f"sqlite:///{path}"}
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_db(redis_url):
    return fresh_db(redis_url, 12)


@pytest.fixture(scope="module")
def gateway(face, redis_db):
    server = GatewayProcess(
        "gateway",
        env={
            "REDIS_URL": redis_db,
            "GATEWAY_FACE_TARGETS": face.address,
            "GATEWAY_OBJECT_TARGETS": face.address,  # no object kind is used here
            "GATEWAY_WAIT_TIMEOUT_S": "60",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(gateway):
    with gateway.client(timeout=120) as client:
        yield client


def key_client(gateway, redis_db, tenant: str) -> httpx.Client:
    key = create_key(redis_db, role="client", tenant=tenant, name=f"{tenant}-app")
    return httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )


def upload(rgb, name="photo.jpg") -> dict:
    return {"file": (name, faces.encode(rgb), "image/jpeg")}


def error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()["error"]


@pytest.fixture(scope="module")
def enrolled(http) -> dict[str, list[str]]:
    created = http.post("/api/collections", json={"collection_id": PEOPLE})
    assert created.status_code == 201, created.text
    ids: dict[str, list[str]] = {}
    for person in faces.PEOPLE:
        for rgb in faces.enrollment_images(person):
            response = http.post(
                f"/api/collections/{PEOPLE}/faces", files=upload(rgb), data={"subject": person}
            )
            assert response.status_code == 201, response.text
            body = models.Enrollment.model_validate(response.json())
            assert [f.subject for f in body.faces] == [person]
            ids.setdefault(person, []).append(body.faces[0].face_id)
    return ids


def named(result_faces, placed: list[faces.Placed]) -> list[tuple[str, str | None]]:
    out = []
    for face in result_faces:
        truth = [p.person for p in placed if p.contains(face["box"])]
        assert len(truth) == 1
        out.append((truth[0], face["subject"]))
    return sorted(out)


# --- collections as resources -------------------------------------------------------------


def test_collections_are_resources_with_rest_statuses(http):
    created = http.post(
        "/api/collections", json={"collection_id": "doors", "description": "who may enter"}
    )
    assert created.status_code == 201
    body = models.Collection.model_validate(created.json())
    assert (body.collection_id, body.description, body.face_count) == ("doors", "who may enter", 0)
    assert created.headers["location"].endswith("/api/collections/doors")
    assert http.get(created.headers["location"]).json() == created.json()

    again = error(http.post("/api/collections", json={"collection_id": "doors"}), 409)
    assert again == {"code": "already_exists", "message": "collection 'doors' already exists"}
    bad = error(http.post("/api/collections", json={"collection_id": "no spaces"}), 422)
    assert bad["fields"] == ["collection_id"]
    assert error(http.post("/api/collections", json={}), 422)["fields"] == ["collection_id"]

    for cid in ("doors-2", "doors-3"):
        assert http.post("/api/collections", json={"collection_id": cid}).status_code == 201
    first = http.get("/api/collections", params={"page_size": 2}).json()
    assert [c["collection_id"] for c in first["collections"]] == ["doors", "doors-2"]
    rest = http.get(
        "/api/collections", params={"page_size": 2, "page_token": first["next_page_token"]}
    ).json()
    assert [c["collection_id"] for c in rest["collections"]][:1] == ["doors-3"]
    bad_token = error(http.get("/api/collections", params={"page_token": "garbage"}), 422)
    assert "page_token" in bad_token["message"]

    for cid in ("doors", "doors-2", "doors-3"):
        deleted = http.delete(f"/api/collections/{cid}")
        assert deleted.status_code == 204 and deleted.content == b""
    assert error(http.get("/api/collections/doors"), 404)["message"] == (
        "collection 'doors' does not exist"
    )
    assert error(http.delete("/api/collections/doors"), 404)["code"] == "not_found"


def test_enroll_list_and_forget_faces(http, enrolled):
    described = http.get(f"/api/collections/{PEOPLE}").json()
    assert (described["face_count"], described["subject_count"]) == (6, 3)

    listed = http.get(f"/api/collections/{PEOPLE}/faces", params={"subject": "zidane"}).json()
    assert [f["face_id"] for f in listed["faces"]] == enrolled["zidane"]
    assert listed["next_page_token"] is None
    for f in listed["faces"]:
        models.EnrolledFace.model_validate(f)
        assert "encoding" not in f  # encodings never leave the service
    page = http.get(f"/api/collections/{PEOPLE}/faces", params={"page_size": 4}).json()
    assert len(page["faces"]) == 4 and page["next_page_token"]

    # The quality guard, and the caller's other mistakes.
    no_face = error(
        http.post(
            f"/api/collections/{PEOPLE}/faces",
            files=upload(faces.background("rocket", (400, 300))),
            data={"subject": "nobody"},
        ),
        422,
    )
    assert no_face["message"].startswith("no face found in the 400x300 image")
    small = error(
        http.post(
            f"/api/collections/{PEOPLE}/faces",
            files=upload(faces.tiny_face_image()),
            data={"subject": "small", "upsample": "2"},
        ),
        422,
    )
    assert "smaller than the 48 pixels a side enrollment needs" in small["message"]
    rgb = faces.photos()["astronaut"].rgb
    assert error(http.post(f"/api/collections/{PEOPLE}/faces", files=upload(rgb)), 422)[
        "fields"
    ] == ["subject"]
    unknown = error(
        http.post(f"/api/collections/{PEOPLE}/faces", files=upload(rgb), data={"subject": "x", "landmarks": "true"}),
        422,
    )  # fmt: skip
    assert "landmarks: unknown option" in unknown["message"]
    assert (
        error(
            http.post("/api/collections/nope/faces", files=upload(rgb), data={"subject": "x"}), 404
        )["message"]
        == "collection 'nope' does not exist"
    )
    assert (
        error(
            http.post(
                f"/api/collections/{PEOPLE}/faces",
                files={"file": ("a.txt", b"hello", "text/plain")},
                data={"subject": "x"},
            ),
            415,
        )["code"]
        == "unsupported_media_type"
    )
    assert http.get(f"/api/collections/{PEOPLE}").json()["face_count"] == 6  # none stored

    # Enroll a subject twice more, then forget one face, then the subject.
    extra = [
        http.post(
            f"/api/collections/{PEOPLE}/faces",
            files=upload(rgb),
            data={"subject": "eileen", "external_id": f"badge-{i}"},
        ).json()["faces"][0]
        for i in range(2)
    ]
    assert [f["external_id"] for f in extra] == ["badge-0", "badge-1"]
    gone = http.delete(f"/api/collections/{PEOPLE}/faces/{extra[0]['face_id']}")
    assert gone.status_code == 204
    assert (
        error(http.delete(f"/api/collections/{PEOPLE}/faces/{extra[0]['face_id']}"), 404)["message"]
        == f"face {extra[0]['face_id']} is not in collection '{PEOPLE}'"
    )
    assert error(http.delete(f"/api/collections/{PEOPLE}/faces/not-a-uuid"), 422)["code"] == (
        "invalid_argument"
    )
    subject = http.delete(f"/api/collections/{PEOPLE}/subjects/eileen")
    assert subject.status_code == 200 and subject.json() == {
        "subject": "eileen",
        "deleted_faces": 1,
    }
    assert error(http.delete(f"/api/collections/{PEOPLE}/subjects/eileen"), 404)["message"] == (
        f"collection '{PEOPLE}' has no face of subject 'eileen'"
    )
    assert http.get(f"/api/collections/{PEOPLE}").json()["face_count"] == 6


# --- identification: a task kind -----------------------------------------------------------


def test_identify_images_async_and_in_simple_mode(http, enrolled):
    for _, rgb, placed in faces.scenes():
        queued = http.post(
            "/api/identify/face/image", files=upload(rgb), data={"collection_id": PEOPLE, "top_k": "2"}
        )  # fmt: skip
        assert queued.status_code == 202
        task = wait_done(http, queued.json()["task_id"])
        assert task["status"] == "succeeded" and task["kind"] == "face_identification"
        assert task["options"] == {"collection_id": PEOPLE, "top_k": 2}
        result = models.FaceIdentificationResult.model_validate(task["result"])
        assert result.threshold == pytest.approx(0.6)
        assert named(task["result"]["faces"], placed) == sorted(
            (p.person, p.person) for p in placed
        )
        for face in result.faces:
            assert 1 <= len(face.matches) <= 2 and face.matches[0].subject == face.subject

    simple = http.post(
        "/api/identify/face/image",
        files=upload(faces.strangers()),
        params={"wait": "true", "collection_id": PEOPLE},
    )
    assert simple.status_code == 200
    strangers = simple.json()["result"]["faces"]
    assert len(strangers) >= 2
    assert all(f["subject"] is None and f["matches"] == [] for f in strangers)
    # photos of people identified are personal data: never kept for the console
    for task_id in (task["task_id"], simple.json()["task_id"]):
        kept = http.get(f"/api/task/{task_id}/input")
        assert kept.status_code == 404 and kept.json()["error"]["code"] == "input_not_kept"
    # ... nor served while they wait in the queue or run
    burst = [
        http.post("/api/identify/face/image", files=upload(faces.strangers()),
                  data={"collection_id": PEOPLE}).json()["task_id"]
        for _ in range(6)
    ]  # fmt: skip
    waiting = http.get(f"/api/task/{burst[-1]}/input")
    assert waiting.status_code == 404 and waiting.json()["error"]["code"] == "input_not_kept"
    for task_id in burst:
        wait_done(http, task_id)

    missing = error(http.post("/api/identify/face/image", files=upload(faces.strangers())), 422)
    assert missing["fields"] == ["collection_id"]
    for wait in ("false", "true"):
        unknown = error(
            http.post(
                "/api/identify/face/image",
                files=upload(faces.strangers()),
                params={"wait": wait},
                data={"collection_id": "nope"},
            ),
            404,
        )
        assert unknown["message"] == "collection 'nope' does not exist"
    strict = error(
        http.post(
            "/api/identify/face/image",
            files=upload(faces.strangers()),
            data={"collection_id": PEOPLE, "threshold": "0"},
        ),
        422,
    )
    assert "threshold is 0: it must be in (0, 4]" in strict["message"]

    listed = http.get("/api/tasks", params={"kind": "face_identification"}).json()["tasks"]
    assert len(listed) >= 3
    metrics = http.get("/metrics").text
    assert 'percept_gateway_tasks_finished_total{kind="face_identification",media="image",status="succeeded"}' in metrics  # fmt: skip


def test_identify_video_streams_named_frames(http, gateway, enrolled, tmp_path):
    path = tmp_path / "two.avi"
    truth = faces.moving_heads_video(path, ("grace-hopper", "astronaut"), n_frames=10)
    response = http.post(
        "/api/identify/face/video",
        files={"file": ("two.avi", path.read_bytes(), "video/x-msvideo")},
        data={"collection_id": PEOPLE},
    )
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    frames, final = [], None
    for name, data in task_events(gateway, task_id, timeout=300):
        if name == "frame":
            frames.append(data)
        elif name == "status" and "task" in data:
            final = data["task"]
    assert [f["frame_index"] for f in frames] == list(range(10))
    for frame in frames:
        models.IdentifiedFrame.model_validate(frame)
        assert named(frame["faces"], truth[frame["frame_index"]]) == [
            ("astronaut", "astronaut"),
            ("grace-hopper", "grace-hopper"),
        ], frame["frame_index"]
    assert final["status"] == "succeeded" and len(final["result"]["frames"]) == 10
    models.FaceIdentificationVideoResult.model_validate(final["result"])

    # Detection kinds do not identify: the fields are not theirs.
    detect = error(
        http.post(
            "/api/detect/face/video",
            files={"file": ("two.avi", path.read_bytes(), "video/x-msvideo")},
            data={"collection_id": PEOPLE},
        ),
        422,
    )
    assert "collection_id: unknown option" in detect["message"]


def test_search_and_verify(http, enrolled):
    first, second = enrolled["astronaut"]
    found = http.post(f"/api/collections/{PEOPLE}/search", json={"face_id": first, "top_k": 3})
    assert found.status_code == 200
    body = models.SearchResult.model_validate(found.json())
    assert body.face_id == first and body.matches[0].face_id == second
    assert {m.subject for m in body.matches} == {"astronaut"}
    assert (
        error(
            http.post(
                f"/api/collections/{PEOPLE}/search",
                json={"face_id": "00000000-0000-0000-0000-000000000009"},
            ),
            404,
        )["code"]
        == "not_found"
    )
    assert error(http.post(f"/api/collections/{PEOPLE}/search", json={"face_id": first, "top_k": 0}), 422)[
        "fields"
    ] == ["top_k"]  # fmt: skip

    _, rgb, placed = faces.scenes()[0]
    region = next(p for p in placed if p.person == "grace-hopper").region
    crop = rgb[region[1] : region[3], region[0] : region[2]]
    yes = http.post(
        f"/api/collections/{PEOPLE}/verify", files=upload(crop), data={"subject": "grace-hopper"}
    )
    assert yes.status_code == 200
    verdict = models.Verification.model_validate(yes.json())
    assert verdict.match and verdict.distance < 0.6 and verdict.face_id in enrolled["grace-hopper"]
    no = http.post(
        f"/api/collections/{PEOPLE}/verify", files=upload(crop), data={"subject": "zidane"}
    ).json()
    assert no["match"] is False and no["distance"] > 0.6
    assert error(
        http.post(f"/api/collections/{PEOPLE}/verify", files=upload(crop), data={"subject": "nobody"}),
        404,
    )["message"] == f"collection '{PEOPLE}' has no face of subject 'nobody'"  # fmt: skip
    assert error(
        http.post(
            f"/api/collections/{PEOPLE}/verify",
            files=upload(faces.background("rocket", (300, 200))),
            data={"subject": "zidane"},
        ),
        422,
    )["message"].startswith("no face found")


# --- tenants ----------------------------------------------------------------------------------


def test_each_tenant_sees_only_its_own_collections(gateway, redis_db, http, enrolled):
    acme = key_client(gateway, redis_db, "acme")
    globex = key_client(gateway, redis_db, "globex")
    with acme, globex:
        assert acme.post("/api/collections", json={"collection_id": "staff"}).status_code == 201
        rgb = faces.photos()["zidane"].rgb
        assert (
            acme.post(
                "/api/collections/staff/faces", files=upload(rgb), data={"subject": "zizou"}
            ).status_code
            == 201
        )
        # Another tenant: not found, not listed, not usable.
        assert error(globex.get("/api/collections/staff"), 404)["code"] == "not_found"
        assert globex.get("/api/collections").json()["collections"] == []
        assert error(
            globex.post(
                "/api/identify/face/image",
                files=upload(rgb),
                params={"wait": "true"},
                data={"collection_id": "staff"},
            ),
            404,
        )["fields"] == ["collection_id"]
        assert error(globex.delete("/api/collections/staff"), 404)["code"] == "not_found"
        # ... and free to have its own "staff", without acme's faces.
        assert globex.post("/api/collections", json={"collection_id": "staff"}).status_code == 201
        theirs = globex.post(
            "/api/identify/face/image",
            files=upload(rgb),
            params={"wait": "true"},
            data={"collection_id": "staff"},
        ).json()
        assert [f["subject"] for f in theirs["result"]["faces"]] == [None]
        ours = acme.post(
            "/api/identify/face/image",
            files=upload(rgb),
            params={"wait": "true"},
            data={"collection_id": "staff"},
        ).json()
        assert [f["subject"] for f in ours["result"]["faces"]] == ["zizou"]
        # Queued, a dispatcher runs it: the tenant travels with the task.
        queued = acme.post(
            "/api/identify/face/image", files=upload(rgb), data={"collection_id": "staff"}
        )
        assert queued.status_code == 202
        task = wait_done(acme, queued.json()["task_id"])
        assert [f["subject"] for f in task["result"]["faces"]] == ["zizou"]
        assert error(globex.get(f"/api/task/{task['task_id']}"), 404)["code"] == "not_found"
        # The default tenant (the admin key here) has neither.
        assert "staff" not in [
            c["collection_id"] for c in http.get("/api/collections").json()["collections"]
        ]


def test_a_body_that_is_not_a_json_object_says_so(http):
    broken = http.post(
        "/api/collections",
        content=b'{"collection_id": ',
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
    plain = http.post("/api/collections", content=b"staff", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415 and "application/json" in plain.json()["error"]["message"]
    array = http.post("/api/collections", json=["staff"])
    assert array.status_code == 422 and array.json()["error"]["fields"] == ["body"]
    huge = {"collection_id": "huge-body", "description": "x" * (2 << 20)}
    declared = http.post("/api/collections", json=huge)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: counted while it arrives
        yield b'{"collection_id": "huge-body", "description": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    streamed = http.post(
        "/api/collections", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and "1048576 bytes" in streamed.json()["error"]["message"]
    assert http.get("/api/collections/huge-body").status_code == 404  # nothing was made


def test_openapi_documents_every_collection_route(http):
    spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        ("/api/collections", "post"): {"201", "409", "422", "503"},
        ("/api/collections", "get"): {"200", "503"},
        ("/api/collections/{collection_id}", "get"): {"200", "404"},
        ("/api/collections/{collection_id}", "delete"): {"204", "404"},
        ("/api/collections/{collection_id}/faces", "post"): {"201", "404", "413", "415", "422"},
        ("/api/collections/{collection_id}/faces", "get"): {"200", "404"},
        ("/api/collections/{collection_id}/faces/{face_id}", "delete"): {"204", "404"},
        ("/api/collections/{collection_id}/subjects/{subject}", "delete"): {"200", "404"},
        ("/api/collections/{collection_id}/search", "post"): {"200", "404", "422"},
        ("/api/collections/{collection_id}/verify", "post"): {"200", "404", "422"},
        ("/api/identify/face/image", "post"): {"200", "202", "422"},
        ("/api/identify/face/video", "post"): {"200", "202", "422"},
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert statuses <= set(responses), (path, method, set(responses))
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
    enroll = paths["/api/collections/{collection_id}/faces"]["post"]["requestBody"]
    form = enroll["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file", "subject"]
    assert {"subject", "external_id", "max_faces", "upsample"} <= set(form["properties"])
    assert form["properties"]["max_faces"]["maximum"] == 100
    identify = paths["/api/identify/face/image"]["post"]["requestBody"]["content"]
    schema = identify["multipart/form-data"]["schema"]
    assert "collection_id" in schema["required"]
    assert schema["properties"]["threshold"]["exclusiveMinimum"] == 0
    kinds = http.get("/api/kinds").json()["kinds"]
    assert {(k["kind"], k["media"]) for k in kinds} >= {
        ("face_identification", "image"),
        ("face_identification", "video"),
    }
