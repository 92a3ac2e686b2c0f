"""Replicas sharing one store, each in its own process: what one enrolls, the
other identifies within a second; what one deletes (a face, a subject, a
collection) stops matching on the other within a second; a restarted replica
finds everything. On both stores: PostgreSQL (LISTEN/NOTIFY) and an SQLite file
(polled).

The one-second bound is the issue's contract for propagation, so it is what
these tests check (with the polling granularity of `within`)."""

from __future__ import annotations

import numpy as np
import pytest

from face_service.gallery import CollectionNotFound, Gallery, GallerySettings, NewFace
from face_service.gallery.synthetic import SyntheticFaces
from tests.gallery_support import (  # noqa: F401
    ReplicaError,
    ReplicaProcess,
    pg_databases,
    pg_session_db,
    pg_url,
    store_url,
    within,
)

pytestmark = pytest.mark.slow

PROPAGATION_S = 1.0


@pytest.fixture(scope="module")
def people():
    faces = SyntheticFaces(seed=21)
    centres = faces.identities(4, seed=5)
    enrolled = faces.photos(centres, 2, seed=6)  # two photos each
    probes = faces.photos(centres, 1, seed=7)  # a third, never enrolled
    return {
        name: (enrolled[2 * i : 2 * i + 2].tolist(), probes[i].tolist())
        for i, name in enumerate(["ann", "bob", "carol", "dave"])
    }


@pytest.fixture
def replicas(store_url):  # noqa: F811
    started = []

    def start():
        replica = ReplicaProcess(store_url).start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop()


def who(replica: ReplicaProcess, probe) -> str | None:
    best = replica.call("identify", encoding=probe)
    return None if best is None else best[0]


def test_changes_through_one_replica_reach_the_other_within_a_second(replicas, people):
    a, b = replicas(), replicas()
    a.call("create")
    assert b.call("identify", encoding=people["ann"][1]) is None  # seen at once: empty

    ann_ids = a.call("add", subject="ann", encodings=people["ann"][0])
    within(PROPAGATION_S, lambda: who(b, people["ann"][1]) == "ann")
    b.call("add", subject="bob", encodings=people["bob"][0])  # and the other way round
    within(PROPAGATION_S, lambda: who(a, people["bob"][1]) == "bob")
    a.call("add", subject="carol", encodings=people["carol"][0])
    within(PROPAGATION_S, lambda: who(b, people["carol"][1]) == "carol")

    # Forgetting a face: one of ann's two photos; then the other.
    a.call("delete_faces", face_ids=[ann_ids[0]])
    within(
        PROPAGATION_S,
        lambda: b.call("identify", encoding=people["ann"][0][0])[1] != ann_ids[0],
    )
    a.call("delete_faces", face_ids=[ann_ids[1]])
    within(PROPAGATION_S, lambda: who(b, people["ann"][1]) is None)

    # Forgetting a subject.
    assert a.call("delete_subject", subject="bob") == 2
    within(PROPAGATION_S, lambda: who(b, people["bob"][1]) is None)
    assert who(b, people["carol"][1]) == "carol"

    # Forgetting the collection.
    a.call("delete_collection")

    def gone() -> bool:
        try:
            b.call("identify", encoding=people["carol"][1])
        except ReplicaError as exc:
            return exc.kind == "CollectionNotFound"
        return False

    within(PROPAGATION_S, gone)
    within(PROPAGATION_S, lambda: b.call("faces") == 0)


def test_a_restarted_replica_finds_its_collections(replicas, people):
    a = replicas()
    a.call("create")
    ann_ids = a.call("add", subject="ann", encodings=people["ann"][0])
    a.call("add", subject="bob", encodings=people["bob"][0])

    b = replicas()
    assert who(b, people["ann"][1]) == "ann" and who(b, people["bob"][1]) == "bob"
    b.stop()

    # While b is down: ann is forgotten, dave enrolled.
    a.call("delete_faces", face_ids=ann_ids)
    a.call("add", subject="dave", encodings=people["dave"][0])

    b = replicas()
    assert b.call("faces") == 4
    assert who(b, people["ann"][1]) is None
    assert who(b, people["bob"][1]) == "bob"
    assert who(b, people["dave"][1]) == "dave"


def test_a_replica_sees_its_own_writes_at_once(store_url, people):  # noqa: F811
    with Gallery.open(GallerySettings(url=store_url)) as gallery:
        assert gallery.start(wait_s=30)
        gallery.create_collection("t", "c")
        enrolled, probe = people["ann"]
        stored = gallery.add_faces("t", "c", [NewFace("ann", np.asarray(e)) for e in enrolled])
        result = gallery.identify("t", "c", probe, top_k=2)[0]
        assert {m.face_id for m in result.matches} == {f.face_id for f in stored}
        gallery.delete_subject("t", "c", "ann")
        assert gallery.identify("t", "c", probe)[0].unknown
        with pytest.raises(CollectionNotFound):
            gallery.identify("other-tenant", "c", probe)
        gallery.delete_collection("t", "c")
        with pytest.raises(CollectionNotFound):
            gallery.identify("t", "c", probe)


def test_concurrent_writers_on_two_replicas(replicas, people):
    """Two replicas enrolling at the same time: every face is stored once, counted
    once, and both replicas end up holding all of them."""
    import threading

    a, b = replicas(), replicas()
    a.call("create")
    errors = []

    def enroll(replica, subject, encodings):
        try:
            for e in encodings:
                replica.call("add", subject=subject, encodings=[e])
        except Exception as exc:  # reported below
            errors.append(exc)

    faces = SyntheticFaces(seed=8)
    batches = [faces.photos(faces.identities(1, seed=s), 60, seed=s).tolist() for s in (1, 2)]
    threads = [
        threading.Thread(target=enroll, args=(a, "x", batches[0])),
        threading.Thread(target=enroll, args=(b, "y", batches[1])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    within(PROPAGATION_S, lambda: a.call("faces") == 120 and b.call("faces") == 120)
    assert who(a, batches[1][0]) == "y" and who(b, batches[0][0]) == "x"
