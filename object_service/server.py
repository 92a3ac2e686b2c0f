"""Composition root: settings -> engine -> servicer -> server."""

from __future__ import annotations

import asyncio

from percept.object.v1 import object_service_pb2, object_service_pb2_grpc

from object_service.engine import ObjectEngine
from object_service.servicer import ObjectServicer
from object_service.settings import ObjectSettings
from percept_runtime import tracking
from percept_runtime.server import GrpcService, serve

SERVICE_NAME = object_service_pb2.DESCRIPTOR.services_by_name["ObjectService"].full_name


async def run_server(settings: ObjectSettings, stop: asyncio.Event | None = None) -> None:
    engine = ObjectEngine(
        settings.engine_config(),
        settings.workers,
        settings.max_image_pixels,
        settings.video_batch,
        max_worker_rss_bytes=settings.max_worker_rss_mb * 1024 * 1024,
    )
    servicer = ObjectServicer(engine, settings.video_policy(), settings.window)
    service = GrpcService(
        SERVICE_NAME,
        lambda server: object_service_pb2_grpc.add_ObjectServiceServicer_to_server(
            servicer, server
        ),
    )

    async def startup() -> None:
        await asyncio.gather(engine.start(), asyncio.to_thread(tracking.preload))

    await serve(
        settings,
        [service],
        startup=startup,
        shutdown=engine.close,
        describe=engine.describe,
        stop=stop,
    )
