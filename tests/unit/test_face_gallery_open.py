"""A face replica whose gallery cannot open says why it is NOT_SERVING, and serves once
it can (the face image's case: a default path under HOME=/nonexistent)."""

from __future__ import annotations

import logging
import threading

from face_service.gallery import Gallery, GallerySettings
from face_service.server import wait_for_gallery


def test_a_gallery_that_cannot_open_is_named_with_its_reason_until_it_opens(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the gallery's directory should be")
    path = blocker / "face-gallery.sqlite3"
    gallery = Gallery.open(GallerySettings(url=f"sqlite:///{path}"))
    gallery.start()
    logged = threading.Event()
    lines: list[str] = []

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "NOT_SERVING" in record.getMessage():
                lines.append(record.getMessage())
                logged.set()

    watch = Watch(logging.WARNING)
    logging.getLogger("face_service.server").addHandler(watch)
    waiter = threading.Thread(target=wait_for_gallery, args=(gallery, 0.2), daemon=True)
    try:
        waiter.start()
        assert logged.wait(30), "no NOT_SERVING line while the gallery cannot open"
        assert waiter.is_alive() and not gallery.available
        line = lines[0]
        assert str(path) in line and "FACE_GALLERY_URL" in line, line
        assert "cannot open the gallery database" in line and "File exists" in line, line

        # The path becomes usable: the gallery opens and the wait ends by itself.
        blocker.unlink()
        blocker.mkdir()
        waiter.join(30)
        assert not waiter.is_alive(), "the gallery did not open once its path was fixed"
        assert gallery.wait_ready(0) and path.is_file()
    finally:
        logging.getLogger("face_service.server").removeHandler(watch)
        gallery.close()
