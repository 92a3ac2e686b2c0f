"""The operations every transport runs, each described once.

A `Route` declares a plain call: its REST route (path parameters in
braces; other values go in the query of a GET or DELETE, in the JSON body
otherwise), the FaceService method that does the same over gRPC (its request
fields named as the values), how the answer is read, whether it stores
something (then it is not retried after a network error: it may have been
done). `operation(route)` makes it a method with the signature the route
implies; the transports run it with their `_route` primitive.

The detection methods are one table too (`detection`: a kind on a media),
run by the transport's `_detect` and `_video`; the face-collection methods
below are the same on both transports.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from percept import rules
from percept.errors import Conflict
from percept.inputs import Color, ImageInput
from percept.options import FaceOptions, ObjectOptions, check_media, merge, set_values
from percept.transport import _wire
from percept.transport._core import Op, stream, walk
from percept.types import (
    Collection,
    CollectionPage,
    EnrolledFace,
    Enrollment,
    FacePage,
    Identification,
    Kind,
    Verification,
)


class _Default:
    """`timeout=DEFAULT`: the client's default (over gRPC, None means no deadline)."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()
_P = inspect.Parameter


def _pos(name: str, annotation: Any = _P.empty, default: Any = _P.empty) -> inspect.Parameter:
    return _P(name, _P.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)


def _kw(name: str, annotation: Any = _P.empty, default: Any = None) -> inspect.Parameter:
    return _P(name, _P.KEYWORD_ONLY, default=default, annotation=annotation)


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
        params = [_pos(n) for n in ("c", *self.in_path, *self.args)]
        params += [_kw(n, default=d) for n, d in self.options.items()]
        params.append(_kw("timeout", default=DEFAULT))
        if self.fields:
            params.append(_P("fields", _P.VAR_KEYWORD))
        return inspect.Signature(params)

    def read_answer(self, answer: Any, values: Mapping[str, Any]) -> Any:
        """The value of an answer; what was sent fills what the answer leaves out
        (a search's face_id, a verification's subject)."""
        if self.read is None:
            return None
        return self.read({**values, **answer} if isinstance(answer, dict) else answer)


def _named(name: str, doc: str, signature: inspect.Signature, run: Callable[..., Op]):
    """An operation with `name`, `doc` and `signature`: `run(arguments)`, every
    argument bound by name (defaults applied)."""

    def op(*args: Any, **kwargs: Any) -> Op:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return run(dict(bound.arguments))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    op.__signature__ = signature  # type: ignore[attr-defined]
    return op


def operation(route: Route) -> Callable[..., Op]:
    """The operation a route declares, with the signature it implies."""

    def run(values: dict[str, Any]) -> Op:
        c, timeout, fields = values.pop("c"), values.pop("timeout"), values.pop("fields", {})
        values = {k: v for k, v in values.items() if v is not None} | fields
        return c._route(route, values, timeout)

    return _named(route.name, route.doc, route.signature(), run)


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


def identification(kind: Kind, collection_id=None, top_k=None, threshold=None) -> dict[str, Any]:
    """The identification values of a kind: "identify" needs a collection, the
    other kinds take none."""
    if kind is not Kind.IDENTIFY:
        if (collection_id, top_k, threshold) != (None, None, None):
            raise ValueError("collection_id, top_k and threshold are for identification")
        return {}
    if not collection_id:
        raise ValueError("identification needs a collection_id")
    return {"collection_id": collection_id, "top_k": top_k, "threshold": threshold}


# --- detection, the same on both transports: one table ------------------------------------


def detection(name: str, kind: Kind, media: str, doc: str) -> Callable[..., Op]:
    """The operation that runs a built-in kind on one image (the transport's
    `_detect`) or on a video, its frames as they are done (`_video`)."""
    identifies, image = kind is Kind.IDENTIFY, media == "image"
    params = [_pos("c"), _pos(media, f"{media.title()}Input")]
    if identifies:
        params += [
            _pos("collection_id", "str"),
            _kw("top_k", "int | None"),
            _kw("threshold", "float | None"),
        ]
    options = ("Face" if kind.faces else "Object") + "Options | None"
    params.append((_kw if identifies else _pos)("options", options, None))
    params += [_kw("color", "Color | None")] if image else []
    params += [
        _kw("timeout", "float | None", DEFAULT),
        _P("fields", _P.VAR_KEYWORD, annotation="Any"),
    ]
    returns = "ImageResult" if image else "Iterator[FrameResult]"

    def run(a: dict[str, Any]) -> Op:
        ident = identification(kind, *(a[k] for k in _IDENTIFY)) if identifies else None
        start = a["c"]._detect if image else a["c"]._video
        return start(kind, a[media], a["options"], a.get("color"), a["timeout"], a["fields"], ident)

    op = _named(name, doc, inspect.Signature(params, return_annotation=returns), run)
    return op if image else stream(op)


_IDENTIFY = ("collection_id", "top_k", "threshold")
DETECTIONS = [
    detection("detect_faces", Kind.FACE, "image", "The faces in one image."),
    detection("detect_objects", Kind.OBJECT, "image", "The objects in one image."),
    detection("identify", Kind.IDENTIFY, "image", "Every face of an image with its matches in "
              "a collection (`face.subject`,\n    None when unknown)."),
    detection("detect_faces_in_video", Kind.FACE, "video",
              "Each processed frame's faces, as soon as it is done."),
    detection("detect_objects_in_video", Kind.OBJECT, "video",
              "Each processed frame's objects, as soon as it is done."),
    detection("identify_in_video", Kind.IDENTIFY, "video",
              "Each processed frame, every face with its matches, as it is done."),
]  # fmt: skip


# --- face collections ---------------------------------------------------------------------------

_PAGE = {"page_size": None, "page_token": None}
_ONE = "/api/collections/{collection_id}"
collection, collections, delete_collection, faces, delete_subject, search = map(operation, [
    Route("collection", "GET", _ONE, Collection.from_json, "A collection with its face and "
          "subject counts; NotFound when you have none so named.", rpc="DescribeCollection",
          unwrap="collection"),
    Route("collections", "GET", "/api/collections", CollectionPage.from_json,
          "One page of your collections, by id.", options=_PAGE, rpc="ListCollections"),
    Route("delete_collection", "DELETE", _ONE,
          doc="Delete a collection and every face in it, everywhere.", rpc="DeleteCollection"),
    Route("faces", "GET", _ONE + "/faces", FacePage.from_json, "One page of a collection's "
          "enrolled faces (of one subject, if given).", options={"subject": None, **_PAGE},
          rpc="ListFaces"),
    Route("delete_subject", "DELETE", _ONE + "/subjects/{subject}",
          lambda b: int(b.get("deleted_faces", 0)),
          "Delete every face of a subject, everywhere; -> how many.", rpc="DeleteSubject"),
    Route("search", "POST", _ONE + "/search", Identification.from_json, "The enrolled faces "
          "closest to an enrolled face (itself left out).", args=("face_id",),
          options={"top_k": None, "threshold": None}, rpc="SearchFaces"),
])  # fmt: skip
CREATE = Route("create_collection", "POST", "/api/collections", Collection.from_json,
               args=("collection_id", "description"), rpc="CreateCollection",
               unwrap="collection")  # fmt: skip
ENROLL = Route("enroll", "POST", _ONE + "/faces", Enrollment.from_json, rpc="EnrollFaces",
               stores=True)  # fmt: skip
VERIFY = Route("verify", "POST", _ONE + "/verify", Verification.from_json, rpc="VerifyFace")


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
    values = kind_options(Kind.FACE, "image", options, fields, values)
    return (yield from c._route(ENROLL, values, timeout, (image, color)))


def verify(
    c, collection_id: str, image: ImageInput, subject: str, *, threshold: float | None = None,
    options: FaceOptions | None = None, color: Color | None = None,
    timeout: float | None = DEFAULT, **fields: Any,
) -> Verification:  # fmt: skip
    """Is the image's largest face `subject`'s? (`.match`, `.distance`)"""
    values = {"collection_id": collection_id, "subject": subject, "threshold": threshold}
    values = kind_options(Kind.FACE, "image", options, fields, values)
    return (yield from c._route(VERIFY, values, timeout, (image, color)))


OPERATIONS = [
    *DETECTIONS, create_collection, collections, iter_collections, collection, delete_collection,
    enroll, faces, iter_faces, delete_subject, search, verify,
]  # fmt: skip
