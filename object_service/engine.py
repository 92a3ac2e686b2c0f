"""The object engine: YOLO in a pool of worker processes, awaited from the
event loop. Weights are located (and exported to ONNX once) in a throwaway
process first, so the gRPC process never imports torch."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from object_service import inference
from object_service.inference import DetectOptions, ImageDetections, ModelConfig, ModelInfo
from percept_runtime.engine import Description, PooledEngine

logger = logging.getLogger(__name__)


class ObjectEngine(PooledEngine):
    """Loads the model in `workers` processes; each call runs in one of them."""

    def __init__(
        self,
        config: ModelConfig,
        workers: int,
        max_pixels: int,
        video_batch: int,
        *,
        max_worker_rss_bytes: int = 0,
    ) -> None:
        super().__init__(workers, inference.load_in_worker, max_worker_rss_bytes)
        self.config = config
        self.max_pixels = max_pixels
        self.video_batch = video_batch
        self.info: ModelInfo | None = None

    async def start(self) -> None:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as once:
            prepared = await asyncio.get_running_loop().run_in_executor(
                once, inference.prepare, self.config
            )
        logger.info("model %s: %s backend on %s", prepared.name, prepared.backend, prepared.device)
        await self._pool.start(initargs=(prepared,))
        self.info = await self._pool.run(inference.info_in_worker)

    def describe(self) -> Description:
        info = self.info
        if info is None:  # not loaded yet: what was asked for
            return self._describe(self.config.model, self.config.backend, self.config.device)
        return self._describe(info.name, info.backend, info.device)

    async def detect_image(self, data: bytes, opts: DetectOptions) -> ImageDetections:
        """Decode and detect an encoded image (both in a worker)."""
        return await self._pool.run(inference.detect_encoded_in_worker, data, opts, self.max_pixels)

    async def detect_frames(
        self, frames: list[np.ndarray], opts: DetectOptions
    ) -> list[ImageDetections]:
        """Detect in decoded RGB frames, as one batch in one worker."""
        return await self._pool.run(inference.detect_frames_in_worker, frames, opts)
