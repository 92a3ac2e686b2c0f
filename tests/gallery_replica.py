"""A face-gallery replica in its own process, for the tests: it opens the store
named on the command line, loads and follows it, prints {"ready": true}, then
answers one JSON command per stdin line with one JSON line."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np

from face_service.gallery import Gallery, GallerySettings, NewFace


def handle(gallery: Gallery, cmd: dict):
    op = cmd["op"]
    tenant = cmd.get("tenant", "tenant-a")
    cid = cmd.get("collection", "staff")
    if op == "create":
        return gallery.create_collection(tenant, cid).collection_id
    if op == "add":
        faces = [NewFace(subject=cmd["subject"], encoding=np.asarray(e)) for e in cmd["encodings"]]
        return [f.face_id for f in gallery.add_faces(tenant, cid, faces)]
    if op == "identify":
        result = gallery.identify(tenant, cid, np.asarray(cmd["encoding"]), top_k=1)[0]
        best = result.best
        return None if best is None else [best.subject, best.face_id, best.distance]
    if op == "delete_faces":
        return gallery.delete_faces(tenant, cid, cmd["face_ids"])
    if op == "delete_subject":
        return gallery.delete_subject(tenant, cid, cmd["subject"])
    if op == "delete_collection":
        gallery.delete_collection(tenant, cid)
        return True
    if op == "faces":
        return gallery.stats().faces
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    gallery = Gallery.open(GallerySettings(url=sys.argv[1]))
    gallery.start(wait_s=60)
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            try:
                reply = {"ok": True, "result": handle(gallery, cmd)}
            except Exception as exc:
                reply = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
            print(json.dumps(reply), flush=True)
    finally:
        gallery.close()


if __name__ == "__main__":
    main()
