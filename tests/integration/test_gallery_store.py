"""The same contract for both gallery stores (an SQLite file and a real
PostgreSQL database): migrations on an empty database, CRUD, paging, counts,
tenant isolation, errors, the change log, and deletion that really deletes."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from face_service.gallery import (
    AlreadyExists,
    Box,
    CollectionExists,
    CollectionNotFound,
    GallerySettings,
    NewFace,
    SubjectNotFound,
    open_store,
)
from face_service.gallery.errors import FaceNotFound, InvalidInput, NotFound
from face_service.gallery.store import MAX_FACES_PER_ADD, ChangeKind, encoding_bytes
from tests.gallery_support import (  # noqa: F401
    pg_databases,
    pg_empty_database_url,
    pg_session_db,
    pg_url,
    store_url,
)

TENANT, OTHER = "tenant-a", "tenant-b"


@pytest.fixture
def store(store_url):  # noqa: F811
    store = open_store(GallerySettings(url=store_url))
    store.migrate()
    yield store
    store.close()


def enc(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.1, size=128).astype(np.float32)


def faces(*subjects: str, seed: int = 0) -> list[NewFace]:
    return [
        NewFace(
            subject=s, encoding=enc(seed + i), box=Box(10, 20, 110, 140), external_id=f"img-{i}"
        )
        for i, s in enumerate(subjects)
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_create_the_schema_on_an_empty_database(backend, request, tmp_path):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'new' / 'gallery.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_empty_database_url")
    store = open_store(GallerySettings(url=url))
    try:
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(store.migrate())) for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [1, 1, 1]
        assert store.schema_version() == 1
        assert store.migrate() == 1  # a no-op the second time
        collection, _ = store.create_collection(TENANT, "staff")
        assert collection.face_count == 0
    finally:
        store.close()


def test_collections_crud_and_counts(store):
    created, _ = store.create_collection(TENANT, "front-door", "people allowed in")
    assert (created.collection_id, created.description) == ("front-door", "people allowed in")
    assert created.created_at.tzinfo is not None

    stored, _ = store.add_faces(TENANT, "front-door", faces("ann", "ann", "bob"))
    assert len({f.face_id for f in stored}) == 3
    assert all(uuid.UUID(f.face_id) for f in stored)
    assert [f.subject for f in stored] == ["ann", "ann", "bob"]

    described = store.get_collection(TENANT, "front-door")
    assert (described.face_count, described.subject_count) == (3, 2)
    assert described.description == "people allowed in"

    listed = store.list_faces(TENANT, "front-door", include_encodings=True)
    assert [f.face_id for f in listed.items] == [f.face_id for f in stored]
    first = listed.items[0]
    assert first.box == Box(10, 20, 110, 140) and first.external_id == "img-0"
    np.testing.assert_array_equal(first.encoding, enc(0))
    assert store.list_faces(TENANT, "front-door").items[0].encoding is None

    one = store.get_face(TENANT, "front-door", stored[2].face_id, include_encoding=True)
    assert one.subject == "bob"
    np.testing.assert_array_equal(one.encoding, enc(2))

    store.delete_collection(TENANT, "front-door")
    with pytest.raises(CollectionNotFound):
        store.get_collection(TENANT, "front-door")
    # Re-created under the same id, it starts empty.
    store.create_collection(TENANT, "front-door")
    assert store.get_collection(TENANT, "front-door").face_count == 0
    assert store.list_faces(TENANT, "front-door").items == []


def test_duplicate_collection_is_already_exists(store):
    store.create_collection(TENANT, "staff")
    with pytest.raises(CollectionExists, match="staff") as info:
        store.create_collection(TENANT, "staff")
    assert isinstance(info.value, AlreadyExists)
    store.create_collection(OTHER, "staff")  # another tenant may use the same id


@pytest.mark.parametrize(
    "bad", ["", "a" * 65, "has space", "slash/es", "émile", "semi;colon", "new\nline"]
)
def test_bad_collection_ids_are_invalid_input(store, bad):
    with pytest.raises(InvalidInput, match="letters, digits"):
        store.create_collection(TENANT, bad)


def test_good_collection_ids(store):
    for good in ["a", "A.b_c-9", "x" * 64]:
        assert store.create_collection(TENANT, good)[0].collection_id == good


def test_unknown_collection_is_not_found_everywhere(store):
    fid = str(uuid.uuid4())
    calls = [
        lambda: store.get_collection(TENANT, "nope"),
        lambda: store.delete_collection(TENANT, "nope"),
        lambda: store.add_faces(TENANT, "nope", faces("ann")),
        lambda: store.list_faces(TENANT, "nope"),
        lambda: store.get_face(TENANT, "nope", fid),
        lambda: store.delete_faces(TENANT, "nope", [fid]),
        lambda: store.delete_subject(TENANT, "nope", "ann"),
    ]
    for call in calls:
        with pytest.raises(CollectionNotFound, match="'nope' does not exist"):
            call()


def test_tenants_never_see_each_other(store):
    store.create_collection(TENANT, "staff")
    stored, _ = store.add_faces(TENANT, "staff", faces("ann", "bob"))
    store.create_collection(OTHER, "visitors")

    assert [c.collection_id for c in store.list_collections(OTHER).items] == ["visitors"]
    assert [c.collection_id for c in store.list_collections(TENANT).items] == ["staff"]
    with pytest.raises(NotFound):
        store.get_collection(OTHER, "staff")
    with pytest.raises(NotFound):
        store.list_faces(OTHER, "staff")
    with pytest.raises(NotFound):
        store.delete_faces(OTHER, "staff", [stored[0].face_id])
    with pytest.raises(NotFound):
        store.delete_subject(OTHER, "staff", "ann")
    with pytest.raises(NotFound):
        store.delete_collection(OTHER, "staff")
    # Another tenant's face id inside one's own collection is simply not there.
    store.create_collection(OTHER, "staff")
    assert store.delete_faces(OTHER, "staff", [stored[0].face_id]) == ([], 0)
    with pytest.raises(FaceNotFound):
        store.get_face(OTHER, "staff", stored[0].face_id)
    assert store.get_collection(TENANT, "staff").face_count == 2


def test_paging_collections(store):
    ids = [f"c{i:02d}" for i in range(7)]
    for cid in reversed(ids):
        store.create_collection(TENANT, cid)
    store.create_collection(OTHER, "c03x")
    seen, token, pages = [], "", 0
    while True:
        page = store.list_collections(TENANT, page_size=3, page_token=token)
        seen += [c.collection_id for c in page.items]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == ids and pages == 3
    assert store.list_collections(TENANT).next_page_token == ""


def test_page_tokens_and_sizes_are_checked(store):
    for cid in ("a", "b", "c"):
        store.create_collection(TENANT, cid)
    token = store.list_collections(TENANT, page_size=1).next_page_token
    assert token
    with pytest.raises(InvalidInput, match="page_token"):
        store.list_collections(OTHER, page_size=1, page_token=token)  # another listing's
    with pytest.raises(InvalidInput, match="page_token"):
        store.list_collections(TENANT, page_token="garbage!")
    with pytest.raises(InvalidInput, match="page_token"):
        store.list_faces(TENANT, "a", page_token=token)
    with pytest.raises(InvalidInput, match="page_size"):
        store.list_collections(TENANT, page_size=1001)
    with pytest.raises(InvalidInput, match="page_size"):
        store.list_collections(TENANT, page_size=-1)


def test_paging_faces_with_a_subject_filter(store):
    store.create_collection(TENANT, "staff")
    subjects = ["ann", "bob"] * 6
    stored, _ = store.add_faces(TENANT, "staff", faces(*subjects))
    anns = [f.face_id for f in stored if f.subject == "ann"]

    seen, token = [], ""
    while True:
        page = store.list_faces(TENANT, "staff", subject="ann", page_size=4, page_token=token)
        assert all(f.subject == "ann" for f in page.items)
        seen += [f.face_id for f in page.items]
        token = page.next_page_token
        if not token:
            break
    assert seen == anns
    everyone = store.list_faces(TENANT, "staff", page_size=5)
    with pytest.raises(InvalidInput, match="page_token"):
        store.list_faces(TENANT, "staff", subject="ann", page_token=everyone.next_page_token)
    assert store.list_faces(TENANT, "staff", subject="carol").items == []


def test_deleting_faces_and_subjects_updates_counts(store):
    store.create_collection(TENANT, "staff")
    stored, _ = store.add_faces(TENANT, "staff", faces("ann", "ann", "bob", "carol"))
    unknown = str(uuid.uuid4())
    deleted, _ = store.delete_faces(TENANT, "staff", [stored[0].face_id, unknown])
    assert deleted == [stored[0].face_id]
    c = store.get_collection(TENANT, "staff")
    assert (c.face_count, c.subject_count) == (3, 3)

    deleted, _ = store.delete_faces(TENANT, "staff", [stored[2].face_id])  # bob's only face
    c = store.get_collection(TENANT, "staff")
    assert (c.face_count, c.subject_count) == (2, 2)
    assert store.delete_faces(TENANT, "staff", [stored[2].face_id]) == ([], 0)

    assert store.delete_subject(TENANT, "staff", "ann")[0] == 1
    c = store.get_collection(TENANT, "staff")
    assert (c.face_count, c.subject_count) == (1, 1)
    assert [f.subject for f in store.list_faces(TENANT, "staff").items] == ["carol"]
    with pytest.raises(SubjectNotFound, match="ann"):
        store.delete_subject(TENANT, "staff", "ann")
    with pytest.raises(FaceNotFound):
        store.get_face(TENANT, "staff", stored[0].face_id)


def test_bad_faces_are_invalid_input(store):
    store.create_collection(TENANT, "staff")
    cases = [
        ([NewFace("ann", np.zeros(127))], "128"),
        ([NewFace("ann", np.full(128, np.nan))], "finite"),
        ([NewFace("", enc(0))], "subject"),
        ([NewFace("ann", enc(0), box=Box(10, 10, 5, 20))], "box"),
        ([], "no face"),
        ([NewFace("ann", enc(0))] * (MAX_FACES_PER_ADD + 1), "at most"),
    ]
    for bad, message in cases:
        with pytest.raises(InvalidInput, match=message):
            store.add_faces(TENANT, "staff", bad)
    with pytest.raises(InvalidInput, match="face id"):
        store.delete_faces(TENANT, "staff", ["not-a-uuid"])
    assert store.get_collection(TENANT, "staff").face_count == 0


def test_change_log_replays_in_order_and_holds_no_encodings(store):
    start = store.head().seq
    store.create_collection(TENANT, "staff")
    stored, _ = store.add_faces(TENANT, "staff", faces("ann", "bob", "bob"))
    store.delete_subject(TENANT, "staff", "bob")
    store.delete_collection(TENANT, "staff")
    changes = store.changes_since(start)
    assert [c.kind for c in changes] == [
        ChangeKind.CREATE,
        ChangeKind.ADD,
        ChangeKind.REMOVE,
        ChangeKind.DROP,
    ]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert store.head().seq == changes[-1].seq
    assert len(changes[1].face_pks) == 3 and len(changes[2].face_pks) == 2
    assert set(changes[2].face_pks) < set(changes[1].face_pks)
    assert {c.collection_id for c in changes} == {"staff"}
    # The faces are gone, so replaying the "add" finds nothing to load.
    assert len(store.faces_by_pks(changes[1].face_pks)) == 0


def test_faces_by_pks_and_snapshot_carry_what_the_index_needs(store):
    store.create_collection(TENANT, "staff")
    stored, _ = store.add_faces(TENANT, "staff", faces("ann", "bob"))
    add = store.changes_since(0)[-1]
    rows = store.faces_by_pks(add.face_pks)
    assert rows.subjects == ["ann", "bob"]
    np.testing.assert_array_equal(rows.encodings[1], enc(1))
    ids = [str(uuid.UUID(bytes=w.astype("<u8").tobytes())) for w in rows.face_ids]
    assert ids == [f.face_id for f in stored]
    with store.snapshot(chunk_size=1) as snap:
        assert snap.seq == store.head().seq
        assert [(c.tenant, c.collection_id, c.face_count) for c in snap.collections] == [
            (TENANT, "staff", 2)
        ]
        chunks = list(snap.chunks)
    assert [len(c) for c in chunks] == [1, 1]


def test_deleted_encodings_are_gone_from_the_database(store, store_url):  # noqa: F811
    store.create_collection(TENANT, "staff")
    stored, _ = store.add_faces(TENANT, "staff", faces("ann", "bob", seed=40))
    kept = encoding_bytes(enc(41))
    store.delete_faces(TENANT, "staff", [stored[0].face_id])
    store.erase_residue()
    secret = encoding_bytes(enc(40))
    if store_url.startswith("sqlite"):
        # secure_delete + checkpoint: not a byte of it left in the file or its WAL.
        from face_service.gallery.sqlite import path_from_url

        path = path_from_url(store_url)
        data = b"".join(
            p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists()
        )
        assert kept in data and secret not in data
    else:
        import psycopg

        with psycopg.connect(store_url) as conn:
            rows = conn.execute(
                "SELECT count(*) FILTER (WHERE encoding = %s), count(*) FILTER (WHERE encoding = %s)"
                " FROM gallery_faces",
                (secret, kept),
            ).fetchone()
            assert rows == (0, 1)
            log = conn.execute("SELECT * FROM gallery_changes").fetchall()
            assert log and not any(isinstance(v, bytes | memoryview) for r in log for v in r)
