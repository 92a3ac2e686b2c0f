"""Images encoded as a client uploads them."""

from __future__ import annotations

import numpy as np


def encode(rgb: np.ndarray, fmt: str = ".png", jpeg_quality: int | None = None) -> bytes:
    """An RGB array as the bytes of a `fmt` file (PNG by default: lossless);
    `jpeg_quality` for a JPEG other than OpenCV's default (95)."""
    import cv2

    params = [] if jpeg_quality is None else [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    ok, buf = cv2.imencode(fmt, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    assert ok
    return buf.tobytes()
