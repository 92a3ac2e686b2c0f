"""Identity with real encodings: face_recognition's encodings of real photos
(the astronaut, Grace Hopper, the man in zidane.jpg), enrolled from some
versions of each photo and identified from others (other crops, scales, a
mirror image, other lighting). Rank-1 is the right person; people never
enrolled (the bus passengers) come back unknown. In-process, on both stores."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from face_service.gallery import Gallery, GallerySettings, NewFace
from face_service.gallery.store import Box
from tests.gallery_support import pg_databases, pg_session_db, pg_url, store_url  # noqa: F401

pytestmark = pytest.mark.slow


def largest_face(rgb: np.ndarray):
    import face_recognition

    boxes = face_recognition.face_locations(rgb, number_of_times_to_upsample=1)
    assert boxes, "no face found"
    top, right, bottom, left = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    encoding = face_recognition.face_encodings(rgb, [(top, right, bottom, left)])[0]
    return encoding, Box(left, top, right, bottom)


def variants(rgb: np.ndarray, box: Box) -> dict[str, np.ndarray]:
    h, w = rgb.shape[:2]
    fw, fh = box.right - box.left, box.bottom - box.top
    crop = rgb[
        max(0, box.top - fh) : min(h, box.bottom + fh),
        max(0, box.left - fw) : min(w, box.right + fw),
    ]
    return {
        "original": rgb,
        "mirror": np.ascontiguousarray(rgb[:, ::-1]),
        "darker": np.clip(rgb.astype(np.float32) * 0.55, 0, 255).astype(np.uint8),
        "brighter": np.clip(rgb.astype(np.float32) * 1.25 + 25, 0, 255).astype(np.uint8),
        "smaller": cv2.resize(rgb, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA),
        "larger": cv2.resize(rgb, None, fx=1.6, fy=1.6, interpolation=cv2.INTER_CUBIC),
        "crop": np.ascontiguousarray(crop),
    }


ENROLL = ("original", "mirror")
PROBE = ("darker", "brighter", "smaller", "larger", "crop")


@pytest.fixture(scope="module")
def photos(assets, astronaut):
    import matplotlib

    def read(path) -> np.ndarray:
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)

    grace = read(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    zidane = read(assets / "zidane.jpg")
    bus = read(assets / "bus.jpg")
    return {"astronaut": astronaut, "grace-hopper": grace, "zidane": zidane}, bus


@pytest.fixture(scope="module")
def encodings(photos):
    """{person: {variant: encoding}} and the encodings of never-enrolled people."""
    import face_recognition

    people, bus = photos
    result = {}
    for person, rgb in people.items():
        _, box = largest_face(rgb)
        result[person] = {name: largest_face(img)[0] for name, img in variants(rgb, box).items()}
    strangers = face_recognition.face_encodings(bus, face_recognition.face_locations(bus, 1))
    assert len(strangers) >= 2
    return result, strangers


def test_real_faces_are_identified_and_strangers_are_unknown(store_url, encodings):  # noqa: F811
    people, strangers = encodings
    with Gallery.open(GallerySettings(url=store_url)) as gallery:
        assert gallery.start(wait_s=30)
        gallery.create_collection("acme", "known-people")
        for person, versions in people.items():
            gallery.add_faces(
                "acme", "known-people", [NewFace(person, versions[v]) for v in ENROLL]
            )

        for person, versions in people.items():
            for variant in PROBE:
                result = gallery.identify("acme", "known-people", versions[variant], top_k=3)[0]
                assert result.best is not None, f"{person}/{variant} not recognised"
                assert result.best.subject == person, f"{person}/{variant} -> {result.best}"
                assert result.best.distance < 0.6

            # Verify: yes for the right subject, no for another.
            others = [p for p in people if p != person]
            assert gallery.verify("acme", "known-people", person, versions["crop"]).match
            assert not gallery.verify("acme", "known-people", others[0], versions["crop"]).match

        for stranger in strangers:
            assert gallery.identify("acme", "known-people", stranger, top_k=3)[0].unknown
        # All at once, as for several faces found in one image.
        batch = [people["zidane"]["darker"], strangers[0], people["astronaut"]["smaller"]]
        results = gallery.identify("acme", "known-people", np.stack(batch))
        assert [r.best.subject if r.best else None for r in results] == [
            "zidane",
            None,
            "astronaut",
        ]


def test_distances_match_face_distance_on_real_encodings(tmp_path, encodings):
    import face_recognition

    people, strangers = encodings
    known = [(p, v, e) for p, versions in people.items() for v, e in versions.items()]
    with Gallery.open(GallerySettings(url=f"sqlite:///{tmp_path / 'g.sqlite3'}")) as gallery:
        assert gallery.start(wait_s=30)
        gallery.create_collection("acme", "all")
        gallery.add_faces("acme", "all", [NewFace(p, e) for p, _, e in known])
        probe = strangers[0]
        result = gallery.identify("acme", "all", probe, top_k=len(known), threshold=4.0)[0]
        stored = np.stack([e for _, _, e in known]).astype(np.float32)  # what the store keeps
        expected = np.sort(face_recognition.face_distance(stored, probe.astype(np.float32)))
        assert [m.distance for m in result.matches] == pytest.approx(expected, abs=1e-6)
