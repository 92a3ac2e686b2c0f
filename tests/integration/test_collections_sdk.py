"""Face collections through the Python SDK (REST and gRPC, sync and asyncio) and
the `percept` command line, against the real stack: typed results, errors
mapped to the SDK's exceptions, and the CLI's tables, --json and exit codes."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import percept
import pytest
from percept import errors

from harness import faces
from tests.support import GatewayProcess, ServerProcess, create_key, fresh_db, run_percept

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    path = tmp_path_factory.mktemp("sdk-gallery") / "gallery.sqlite3"
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
            "GATEWAY_OBJECT_TARGETS": face.address,
            "GATEWAY_WAIT_TIMEOUT_S": "60",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sdk-photos")
    out = {}
    for person in faces.PEOPLE:
        for i, rgb in enumerate(faces.enrollment_images(person)):
            out[f"{person}-{i}"] = d / f"{person}-{i}.jpg"
            out[f"{person}-{i}"].write_bytes(faces.encode(rgb))
    for i, (name, rgb, _) in enumerate(faces.scenes()):
        out[f"scene-{i}"] = d / f"scene-{name}.jpg"
        out[f"scene-{i}"].write_bytes(faces.encode(rgb))
    out["bus"] = d / "bus.jpg"
    out["bus"].write_bytes(faces.encode(faces.strangers()))
    out["empty"] = d / "empty.jpg"
    out["empty"].write_bytes(faces.encode(faces.background("rocket", (400, 300))))
    truth = faces.moving_heads_video(d / "two.avi", ("zidane", "grace-hopper"), n_frames=6)
    out["video"] = d / "two.avi"
    out["truth"] = truth  # type: ignore[assignment]
    return out


def scene_truth(index: int) -> list[faces.Placed]:
    return faces.scenes()[index][2]


def who_is_where(result, placed) -> list[tuple[str, str | None]]:
    found = []
    for face in result.faces:
        centre = (face.box.center.x, face.box.center.y)
        truth = [p.person for p in placed if p.contains(centre)]
        assert len(truth) == 1
        found.append((truth[0], face.subject))
    return sorted(found)


def everyone(placed) -> list[tuple[str, str]]:
    return sorted((p.person, p.person) for p in placed)


# --- REST ------------------------------------------------------------------------------------


def test_rest_client_manages_collections_and_identifies(gateway, photos):
    with percept.Client(gateway.url, api_key=gateway.api_key) as client:
        created = client.create_collection("sdk-rest", "the SDK's")
        assert isinstance(created, percept.Collection) and created.created_at is not None
        with pytest.raises(errors.Conflict) as exists:
            client.create_collection("sdk-rest")
        assert exists.value.status == 409 and exists.value.code == "already_exists"
        for person in faces.PEOPLE:
            for i in range(2):
                enrollment = client.enroll(
                    "sdk-rest", photos[f"{person}-{i}"], person, external_id=f"{person}/{i}"
                )
                assert isinstance(enrollment, percept.Enrollment)
                assert [f.subject for f in enrollment.faces] == [person]
                assert enrollment.faces[0].external_id == f"{person}/{i}"
        # exist_ok: the collection as it is, faces kept, description unchanged
        again = client.create_collection("sdk-rest", "another", exist_ok=True)
        assert (again.description, again.face_count) == ("the SDK's", 2 * len(faces.PEOPLE))
        described = client.collection("sdk-rest")
        assert (described.face_count, described.subject_count) == (6, 3)
        assert [c.collection_id for c in client.iter_collections(page_size=1)] == ["sdk-rest"]
        faces_of = list(client.iter_faces("sdk-rest", subject="zidane", page_size=1))
        assert [f.subject for f in faces_of] == ["zidane", "zidane"]

        result = client.identify(photos["scene-0"], "sdk-rest", top_k=2)
        assert result.kind is percept.Kind.IDENTIFY and result.threshold == pytest.approx(0.6)
        assert who_is_where(result, scene_truth(0)) == everyone(scene_truth(0))
        assert all(isinstance(m, percept.Match) for f in result.faces for m in f.matches)
        strangers = client.identify(photos["bus"], "sdk-rest")
        assert strangers.faces and all(f.unknown and f.subject is None for f in strangers.faces)

        frames = list(client.identify_in_video(photos["video"], "sdk-rest"))
        assert [f.frame_index for f in frames] == list(range(6))
        for frame in frames:
            assert frame.kind is percept.Kind.IDENTIFY
            assert who_is_where(frame, photos["truth"][frame.frame_index]) == [
                ("grace-hopper", "grace-hopper"),
                ("zidane", "zidane"),
            ]

        search = client.search("sdk-rest", faces_of[0].face_id, top_k=3)
        assert isinstance(search, percept.Identification)
        assert search.best.face_id == faces_of[1].face_id and search.subject == "zidane"
        verdict = client.verify("sdk-rest", photos["zidane-1"], "zidane")
        assert isinstance(verdict, percept.Verification) and verdict.match

        with pytest.raises(errors.InvalidInput) as no_face:
            client.enroll("sdk-rest", photos["empty"], "nobody")
        assert no_face.value.status == 422 and "no face found" in no_face.value.message
        with pytest.raises(errors.NotFound):
            client.identify(photos["bus"], "no-such-collection")
        with pytest.raises(errors.NotFound):
            client.delete_face("sdk-rest", "00000000-0000-0000-0000-000000000000")

        client.delete_face("sdk-rest", faces_of[0].face_id)
        assert client.delete_subject("sdk-rest", "zidane") == 1
        assert client.collection("sdk-rest").face_count == 4
        client.delete_collection("sdk-rest")
        with pytest.raises(errors.NotFound):
            client.collection("sdk-rest")


def test_async_rest_client_and_tenants(gateway, redis_db, photos):
    acme = create_key(redis_db, role="client", tenant="sdk-acme")
    other = create_key(redis_db, role="client", tenant="sdk-other")

    async def main():
        async with (
            percept.AsyncClient(gateway.url, api_key=acme) as client,
            percept.AsyncClient(gateway.url, api_key=other) as stranger,
        ):
            await client.create_collection("team")
            await client.enroll("team", photos["astronaut-0"], "eileen")
            again = await client.create_collection("team", exist_ok=True)
            assert again.face_count == 1
            fresh = await stranger.create_collection("team", exist_ok=True)  # its own tenant's
            assert fresh.face_count == 0
            await stranger.delete_collection("team")
            result = await client.identify(photos["scene-1"], "team")
            names = {f.subject for f in result.faces}
            page = await stranger.collections()
            assert [c.collection_id async for c in client.iter_collections(page_size=1)] == ["team"]
            assert [f.subject async for f in client.iter_faces("team")] == ["eileen"]
            with pytest.raises(errors.NotFound):
                await stranger.collection("team")
            return names, page

    names, page = asyncio.run(main())
    assert names == {"eileen", None}  # the astronaut, and two people never enrolled here
    assert page.collections == ()


# --- gRPC ------------------------------------------------------------------------------------


def test_grpc_clients_manage_collections_and_identify(face, photos):
    with percept.GrpcClient(face=face.address, tenant="sdk-grpc") as client:
        client.create_collection("grpc")
        with pytest.raises(errors.Conflict):
            client.create_collection("grpc")
        for person in faces.PEOPLE:
            client.enroll("grpc", photos[f"{person}-0"], person)
        assert client.create_collection("grpc", exist_ok=True).face_count == len(faces.PEOPLE)
        result = client.identify(photos["scene-1"], "grpc")
        assert who_is_where(result, scene_truth(1)) == everyone(scene_truth(1))
        frames = list(client.identify_in_video(photos["video"], "grpc"))
        assert len(frames) == 6 and all(
            sorted(f.subjects) == ["grace-hopper", "zidane"] for f in frames
        )
        live = list(
            client.stream_faces([photos["scene-0"], photos["bus"]], collection_id="grpc", top_k=2)
        )
        assert who_is_where(live[0], scene_truth(0)) == everyone(scene_truth(0))
        assert live[1].faces and all(f.unknown for f in live[1].faces)
        plain = list(client.stream_faces([photos["bus"]]))
        assert all(f.matches is None for f in plain[0].faces)  # not identifying
        with pytest.raises(errors.InvalidInput) as invalid:
            client.enroll("grpc", photos["empty"], "nobody")
        assert invalid.value.code == "invalid_argument"
        assert client.collection("grpc").face_count == 3
        # Every page walked: one face per page, three pages, each face once.
        walked = [f.face_id for f in client.iter_faces("grpc", page_size=1)]
        assert len(set(walked)) == 3 == len(walked)
        assert [c.collection_id for c in client.iter_collections(page_size=1)] == ["grpc"]

    async def main():
        async with percept.AsyncGrpcClient(face=face.address, tenant="sdk-grpc") as client:
            assert (await client.create_collection("grpc", exist_ok=True)).face_count == 3
            walked_async = [f.face_id async for f in client.iter_faces("grpc", page_size=2)]
            assert sorted(walked_async) == sorted(walked)
            assert [c.collection_id async for c in client.iter_collections()] == ["grpc"]
            page = await client.faces("grpc", subject="astronaut")
            search = await client.search("grpc", page.faces[0].face_id)
            verdict = await client.verify("grpc", photos["astronaut-1"], "astronaut")
            deleted = await client.delete_faces("grpc", [page.faces[0].face_id])
            with pytest.raises(errors.NotFound):
                await client.delete_face("grpc", page.faces[0].face_id)
            await client.delete_collection("grpc")
            with pytest.raises(errors.NotFound):
                await client.collection("grpc")
            return search, verdict, deleted, page

    search, verdict, deleted, page = asyncio.run(main())
    assert search.unknown  # no other face of hers
    assert verdict.match and verdict.face_id == page.faces[0].face_id
    assert deleted == [page.faces[0].face_id]
    # Another tenant (the default) never saw any of it.
    with percept.GrpcClient(face=face.address) as client, pytest.raises(errors.NotFound):
        client.collection("grpc")


# --- the command line ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(gateway):
    return functools.partial(run_percept, gateway, COLUMNS="200")


def test_cli_collections_faces_and_identify(cli, photos):
    created = cli("collections", "create", "cli", "--description", "from the CLI", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["collection_id"] == "cli"
    again = cli("collections", "create", "cli")
    assert again.returncode == 1 and "already exists" in again.stderr
    kept = cli("collections", "create", "cli", "--description", "other", "--exist-ok", "--json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["description"] == "from the CLI"  # left as it was
    said = cli("collections", "create", "cli", "--exist-ok")
    assert said.returncode == 0 and "exists already" in said.stdout

    enrolled = cli(
        "faces", "enroll", "cli", str(photos["astronaut-0"]), str(photos["astronaut-1"]),
        str(photos["empty"]), "--subject", "astronaut", "--json",
    )  # fmt: skip
    assert enrolled.returncode == 2, enrolled.stderr  # one image had no face
    items = json.loads(enrolled.stdout)
    assert [len(i.get("faces", ())) for i in items] == [1, 1, 0]
    assert "no face found" in items[2]["error"]["message"] and "empty.jpg" in enrolled.stderr
    for person in ("zidane", "grace-hopper"):
        ok = cli("faces", "enroll", "cli", str(photos[f"{person}-0"]), "--subject", person)
        assert ok.returncode == 0 and person in ok.stdout

    listed = cli("collections", "list")
    assert listed.returncode == 0 and "cli" in listed.stdout and "from the CLI" in listed.stdout
    shown = json.loads(cli("collections", "show", "cli", "--json").stdout)
    assert (shown["face_count"], shown["subject_count"]) == (4, 3)
    table = cli("faces", "list", "cli", "--subject", "astronaut")
    assert table.returncode == 0 and table.stdout.count("astronaut") >= 2

    identified = cli("identify", str(photos["scene-0"]), str(photos["bus"]), "--collection", "cli")
    assert identified.returncode == 0, identified.stderr
    for person in faces.PEOPLE:
        assert person in identified.stdout
    assert "unknown" in identified.stdout  # the bus passengers
    as_json = json.loads(
        cli("identify", str(photos["scene-1"]), "--collection", "cli", "--json").stdout
    )
    result = percept.Task.from_json(as_json[0]).result
    assert who_is_where(result, scene_truth(1)) == everyone(scene_truth(1))
    video = cli("identify", str(photos["video"]), "--collection", "cli", "--json")
    frames = json.loads(video.stdout)[0]["result"]["frames"]
    assert len(frames) == 6 and all(
        sorted(f["subject"] for f in frame["faces"]) == ["grace-hopper", "zidane"]
        for frame in frames
    )

    missing = cli("identify", str(photos["bus"]), "--collection", "nope")
    assert missing.returncode == 2 and "collection 'nope' does not exist" in missing.stderr
    face_id = json.loads(cli("faces", "list", "cli", "--json").stdout)["faces"][0]["face_id"]
    assert cli("faces", "delete", "cli", face_id).returncode == 0
    gone = cli("faces", "delete", "cli", face_id)
    assert gone.returncode == 2 and "no such face" in gone.stderr
    by_subject = cli("faces", "delete", "cli", "--subject", "zidane", "--json")
    assert json.loads(by_subject.stdout) == {"subject": "zidane", "deleted_faces": 1}
    refused = cli("collections", "delete", "cli")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert cli("collections", "delete", "cli", "--yes").returncode == 0
    assert cli("collections", "show", "cli").returncode == 2
