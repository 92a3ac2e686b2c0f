"""Detection options, the same for both transports.

Every field defaults to None, meaning "not sent": the server's default applies
(the defaults below are the servers'). Methods take an options object, keyword
arguments with the same names, or both (the keywords win):

    client.detect_faces("a.jpg", landmarks=True)
    client.detect_faces("a.jpg", FaceOptions(upsample=2), encodings=True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from percept.types import Media


@dataclass(frozen=True, slots=True)
class _VideoOptions:
    """The options of videos and streams, the same for faces and objects."""

    frame_stride: int | None = None
    """Videos only: process every Nth frame; default 1."""
    max_frames: int | None = None
    """Videos only: stop after this many processed frames; default: the server's limit."""
    tracker: Literal["bytetrack", "botsort", "off"] | None = None
    """Videos and streams: how faces or objects are tracked across frames (each
    gets a track_id); default bytetrack; off: no tracks."""
    lost_track_frames: int | None = None
    """Videos and streams: frames a lost track is kept waiting, [1, 10000]; default 30."""
    match_threshold: float | None = None
    """Videos and streams: largest track-to-box matching cost, (0, 1]; default 0.8."""


_VIDEO_ONLY = tuple(f.name for f in dataclasses.fields(_VideoOptions))


@dataclass(frozen=True, slots=True)
class FaceOptions(_VideoOptions):
    detector: Literal["hog", "cnn"] | None = None
    """hog (default; fast) or cnn (more accurate, ~100x slower on CPU)."""
    upsample: int | None = None
    """Times to upsample before detecting, to find smaller faces, [0, 3]; default 1."""
    landmarks: bool | None = None
    """Return the 68 landmarks of each face."""
    encodings: bool | None = None
    """Return the 128-d encoding of each face."""
    detection_max_side: int | None = None
    """Detect on a copy at most this long (boxes stay in source pixels); 0 = full size."""
    num_jitters: int | None = None
    """Re-samples per face when encoding, [1, 100]; default 1."""


@dataclass(frozen=True, slots=True)
class ObjectOptions(_VideoOptions):
    confidence_threshold: float | None = None
    """Smallest confidence kept, [0, 1]; default 0.25."""
    iou_threshold: float | None = None
    """Non-maximum suppression IoU threshold, (0, 1]; default 0.7."""
    classes: Sequence[str | int] | None = None
    """Keep only these classes, by name or id; default: all."""
    max_detections: int | None = None
    """Most detections per image, [1, 1000]; default 300."""

    def __post_init__(self) -> None:
        if isinstance(self.classes, str):  # "circle,star" as on the command line
            parts = (c.strip() for c in self.classes.split(","))
            classes = tuple(int(c) if c.isascii() and c.isdigit() else c for c in parts if c)
            object.__setattr__(self, "classes", classes)
        elif self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))


Options = FaceOptions | ObjectOptions
O = TypeVar("O", FaceOptions, ObjectOptions)


def merge(cls: type[O], options: O | None, fields: Mapping[str, Any]) -> O:
    """`options` (or the defaults) with keyword `fields` on top; unknown names are a TypeError."""
    if options is not None and not isinstance(options, cls):
        raise TypeError(f"expected {cls.__name__}, got {type(options).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise TypeError(
            f"unknown {cls.__name__} field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    base = options if options is not None else cls()
    return dataclasses.replace(base, **fields) if fields else base


def check_media(options: Options, media: Media) -> None:
    if media == "image":
        set_ = [name for name in _VIDEO_ONLY if getattr(options, name) is not None]
        if set_:
            raise ValueError(f"{', '.join(set_)} apply to videos only")


def form_value(value: Any) -> str:
    """One option as a form field: true/false, a comma-separated list, a number."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def set_values(options: Options) -> dict[str, Any]:
    """The options that are set, by name."""
    return {
        f.name: v
        for f in dataclasses.fields(options)
        if (v := getattr(options, f.name)) is not None
    }


def to_form(options: Options, media: Media) -> dict[str, str]:
    """The REST form fields for the options that are set."""
    check_media(options, media)
    return {name: form_value(value) for name, value in set_values(options).items()}
