"""Image decoding with limits, shared by every service.

The header is read first, so an image whose pixel count is over the limit (a
decompression bomb) is refused before its pixels are decoded.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from percept_runtime.errors import InvalidInput

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
ACCEPTED_TEXT = "JPEG, PNG, WebP or BMP"

# We enforce our own limit before decoding; PIL's bomb guard would otherwise
# raise its own error type at a different threshold.
Image.MAX_IMAGE_PIXELS = None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array of shape (H, W, 3).

    EXIF orientation is applied, so boxes refer to the image as a viewer shows
    it. Raises InvalidInput with a message saying what is accepted.
    """
    if not data:
        raise InvalidInput(f"image is empty: send the bytes of a {ACCEPTED_TEXT} file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidInput(
            f"image bytes are not a recognised image ({len(data)} bytes): "
            f"accepted formats are {ACCEPTED_TEXT}"
        ) from None
    if img.format not in ACCEPTED_FORMATS:
        raise InvalidInput(
            f"unsupported image format {img.format}: accepted formats are {ACCEPTED_TEXT}"
        )
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidInput(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidInput(
            f"image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{max_pixels} pixels; send a smaller image"
        )
    # face_recognition turns this on globally at import; a truncated upload must fail.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img = ImageOps.exif_transpose(img)
        rgb = img.convert("RGB")
        rgb.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(
            f"image {img.format} {width}x{height} could not be decoded ({exc}): it looks truncated or corrupt"
        ) from None
    return np.asarray(rgb, dtype=np.uint8)
