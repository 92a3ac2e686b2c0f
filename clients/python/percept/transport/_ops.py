"""The operations every transport runs, each described once.

A `Route` declares a plain call: its REST route (path parameters in
braces; other values go in the query of a GET or DELETE, in the JSON body
otherwise), the FaceService method that does the same over gRPC (its request
fields named as the values), how the answer is read, whether it stores
something (then it is not retried after a network error: it may have been
done). `operation(route)` makes it a method with the signature the route
implies; the transports run it with their `_route` primitive.

The detection and face-collection methods below are the same on both
transports too: they call the transport's `_detect`, `_video` and `_route`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from percept import rules
from percept.errors import Conflict
from percept.inputs import Color, ImageInput, VideoInput
from percept.options import FaceOptions, ObjectOptions, check_media, merge, set_values
from percept.transport import _wire
from percept.transport._core import Op, stream, walk
from percept.types import (
    Collection,
    CollectionPage,
    EnrolledFace,
    Enrollment,
    FacePage,
    FrameResult,
    Identification,
    ImageResult,
    Kind,
    Verification,
)


class _Default:
    """`timeout=DEFAULT`: the client's default (over gRPC, None means no deadline)."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()
_P = inspect.Parameter


@dataclass(frozen=True)
class Route:
    name: str
    method: str  # HTTP
    path: str  # "/api/collections/{collection_id}/faces"
    read: Callable[[Any], Any] | None = None  # the answer's JSON -> the value; None: nothing
    doc: str = ""
    args: tuple[str, ...] = ()  # positional values beyond the path's
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword values and defaults
    fields: bool = False  # takes **fields (sent with the other values)
    rename: Mapping[str, str] = field(default_factory=dict)  # value -> its REST name
    rpc: str | None = None  # the FaceService method, on gRPC
    unwrap: str | None = None  # the gRPC answer's field that holds the REST answer
    stores: bool = False  # not retried after a network error

    @property
    def in_path(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]

    def signature(self) -> inspect.Signature:
        params = [_P("c", _P.POSITIONAL_OR_KEYWORD)]
        params += [_P(n, _P.POSITIONAL_OR_KEYWORD) for n in (*self.in_path, *self.args)]
        params += [_P(n, _P.KEYWORD_ONLY, default=d) for n, d in self.options.items()]
        params.append(_P("timeout", _P.KEYWORD_ONLY, default=DEFAULT))
        if self.fields:
            params.append(_P("fields", _P.VAR_KEYWORD))
        return inspect.Signature(params)

    def read_answer(self, answer: Any, values: Mapping[str, Any]) -> Any:
        """The value of an answer; what was sent fills what the answer leaves out
        (a search's face_id, a verification's subject)."""
        if self.read is None:
            return None
        return self.read({**values, **answer} if isinstance(answer, dict) else answer)


def operation(route: Route) -> Callable[..., Op]:
    """The operation a route declares, with the signature it implies."""
    signature = route.signature()

    def op(*args: Any, **kwargs: Any) -> Op:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        c, timeout, fields = values.pop("c"), values.pop("timeout"), values.pop("fields", {})
        values = {k: v for k, v in values.items() if v is not None} | fields
        return c._route(route, values, timeout)

    op.__name__ = op.__qualname__ = route.name
    op.__doc__ = route.doc
    op.__signature__ = signature  # type: ignore[attr-defined]
    return op


def kind_options(kind: Kind, media: str, options, fields, extra=None) -> dict[str, Any]:
    """The options of a built-in kind that are set (an options object and/or
    keywords, `extra` on top), checked against the proto's rules: nothing out
    of range is sent."""
    opts = merge(FaceOptions if kind.faces else ObjectOptions, options, fields)
    if media == "image":
        check_media(opts, media)
    values = {**set_values(opts), **{k: v for k, v in (extra or {}).items() if v is not None}}
    _wire.check(rules.option_rules(kind.value, media), values)
    return values


# --- detection, the same on both transports -----------------------------------------------


def detect_faces(
    c, image: ImageInput, options: FaceOptions | None = None, *, color: Color | None = None,
    timeout: float | None = DEFAULT, **fields: Any,
) -> ImageResult:  # fmt: skip
    """The faces in one image."""
    return (yield from c._detect(Kind.FACE, image, options, color, timeout, fields))


def detect_objects(
    c, image: ImageInput, options: ObjectOptions | None = None, *, color: Color | None = None,
    timeout: float | None = DEFAULT, **fields: Any,
) -> ImageResult:  # fmt: skip
    """The objects in one image."""
    return (yield from c._detect(Kind.OBJECT, image, options, color, timeout, fields))


def identify(
    c, image: ImageInput, collection_id: str, *, top_k: int | None = None,
    threshold: float | None = None, options: FaceOptions | None = None,
    color: Color | None = None, timeout: float | None = DEFAULT, **fields: Any,
) -> ImageResult:  # fmt: skip
    """Every face of an image with its matches in a collection (`face.subject`,
    None when unknown)."""
    ident = {"collection_id": collection_id, "top_k": top_k, "threshold": threshold}
    return (yield from c._detect(Kind.IDENTIFY, image, options, color, timeout, fields, ident))


@stream
def detect_faces_in_video(
    c, video: VideoInput, options: FaceOptions | None = None, *,
    timeout: float | None = DEFAULT, **fields: Any,
) -> Iterator[FrameResult]:  # fmt: skip
    """Each processed frame's faces, as soon as it is done."""
    return (yield from c._video(Kind.FACE, video, options, timeout, fields))


@stream
def detect_objects_in_video(
    c, video: VideoInput, options: ObjectOptions | None = None, *,
    timeout: float | None = DEFAULT, **fields: Any,
) -> Iterator[FrameResult]:  # fmt: skip
    """Each processed frame's objects, as soon as it is done."""
    return (yield from c._video(Kind.OBJECT, video, options, timeout, fields))


@stream
def identify_in_video(
    c, video: VideoInput, collection_id: str, *, top_k: int | None = None,
    threshold: float | None = None, options: FaceOptions | None = None,
    timeout: float | None = DEFAULT, **fields: Any,
) -> Iterator[FrameResult]:  # fmt: skip
    """Each processed frame, every face with its matches, as it is done."""
    ident = {"collection_id": collection_id, "top_k": top_k, "threshold": threshold}
    return (yield from c._video(Kind.IDENTIFY, video, options, timeout, fields, ident))


# --- face collections ---------------------------------------------------------------------------

_PAGE = {"page_size": None, "page_token": None}
CREATE = Route(
    "create_collection",
    "POST",
    "/api/collections",
    Collection.from_json,
    args=("collection_id", "description"),
    rpc="CreateCollection",
    unwrap="collection",
)
collection = operation(
    Route(
        "collection",
        "GET",
        "/api/collections/{collection_id}",
        Collection.from_json,
        "A collection with its face and subject counts; NotFound when you have none so named.",
        rpc="DescribeCollection",
        unwrap="collection",
    )
)
collections = operation(
    Route(
        "collections",
        "GET",
        "/api/collections",
        CollectionPage.from_json,
        "One page of your collections, by id.",
        options=_PAGE,
        rpc="ListCollections",
    )
)
delete_collection = operation(
    Route(
        "delete_collection",
        "DELETE",
        "/api/collections/{collection_id}",
        doc="Delete a collection and every face in it, everywhere.",
        rpc="DeleteCollection",
    )
)
faces = operation(
    Route(
        "faces",
        "GET",
        "/api/collections/{collection_id}/faces",
        FacePage.from_json,
        "One page of a collection's enrolled faces (of one subject, if given).",
        options={"subject": None, **_PAGE},
        rpc="ListFaces",
    )
)
delete_subject = operation(
    Route(
        "delete_subject",
        "DELETE",
        "/api/collections/{collection_id}/subjects/{subject}",
        lambda b: int(b.get("deleted_faces", 0)),
        "Delete every face of a subject, everywhere; -> how many.",
        rpc="DeleteSubject",
    )
)
search = operation(
    Route(
        "search",
        "POST",
        "/api/collections/{collection_id}/search",
        Identification.from_json,
        "The enrolled faces closest to an enrolled face (itself left out).",
        args=("face_id",),
        options={"top_k": None, "threshold": None},
        rpc="SearchFaces",
    )
)
ENROLL = Route(
    "enroll",
    "POST",
    "/api/collections/{collection_id}/faces",
    Enrollment.from_json,
    rpc="EnrollFaces",
    stores=True,
)
VERIFY = Route("verify", "POST", "/api/collections/{collection_id}/verify",
               Verification.from_json, rpc="VerifyFace")  # fmt: skip


def create_collection(
    c, collection_id: str, description: str = "", *, exist_ok: bool = False,
    timeout: float | None = DEFAULT,
) -> Collection:  # fmt: skip
    """A new, empty face collection; Conflict when the id is taken (by you),
    unless `exist_ok` (then the existing collection, as it is)."""
    values = {"collection_id": collection_id, "description": description}
    try:
        return (yield from c._route(CREATE, values, timeout))
    except Conflict:
        if not exist_ok:
            raise
        return (yield from collection(c, collection_id, timeout=timeout))


@stream
def iter_collections(c, *, page_size: int = 100) -> Iterator[Collection]:
    """Every collection, fetching pages as needed."""
    fetch = lambda token: collections(c, page_size=page_size, page_token=token)  # noqa: E731
    return (yield from walk(fetch, "collections"))


@stream
def iter_faces(
    c, collection_id: str, *, subject: str | None = None, page_size: int = 100
) -> Iterator[EnrolledFace]:
    """Every face of the collection (of `subject` if given), fetching pages as needed."""
    fetch = lambda token: faces(  # noqa: E731
        c, collection_id, subject=subject, page_size=page_size, page_token=token
    )
    return (yield from walk(fetch, "faces"))


def enroll(
    c, collection_id: str, image: ImageInput, subject: str, *, external_id: str | None = None,
    max_faces: int | None = None, options: FaceOptions | None = None,
    color: Color | None = None, timeout: float | None = DEFAULT, **fields: Any,
) -> Enrollment:  # fmt: skip
    """Enroll the image's largest face (up to `max_faces`, largest first) under
    `subject`; InvalidInput when the image has no face large enough. Not
    retried after a network error: a call cut off midway may have enrolled."""
    values = {"collection_id": collection_id, "subject": subject, "external_id": external_id,
              "max_faces": max_faces}  # fmt: skip
    return (yield from c._route(ENROLL, values, timeout, (image, color, options, fields)))


def verify(
    c, collection_id: str, image: ImageInput, subject: str, *, threshold: float | None = None,
    options: FaceOptions | None = None, color: Color | None = None,
    timeout: float | None = DEFAULT, **fields: Any,
) -> Verification:  # fmt: skip
    """Is the image's largest face `subject`'s? (`.match`, `.distance`)"""
    values = {"collection_id": collection_id, "subject": subject, "threshold": threshold}
    return (yield from c._route(VERIFY, values, timeout, (image, color, options, fields)))


OPERATIONS = [
    detect_faces, detect_objects, identify, detect_faces_in_video, detect_objects_in_video,
    identify_in_video, create_collection, collections, iter_collections, collection,
    delete_collection, enroll, faces, iter_faces, delete_subject, search, verify,
]  # fmt: skip
