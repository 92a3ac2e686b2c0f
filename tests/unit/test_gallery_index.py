"""The in-memory search over a collection: face_recognition's distance, top-k under
a threshold, unknown faces, deletions that really forget, and the approximate
index against exact search."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from face_service.gallery.errors import FaceNotFound, InvalidInput, SubjectNotFound
from face_service.gallery.index import CollectionIndex, GalleryIndex, IndexSettings, check_probes
from face_service.gallery.store import CollectionRef, FaceRows
from face_service.gallery.synthetic import SyntheticFaces

EXACT = IndexSettings(approx_min_faces=0)


def face_distance(known: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """face_recognition.api.face_distance, verbatim (importing it loads dlib's models)."""
    return np.linalg.norm(known - probe, axis=1)


def rows(encodings: np.ndarray, subjects: list[str], first_pk: int = 1, cpk: int = 1):
    n = len(encodings)
    ids = [uuid.uuid4() for _ in range(n)]
    words = np.frombuffer(b"".join(i.bytes for i in ids), dtype="<u8").reshape(n, 2)
    return (
        FaceRows(
            collection_pks=np.full(n, cpk, np.int64),
            pks=np.arange(first_pk, first_pk + n, dtype=np.int64),
            face_ids=words.copy(),
            subjects=list(subjects),
            encodings=np.asarray(encodings, np.float32),
        ),
        [str(i) for i in ids],
    )


@pytest.fixture(scope="module")
def population():
    faces = SyntheticFaces(seed=7)
    encodings, labels, centres = faces.gallery(3000, per_identity=3)
    return faces, encodings, labels, centres


@pytest.fixture
def collection(population):
    _, encodings, labels, _ = population
    index = CollectionIndex(CollectionRef(1, "t", "c"), EXACT)
    batch, ids = rows(encodings, [f"person-{i}" for i in labels])
    assert index.add(batch) == len(encodings)
    return index, ids


def test_distances_are_face_recognitions(population, collection):
    faces, encodings, labels, centres = population
    index, ids = collection
    probe = faces.photos(centres[[42]], 1, seed=99)[0]
    result = index.search(check_probes(probe), top_k=5, threshold=4.0)[0]
    reference = face_distance(encodings.astype(np.float64), probe.astype(np.float64))
    order = np.argsort(reference)[:5]
    assert [m.face_id for m in result.matches] == [ids[i] for i in order]
    assert [m.distance for m in result.matches] == pytest.approx(reference[order], abs=1e-9)
    assert result.best.subject == "person-42"


def test_threshold_top_k_and_unknown(population, collection):
    faces, encodings, _, centres = population
    index, _ = collection
    probe = faces.photos(centres[[7]], 1, seed=5)
    top = index.search(check_probes(probe), top_k=3, threshold=0.6)[0]
    assert 1 <= len(top.matches) <= 3
    assert all(m.distance <= 0.6 for m in top.matches)
    assert [m.distance for m in top.matches] == sorted(m.distance for m in top.matches)
    assert top.best.subject == "person-7"
    # Someone never enrolled, farther than 0.6 from everyone enrolled (in a big
    # enough gallery a stranger can come within 0.6 of someone: dlib's false matches).
    strangers = faces.photos(faces.identities(50, seed=12345), 1)
    nearest = [face_distance(encodings, s).min() for s in strangers]
    stranger = strangers[int(np.argmax(nearest))]
    assert max(nearest) > 0.6
    assert index.search(check_probes(stranger), top_k=3, threshold=0.6)[0].unknown
    # A tight threshold turns a true match into "unknown" too.
    assert index.search(check_probes(probe), threshold=top.best.distance - 1e-3)[0].unknown


def test_distinct_subjects_gives_one_face_per_person(population, collection):
    faces, _, _, centres = population
    index, _ = collection
    probe = check_probes(faces.photos(centres[[3]], 1, seed=8))
    per_face = index.search(probe, top_k=3, threshold=1.2)[0]
    per_person = index.search(probe, top_k=3, threshold=1.2, distinct_subjects=True)[0]
    assert [m.subject for m in per_face.matches].count("person-3") >= 2
    assert len({m.subject for m in per_person.matches}) == 3
    assert per_person.best.subject == "person-3"


def test_many_probes_at_once(population, collection):
    faces, _, _, centres = population
    index, _ = collection
    probes = faces.photos(centres[[1, 2, 3]], 1, seed=9)
    results = index.search(check_probes(probes), top_k=1)
    assert [r.best.subject for r in results] == ["person-1", "person-2", "person-3"]


def test_search_by_face_leaves_the_face_out(collection):
    index, ids = collection
    result = index.search_face(ids[0], top_k=3, threshold=0.9)
    assert ids[0] not in [m.face_id for m in result.matches]
    assert result.best.subject == "person-0"  # its two other photos
    with pytest.raises(FaceNotFound):
        index.search_face(str(uuid.uuid4()))
    with pytest.raises(InvalidInput):
        index.search_face("not-a-uuid")


def test_verify(population, collection):
    faces, _, _, centres = population
    index, _ = collection
    probe = faces.photos(centres[[11]], 1, seed=3)[0]
    assert index.verify("person-11", probe).match
    claimed = index.verify("person-12", probe)
    assert not claimed.match and claimed.distance > 0.6
    with pytest.raises(SubjectNotFound):
        index.verify("nobody", probe)


def test_removed_faces_stop_matching_and_are_zeroed(population):
    faces, encodings, labels, centres = population
    index = CollectionIndex(CollectionRef(1, "t", "c"), EXACT)
    batch, ids = rows(encodings[:30], [f"person-{i}" for i in labels[:30]])
    index.add(batch)
    probe = check_probes(encodings[0])
    assert index.search(probe)[0].best.face_id == ids[0]
    assert index.remove([1, 2, 3]) == 3  # person-0's three photos
    result = index.search(probe, top_k=5, threshold=4.0)[0]
    assert not {ids[0], ids[1], ids[2]} & {m.face_id for m in result.matches}
    assert "person-0" not in {m.subject for m in result.matches}
    # Nothing of them is left in memory: no row equals a removed encoding, and
    # the subject's name is gone.
    memory = index._enc
    for removed in encodings[:3]:
        assert not np.any(np.all(memory == removed, axis=1))
    assert "person-0" not in index._subject_codes
    with pytest.raises(SubjectNotFound):
        index.verify("person-0", encodings[0])
    # Freed slots are reused by new faces.
    again, again_ids = rows(encodings[:1], ["person-0"], first_pk=100)
    index.add(again)
    assert index.search(probe)[0].best.face_id == again_ids[0]
    assert index._hi == 30


def test_adding_the_same_rows_twice_is_harmless(population):
    _, encodings, labels, _ = population
    index = CollectionIndex(CollectionRef(1, "t", "c"), EXACT)
    batch, _ = rows(encodings[:10], [f"p{i}" for i in labels[:10]])
    assert index.add(batch) == 10
    assert index.add(batch) == 0
    assert len(index) == 10


def test_dropping_a_collection_zeroes_it():
    registry = GalleryIndex(EXACT)
    index = registry.ensure(CollectionRef(5, "tenant-a", "staff"))
    enc = np.random.default_rng(0).normal(size=(4, 128)).astype(np.float32)
    batch, _ = rows(enc, ["a", "b", "c", "d"], cpk=5)
    assert registry.add_rows(batch) == 4
    assert registry.get("tenant-a", "staff") is index
    assert registry.get("tenant-b", "staff") is None
    registry.drop(5)
    assert registry.get("tenant-a", "staff") is None
    assert not index._enc.any() and len(index) == 0


def test_probe_checks():
    with pytest.raises(InvalidInput, match="128"):
        check_probes(np.zeros(127))
    with pytest.raises(InvalidInput, match="finite"):
        check_probes(np.full(128, np.nan))


@pytest.mark.slow
def test_approximate_recall_against_exact():
    """recall@1 of the HNSW index (with exact re-ranking) vs exact search, on
    synthetic clustered encodings: >= 0.99. Deletions vanish from it too."""
    faces = SyntheticFaces(seed=3)
    encodings, labels, centres = faces.gallery(40_000, per_identity=4)
    # One build thread (the default): the graph, and so the figure, is the same
    # every run (threads insert in whatever order the scheduler gives them).
    settings = IndexSettings(approx_min_faces=10_000, approx_build_threads=1)
    registry = GalleryIndex(settings)
    index = registry.ensure(CollectionRef(1, "t", "c"))
    batch, ids = rows(encodings, [f"p{i}" for i in labels])
    index.add(batch)
    assert index.wait_approx(timeout=300), "the approximate index was not built"
    assert index.approximate

    probes = faces.photos(centres[:500], 1, seed=77)  # checked shape: float32 (500, 128)
    exact = index.search(probes, top_k=1, threshold=4.0, exact=True)
    approx = index.search(probes, top_k=1, threshold=4.0, exact=False)
    same = [a.best.face_id == e.best.face_id for a, e in zip(approx, exact, strict=True)]
    recall = sum(same) / len(same)
    assert recall >= 0.99, recall

    # Removing faces removes them from the approximate index as well.
    found = {e.best.face_id for e in exact[:50]}
    pks = [batch.pks[ids.index(f)] for f in found]
    index.remove(pks)
    after = index.search(probes[:50], top_k=5, threshold=4.0, exact=False)
    assert not found & {m.face_id for r in after for m in r.matches}
    registry.close()


@pytest.mark.slow
def test_approximate_index_built_while_faces_change():
    """Faces added and removed while the index builds in the background end up
    exactly as in exact search."""
    faces = SyntheticFaces(seed=4)
    encodings, labels, centres = faces.gallery(24_000, per_identity=4)
    settings = IndexSettings(approx_min_faces=8_000, approx_build_chunk=2_000)
    registry = GalleryIndex(settings)
    index = registry.ensure(CollectionRef(1, "t", "c"))
    batch, ids = rows(encodings[:12_000], [f"p{i}" for i in labels[:12_000]])
    index.add(batch)  # starts the build
    late, late_ids = rows(encodings[12_000:], [f"p{i}" for i in labels[12_000:]], first_pk=12_001)

    def churn():
        for start in range(0, len(late), 1000):
            index.add(late.select(np.isin(np.arange(len(late)), range(start, start + 1000))))
        index.remove(range(1, 2001))  # the first 500 people

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    assert index.wait_approx(timeout=300)
    assert len(index) == 24_000 - 2000
    removed = set(ids[:2000])
    probes = check_probes(faces.photos(centres[[0, 1, 2, 600, 3500, 5999]], 1, seed=5))
    approx = index.search(probes, top_k=5, threshold=4.0, exact=False)
    exact = index.search(probes, top_k=5, threshold=4.0, exact=True)
    assert not removed & {m.face_id for r in approx for m in r.matches}
    assert [r.best.face_id for r in approx] == [r.best.face_id for r in exact]
    assert [r.best.subject for r in approx[3:]] == ["p600", "p3500", "p5999"]
    registry.close()
