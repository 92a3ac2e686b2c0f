"""When PostgreSQL cannot be reached: operations answer Unavailable, the replica
reports itself unavailable (so the server says NOT_SERVING) and stops
identifying (it could not hear about deletions), then heals by itself and
catches up on what changed meanwhile."""

from __future__ import annotations

import threading

import pytest
from psycopg.conninfo import conninfo_to_dict

from face_service.gallery import Gallery, GallerySettings, NewFace, StoreUnavailable
from face_service.gallery.synthetic import SyntheticFaces
from tests.gallery_support import (  # noqa: F401
    TcpProxy,
    pg_databases,
    pg_session_db,
    pg_url,
    terminate_backends,
    within,
)
from tests.support import free_port

pytestmark = pytest.mark.slow

SETTINGS = {"connect_timeout_s": 1.0, "max_staleness_s": 2.0}


@pytest.fixture(scope="module")
def people():
    faces = SyntheticFaces(seed=33)
    centres = faces.identities(3, seed=1)
    return faces.photos(centres, 1, seed=2), faces.photos(centres, 1, seed=3)


class Recorder:
    """Collects on_availability calls."""

    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.lock = threading.Lock()

    def __call__(self, available: bool) -> None:
        with self.lock:
            self.calls.append(available)

    @property
    def last(self) -> bool | None:
        with self.lock:
            return self.calls[-1] if self.calls else None


def test_a_closed_port_is_unavailable_not_an_error(people):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    recorder = Recorder()
    with Gallery.open(GallerySettings(url=url, **SETTINGS), on_availability=recorder) as gallery:
        assert gallery.start(wait_s=1.5) is False
        assert not gallery.available
        within(2.0, lambda: recorder.last is False)
        with pytest.raises(StoreUnavailable, match="unreachable"):
            gallery.create_collection("t", "c")
        with pytest.raises(StoreUnavailable):
            gallery.list_collections("t")
        with pytest.raises(StoreUnavailable, match="loading"):
            gallery.identify("t", "c", people[0][0])


def test_cut_off_then_back(pg_url, people):  # noqa: F811
    enrolled, probes = people
    info = conninfo_to_dict(pg_url)
    proxy = TcpProxy((info.get("host", "127.0.0.1"), int(info.get("port", 5432)))).start()
    proxied = pg_url.replace(f":{info.get('port', 5432)}/", f":{proxy.port}/", 1)
    recorder = Recorder()
    direct = Gallery.open(GallerySettings(url=pg_url))  # another replica, never cut off
    gallery = Gallery.open(GallerySettings(url=proxied, **SETTINGS), on_availability=recorder)
    try:
        assert direct.start(wait_s=30) and gallery.start(wait_s=30)
        within(2.0, lambda: recorder.last is True)
        gallery.create_collection("t", "c")
        ann = gallery.add_faces("t", "c", [NewFace("ann", enrolled[0])])
        assert gallery.identify("t", "c", probes[0])[0].best.subject == "ann"

        proxy.stop()  # the database is gone for this replica
        within(5.0, lambda: not gallery.available)
        within(2.0, lambda: recorder.last is False)
        with pytest.raises(StoreUnavailable):
            gallery.identify("t", "c", probes[0])
        with pytest.raises(StoreUnavailable):
            gallery.add_faces("t", "c", [NewFace("bob", enrolled[1])])
        with pytest.raises(StoreUnavailable):
            gallery.get_collection("t", "c")

        # Meanwhile, through another replica: ann is forgotten, bob enrolled.
        direct.delete_faces("t", "c", [ann[0].face_id])
        direct.add_faces("t", "c", [NewFace("bob", enrolled[1])])

        proxy.start()  # back, on the same port
        _, took = within(15.0, lambda: gallery.available)
        print(f"available again {took:.2f} s after the database came back")
        within(2.0, lambda: recorder.last is True)
        assert gallery.identify("t", "c", probes[0])[0].unknown  # the deletion was caught up
        assert gallery.identify("t", "c", probes[1])[0].best.subject == "bob"
        gallery.add_faces("t", "c", [NewFace("carol", enrolled[2])])
        within(1.0, lambda: not direct.identify("t", "c", probes[2])[0].unknown)
        assert recorder.calls[-3:] == [True, False, True]
    finally:
        gallery.close()
        direct.close()
        proxy.stop()


def test_terminated_backends_are_replaced(pg_url, people):  # noqa: F811
    enrolled, probes = people
    a = Gallery.open(GallerySettings(url=pg_url))
    b = Gallery.open(GallerySettings(url=pg_url))
    try:
        assert a.start(wait_s=30) and b.start(wait_s=30)
        a.create_collection("t", "c")
        a.add_faces("t", "c", [NewFace("ann", enrolled[0])])
        assert terminate_backends(pg_url) >= 4  # the pools and listeners of both

        # The next calls work (dead pooled connections are replaced), and b's
        # listener reconnects and catches up.
        a.add_faces("t", "c", [NewFace("bob", enrolled[1])])
        within(5.0, lambda: b.available)
        within(2.0, lambda: not b.identify("t", "c", probes[1])[0].unknown)
        assert b.identify("t", "c", probes[0])[0].best.subject == "ann"
        assert b.get_collection("t", "c").face_count == 2
    finally:
        a.close()
        b.close()
