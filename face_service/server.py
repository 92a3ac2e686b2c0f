"""Composition root: settings -> engine -> servicer -> server."""

from __future__ import annotations

import asyncio

from percept.face.v1 import face_service_pb2, face_service_pb2_grpc

from face_service.engine import FaceEngine
from face_service.servicer import FaceServicer
from face_service.settings import FaceSettings
from percept_runtime.server import GrpcService, serve

SERVICE_NAME = face_service_pb2.DESCRIPTOR.services_by_name["FaceService"].full_name


async def run_server(settings: FaceSettings, stop: asyncio.Event | None = None) -> None:
    engine = FaceEngine(
        settings.workers,
        settings.max_image_pixels,
        max_detection_pixels=settings.max_detection_pixels,
        max_cnn_pixels=settings.max_cnn_pixels,
        max_worker_rss_bytes=settings.max_worker_rss_mb * 1024 * 1024,
    )
    servicer = FaceServicer(engine, settings.video_policy(), settings.window)
    service = GrpcService(
        SERVICE_NAME,
        lambda server: face_service_pb2_grpc.add_FaceServiceServicer_to_server(servicer, server),
    )
    await serve(
        settings,
        [service],
        startup=engine.start,
        shutdown=engine.close,
        describe=engine.describe,
        stop=stop,
    )
