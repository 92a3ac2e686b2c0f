"""Image decoding with limits, shared by every service.

The header is read first, so an image whose pixel count is over the limit (a
decompression bomb) is refused before its pixels are decoded.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
from PIL import (
    BmpImagePlugin,
    Image,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    WebPImagePlugin,
)

from percept_runtime.errors import InvalidInput

ACCEPTED_TEXT = "JPEG, PNG, WebP or BMP"

# We enforce our own limit before decoding; PIL's bomb guard would otherwise
# raise its own error type at a different threshold.
Image.MAX_IMAGE_PIXELS = None

# Decoders are chosen from the first bytes, not through Image.open: only these
# four parsers ever see untrusted bytes, and libraries that patch Image.open
# (ultralytics adds a HEIF fallback that tries to pip-install a package) are
# bypassed.
_DECODERS = (
    (b"\xff\xd8\xff", "JPEG", JpegImagePlugin.JpegImageFile),
    (b"\x89PNG\r\n\x1a\n", "PNG", PngImagePlugin.PngImageFile),
    (b"BM", "BMP", BmpImagePlugin.BmpImageFile),
)
_UNSUPPORTED = (
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
)


# ISO media files all start with an `ftyp` box; its major brand tells videos
# (MP4, QuickTime, 3GP) from still images (HEIF, AVIF, camera raw...).
_VIDEO_BRANDS = {
    b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ",
    b"M4A ", b"dash", b"msnv", b"MSNV", b"f4v ", b"qt  ",
}  # fmt: skip


def _video_format(data: bytes) -> str | None:
    """The name of the video container these bytes start, if they start one."""
    brand = data[8:12]
    if data[4:8] == b"ftyp" and (brand in _VIDEO_BRANDS or brand.startswith(b"3g")):
        return "QuickTime" if brand == b"qt  " else "MP4"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "AVI"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM"
    return None


def _sniff(data: bytes):
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", WebPImagePlugin.WebPImageFile
    for magic, name, cls in _DECODERS:
        if data.startswith(magic):
            return name, cls
    for magic, name in _UNSUPPORTED:
        if data.startswith(magic):
            raise InvalidInput(
                f"unsupported image format {name}: accepted formats are {ACCEPTED_TEXT}"
            )
    video = _video_format(data)
    if video:
        raise InvalidInput(
            f"these bytes are a video ({video}), not an image: send videos to the video "
            f"route or RPC; accepted image formats are {ACCEPTED_TEXT}"
        )
    if data[4:8] == b"ftyp":
        raise InvalidInput(
            f"unsupported image format HEIF/AVIF: accepted formats are {ACCEPTED_TEXT}"
        )
    raise InvalidInput(
        f"image bytes are not a recognised image ({len(data)} bytes): accepted formats are {ACCEPTED_TEXT}"
    )


MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp")  # what _sniff accepts


def media_type(data: bytes) -> str | None:
    """The media type of an accepted image's bytes (by their first bytes), else None."""
    try:
        name = _sniff(data)[0]
    except InvalidInput:
        return None
    return f"image/{name.lower()}"


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Read an image's header (no pixels yet) and check format and pixel count.

    Raises InvalidInput with a message saying what is wrong and what is accepted.
    """
    # face_recognition turns this on globally at import; a truncated upload must fail.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    if not data:
        raise InvalidInput(f"image is empty: send the bytes of a {ACCEPTED_TEXT} file")
    name, decoder = _sniff(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = decoder(io.BytesIO(data))
    except (OSError, SyntaxError, ValueError, IndexError, EOFError) as exc:
        raise InvalidInput(
            f"image looks like {name} but its header is broken ({exc}): send a whole {ACCEPTED_TEXT} file"
        ) from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidInput(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidInput(
            f"image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{max_pixels} pixels; send a smaller image"
        )
    return img


def decode_image(
    data: bytes, max_pixels: int, check: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array of shape (H, W, 3).

    EXIF orientation is applied, so boxes refer to the image as a viewer shows
    it. `check(width, height)` runs on the header, before any pixel is decoded
    (a cost guard). Raises InvalidInput with a message saying what is accepted.
    """
    img = open_image(data, max_pixels)
    width, height = img.size
    if check is not None:
        check(width, height)
    try:
        img = ImageOps.exif_transpose(img)
        rgb = img.convert("RGB")
        rgb.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(
            f"image {img.format} {width}x{height} could not be decoded ({exc}): it looks truncated or corrupt"
        ) from None
    return np.asarray(rgb, dtype=np.uint8)
