"""Composition root: settings -> engine + gallery -> servicer -> server."""

from __future__ import annotations

import asyncio

from percept.face.v1 import face_service_pb2, face_service_pb2_grpc

from face_service.collections import FaceCollections
from face_service.engine import FaceEngine
from face_service.gallery import Gallery, GallerySettings
from face_service.servicer import FaceServicer
from face_service.settings import FaceSettings
from percept_runtime import tracking
from percept_runtime.server import Availability, GrpcService, serve

SERVICE_NAME = face_service_pb2.DESCRIPTOR.services_by_name["FaceService"].full_name
GALLERY = "the face gallery database"


async def run_server(
    settings: FaceSettings,
    stop: asyncio.Event | None = None,
    gallery_settings: GallerySettings | None = None,
) -> None:
    engine = FaceEngine(
        settings.workers,
        settings.max_image_pixels,
        max_detection_pixels=settings.max_detection_pixels,
        max_cnn_pixels=settings.max_cnn_pixels,
        max_worker_rss_bytes=settings.max_worker_rss_mb * 1024 * 1024,
    )
    # NOT_SERVING while the gallery's store is unreachable: a replica that cannot
    # hear about deletions must not keep identifying (the gallery refuses too).
    availability = Availability()
    gallery = Gallery.open(
        gallery_settings or GallerySettings(),
        on_availability=lambda up: availability.set(GALLERY, up),
    )
    collections = FaceCollections(engine, gallery, settings.min_enroll_face_px)
    servicer = FaceServicer(engine, settings.video_policy(), settings.window, collections)
    service = GrpcService(
        SERVICE_NAME,
        lambda server: face_service_pb2_grpc.add_FaceServiceServicer_to_server(servicer, server),
    )

    async def startup() -> None:
        gallery.start()
        await asyncio.gather(
            engine.start(),
            asyncio.to_thread(gallery.wait_ready, None),
            asyncio.to_thread(tracking.preload),
        )
        availability.set(GALLERY, gallery.available)

    async def shutdown() -> None:
        await engine.close()
        await asyncio.to_thread(gallery.close)

    await serve(
        settings,
        [service],
        startup=startup,
        shutdown=shutdown,
        describe=engine.describe,
        stop=stop,
        availability=availability,
    )
