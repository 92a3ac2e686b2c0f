"""The face engine: face_recognition in a pool of worker processes, awaited
from the event loop. One process per core, since face encodings hold the GIL."""

from __future__ import annotations

import numpy as np

from face_service import inference
from face_service.inference import ChosenFaces, FaceOptions, ImageFaces
from percept_runtime.replica import Description
from percept_runtime.workers import ProcessWorkers


class FaceEngine:
    """Loads the models in `workers` processes; each call runs in one of them."""

    def __init__(
        self,
        workers: int,
        max_pixels: int,
        *,
        max_detection_pixels: int = 0,
        max_cnn_pixels: int = 0,
        max_worker_rss_bytes: int = 0,
    ) -> None:
        self.max_pixels = max_pixels
        self.limits = inference.CostLimits(max_detection_pixels, max_cnn_pixels)
        self._pool = ProcessWorkers(
            workers, initializer=inference.warm_up, max_rss_bytes=max_worker_rss_bytes
        )

    async def start(self) -> None:
        await self._pool.start()

    def describe(self) -> Description:
        return Description(
            model="face_recognition (dlib HOG/CNN, 128-d encoder)",
            backend="dlib",
            device="cpu",
            workers=self._pool.size,
            workers_ready=self._pool.ready_count,
            worker_restarts=self._pool.restarts,
        )

    async def close(self) -> None:
        await self._pool.close()

    async def detect_image(self, data: bytes, opts: FaceOptions) -> ImageFaces:
        """Decode and detect an encoded image (both in a worker; the cost guard
        refuses it from the header, before decoding)."""
        return await self._pool.run(
            inference.detect_encoded_in_worker, data, opts, self.max_pixels, self.limits
        )

    async def largest_faces(
        self, data: bytes, opts: FaceOptions, max_faces: int, min_side: int, purpose: str
    ) -> ChosenFaces:
        """Decode an image and encode its largest faces, in a worker (enrollment,
        verification): InvalidInput when it has none of at least min_side pixels."""
        return await self._pool.run(
            inference.largest_faces_in_worker,
            data,
            opts,
            self.max_pixels,
            self.limits,
            max_faces,
            min_side,
            purpose,
        )

    async def detect_frame(self, rgb: np.ndarray, opts: FaceOptions) -> ImageFaces:
        """Detect in an already decoded RGB frame (within the cost limits)."""
        self.limits.check(rgb.shape[1], rgb.shape[0], opts)
        return await self._pool.run(inference.detect_faces, rgb, opts)
