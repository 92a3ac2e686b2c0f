"""The face engine: face_recognition in a pool of worker processes, awaited
from the event loop. One process per core, since face encodings hold the GIL."""

from __future__ import annotations

import numpy as np

from face_service import inference
from face_service.inference import ChosenFaces, FaceOptions, ImageFaces
from percept_runtime.engine import Description, PooledEngine


class FaceEngine(PooledEngine):
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
        super().__init__(workers, inference.warm_up, max_worker_rss_bytes)
        self.max_pixels = max_pixels
        self.limits = inference.CostLimits(max_detection_pixels, max_cnn_pixels)

    def describe(self) -> Description:
        return self._describe("face_recognition (dlib HOG/CNN, 128-d encoder)", "dlib", "cpu")

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
