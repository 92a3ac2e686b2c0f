"""What callers pass in, turned into what the transports send.

Images: a path, bytes, an open binary file, a PIL image, or a numpy array whose
channel order is said explicitly (`color="rgb"` or `"bgr"`; `"rgba"`,
`"bgra"`, `"gray"`) — an array alone does not say whether it came from OpenCV
(BGR) or from PIL / scikit-image (RGB), and guessing wrong silently changes
results. Encoded files are sent as they are; arrays and PIL images are sent as
lossless PNG.

Videos: a path (streamed from disk over REST), bytes, or an open binary file;
over gRPC a `VideoURI` lets the service open the video itself.
"""

from __future__ import annotations

import contextlib
import io
import mimetypes
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Union

from percept.types import Media, VideoURI

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

Color = Literal["rgb", "bgr", "rgba", "bgra", "gray"]
ImageInput = Union[  # noqa: UP007 - the quoted names are only imported for type checkers
    str, os.PathLike, bytes, bytearray, memoryview, IO[bytes], "np.ndarray", "PILImage.Image"
]
VideoInput = str | os.PathLike | bytes | bytearray | IO[bytes] | VideoURI

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"BM", "image/bmp"),
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp"}


def sniff_image(head: bytes) -> str | None:
    """The content type of JPEG, PNG, WebP or BMP bytes, from their first bytes."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    return None


def _is_array(source: Any) -> bool:
    return hasattr(source, "__array_interface__") and not _is_pil(source)


def _is_pil(source: Any) -> bool:
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(source, module.Image)


def _is_path(source: Any) -> bool:
    return isinstance(source, str | os.PathLike)


def guess_media(source: ImageInput | VideoInput) -> Media:
    """'image' or 'video': arrays, PIL images and image bytes are images; a path
    by its suffix, else by its first bytes."""
    if isinstance(source, VideoURI):
        return "video"
    if _is_array(source) or _is_pil(source):
        return "image"
    if isinstance(source, bytes | bytearray | memoryview):
        return "image" if sniff_image(bytes(source[:16])) else "video"
    if _is_path(source):
        path = Path(source)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return "image"
        guessed = mimetypes.guess_type(path.name)[0] or ""
        if guessed.startswith("video/"):
            return "video"
        with open(path, "rb") as fh:
            return "image" if sniff_image(fh.read(16)) else "video"
    if hasattr(source, "read") and hasattr(source, "seek"):
        position = source.tell()
        head = source.read(16)
        source.seek(position)
        return "image" if sniff_image(head) else "video"
    raise TypeError(f"cannot tell what {type(source).__name__} is: pass media='image' or 'video'")


def array_to_pil(array: np.ndarray, color: Color | None) -> PILImage.Image:
    import numpy as np
    from PIL import Image

    array = np.asarray(array)
    if color is None:
        raise ValueError(
            "a numpy array needs color='rgb' or color='bgr' (OpenCV arrays are BGR; "
            "PIL, scikit-image and matplotlib arrays are RGB)"
        )
    if array.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8 (got {array.dtype})")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    expected = {"gray": 2, "rgb": 3, "bgr": 3, "rgba": 4, "bgra": 4}
    if color not in expected:
        raise ValueError(f"color must be one of {', '.join(expected)} (got {color!r})")
    channels = 2 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else -1)
    if (channels == 2) != (color == "gray") or (channels != 2 and channels != expected[color]):
        raise ValueError(f"an array of shape {array.shape} is not {color!r}")
    if color in ("bgr", "bgra"):
        order = [2, 1, 0] + ([3] if color == "bgra" else [])
        array = array[:, :, order]
    return Image.fromarray(np.ascontiguousarray(array))


def _png(image: PILImage.Image) -> bytes:
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def image_bytes(source: ImageInput, color: Color | None = None) -> bytes:
    """The encoded image to send."""
    if _is_pil(source):
        return _png(source)  # type: ignore[arg-type]
    if _is_array(source):
        return _png(array_to_pil(source, color))  # type: ignore[arg-type]
    if color is not None:
        raise ValueError("color= applies to numpy arrays only")
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif _is_path(source):
        data = Path(source).read_bytes()
    elif hasattr(source, "read"):
        data = source.read()
    else:
        raise TypeError(
            f"an image is a path, bytes, a binary file, a PIL image or a numpy array "
            f"(got {type(source).__name__})"
        )
    if not data:
        raise ValueError("the image is empty")
    return data


def image_content_type(data: bytes) -> str:
    return sniff_image(data[:16]) or "application/octet-stream"


def to_pil(source: ImageInput, color: Color | None = None) -> PILImage.Image:
    """A PIL image as the server sees it (EXIF orientation applied), in RGB."""
    from PIL import Image, ImageOps

    if _is_pil(source):
        image = source
    elif _is_array(source):
        image = array_to_pil(source, color)  # type: ignore[arg-type]
    else:
        image = ImageOps.exif_transpose(Image.open(io.BytesIO(image_bytes(source))))
    return image.convert("RGB")  # type: ignore[union-attr]


def video_content_type(name: str) -> str:
    guessed = mimetypes.guess_type(name)[0] or ""
    return guessed if guessed.startswith("video/") else "application/octet-stream"


def video_name(source: VideoInput) -> str:
    if _is_path(source):
        return Path(source).name
    name = getattr(source, "name", None)
    return Path(name).name if isinstance(name, str) else "video"


def video_bytes(source: VideoInput) -> bytes:
    """The whole video in memory (what the gRPC VideoSource.content needs)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if _is_path(source):
        return Path(source).read_bytes()
    if hasattr(source, "read"):
        return source.read()
    raise TypeError(f"a video is a path, bytes or a binary file (got {type(source).__name__})")


# --- uploads to the REST gateway -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upload:
    """The multipart file of an upload to the REST gateway: a video on disk is
    opened and streamed (httpx reads it in chunks) at each attempt, never read
    whole into memory."""

    filename: str
    content_type: str
    data: bytes | None = None
    path: str | os.PathLike | None = None
    file: IO[bytes] | None = None
    start: int = 0

    def __call__(self, stack: contextlib.ExitStack) -> dict[str, Any]:
        if self.data is not None:
            content: Any = self.data
        elif self.path is not None:
            content = stack.enter_context(open(self.path, "rb"))  # noqa: SIM115
        else:
            assert self.file is not None
            self.file.seek(self.start)
            content = self.file
        return {"file": (self.filename, content, self.content_type)}


def image_upload(source: ImageInput, color: Color | None) -> Upload:
    data = image_bytes(source, color)
    content_type = image_content_type(data)
    name = (
        os.path.basename(os.fspath(source))
        if isinstance(source, str | os.PathLike)
        else "image." + content_type.rsplit("/", 1)[-1].replace("octet-stream", "bin")
    )
    return Upload(name, content_type, data=data)


def video_upload(source: VideoInput, color: Color | None) -> Upload:
    if isinstance(source, VideoURI):
        raise ValueError(
            "the REST gateway takes uploads: pass the video's path, bytes or file "
            "(a VideoURI is for GrpcClient)"
        )
    if color is not None:
        raise ValueError("color= applies to numpy arrays only")
    name = video_name(source)
    common = (name, video_content_type(name))
    if isinstance(source, str | os.PathLike):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no such video: {source}")
        return Upload(*common, path=source)
    if isinstance(source, bytes | bytearray | memoryview):
        return Upload(*common, data=bytes(source))
    if hasattr(source, "read") and hasattr(source, "seek"):
        return Upload(*common, file=source, start=source.tell())
    raise TypeError(f"a video is a path, bytes or a binary file (got {type(source).__name__})")
