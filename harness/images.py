"""Images encoded as a client uploads them."""

from __future__ import annotations

import numpy as np


def encode(rgb: np.ndarray, fmt: str = ".png") -> bytes:
    """An RGB array as the bytes of a `fmt` file (PNG by default: lossless)."""
    import cv2

    ok, buf = cv2.imencode(fmt, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()
