"""What a face detection costs, and the guard that refuses one too expensive
before any pixel is decoded: shared by the face service and the gateway, so
both refuse the same requests with the same message. Plain Python."""

from __future__ import annotations

from percept_runtime.errors import InvalidInput

# dlib's CNN detector fails on images smaller than this (after upsampling).
CNN_MIN_SIDE = 16


def detection_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size detection runs at: shrunk to max_side (0: full size)."""
    longest = max(width, height)
    if max_side and longest > max_side:
        scale = max_side / longest
        return max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def check_face_cost(
    width: int,
    height: int,
    *,
    detector: str,
    upsample: int,
    max_side: int,
    max_pixels: int,
    max_cnn_pixels: int,
) -> None:
    """Refuse (InvalidInput) a detection over the limits, or a CNN detection on
    an image too small for it, naming the limit and what would pass."""
    w, h = detection_size(width, height, max_side)
    scanned = w * h * 4**upsample
    limit = max_cnn_pixels if detector == "cnn" else max_pixels
    if limit and scanned > limit:
        raise InvalidInput(
            f"a {width}x{height} image with upsample={upsample} means scanning {scanned} pixels "
            f"with the {detector.upper()} detector, over this server's limit of {limit}: lower "
            "upsample, set detection_max_side, or send a smaller image"
        )
    if detector == "cnn" and min(w, h) * 2**upsample < CNN_MIN_SIDE:
        raise InvalidInput(
            f"the CNN detector needs an image at least {CNN_MIN_SIDE} pixels on its shorter side "
            f"(after upsampling); this one is {width}x{height} with upsample={upsample}: send a "
            "larger image, raise upsample, or use the HOG detector"
        )
