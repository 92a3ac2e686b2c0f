"""Shared fixtures: real test images from installed packages, and test videos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.images import encode

os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture(scope="session")
def assets() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


@pytest.fixture(scope="session")
def zidane_bytes(assets) -> bytes:
    return (assets / "zidane.jpg").read_bytes()


@pytest.fixture(scope="session")
def bus_bytes(assets) -> bytes:
    return (assets / "bus.jpg").read_bytes()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def corrupt_png(rgb: np.ndarray) -> bytes:
    """A PNG whose header and end are intact but whose pixel data is garbage:
    only decoding it (the backend) can tell."""
    data = bytearray(encode(rgb, ".png"))
    start = data.find(b"IDAT") + 4 + 5000
    data[start : start + 200] = bytes(200)
    return bytes(data)
