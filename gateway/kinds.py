"""Task kinds, each declared once, here.

A TaskKind says everything the gateway needs about one kind of work: its REST
route, the gRPC method it becomes (so its request message - and with it every
option, range and default - comes from the proto), how results come back, and
any check that needs the model. Routes, dispatchers, OpenAPI, metrics and the
console all read these declarations; adding a kind is one `TaskKind(...)` in
KINDS (plus its tests).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import Message
from percept.face.v1 import face_service_pb2 as face_pb
from percept.object.v1 import object_service_pb2 as object_pb
from pydantic import BaseModel

from gateway import models, protoform, results
from gateway.errors import ApiError
from gateway.jobs import DEFAULT_TENANT
from percept_runtime import fields
from percept_runtime.cost import check_face_cost
from percept_runtime.errors import InvalidInput

Media = Literal["image", "video"]
_INPUT_TYPES = {"percept.common.v1.Image": "image", "percept.common.v1.VideoSource": "video"}


@dataclass(frozen=True)
class Backend:
    """A gRPC service the gateway feeds: its replicas are `GATEWAY_{NAME}_TARGETS`,
    dispatchers run `GATEWAY_{NAME}_CONCURRENCY` of its tasks at once."""

    name: str
    service: ServiceDescriptor

    @property
    def service_name(self) -> str:
        return self.service.full_name


class ModelInfoSource(Protocol):
    async def model_info(self, backend: Backend) -> Message | None: ...


class CollectionSource(Protocol):
    async def collection_exists(self, tenant: str, collection_id: str) -> bool | None: ...


@dataclass(frozen=True)
class CheckContext:
    """What a kind's checks may consult: the backends' model info, the
    gateway's settings, the upload's size in pixels (width, height), the
    caller's tenant and whether a face collection exists."""

    models: ModelInfoSource
    settings: Any
    size: tuple[int, int] | None = None
    tenant: str = DEFAULT_TENANT
    collections: CollectionSource | None = None


Check = Callable[[Message, CheckContext], Awaitable[None]]


@dataclass(frozen=True)
class TaskKind:
    """One kind of task, declared once."""

    kind: str  # what the task does, as clients see it ("face_detection")
    media: Media  # what it takes: one image, or a whole video
    backend: Backend
    method: str  # the gRPC method of backend.service
    path: str  # the REST route
    summary: str
    result: Callable[[Message], dict[str, Any]]  # a response (a video: one frame's) -> JSON
    result_model: type[BaseModel]  # the task's `result`, for OpenAPI
    aliases: Mapping[str, str | protoform.Setter] = field(default_factory=dict)
    preset: Mapping[str, str] = field(default_factory=dict)  # options this kind always sets
    checks: tuple[Check, ...] = ()  # what needs the model or the upload's size
    required: tuple[str, ...] = ()  # options a caller must give
    exclude: tuple[str, ...] = ()  # request fields this kind does not take over REST
    private: bool = False  # its uploads are personal data: never kept for the console
    errors: tuple[int, ...] = ()  # HTTP statuses its checks answer beyond the common ones

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.media}"

    @functools.cached_property
    def rpc(self):
        return self.backend.service.methods_by_name[self.method]

    @property
    def rpc_path(self) -> str:
        return f"/{self.backend.service_name}/{self.method}"

    @property
    def streaming(self) -> bool:
        return self.rpc.server_streaming

    @functools.cached_property
    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.rpc.input_type)

    @functools.cached_property
    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.rpc.output_type)

    @functools.cached_property
    def input_field(self) -> str:
        """The request field that carries the upload (an Image or a VideoSource)."""
        return _input_field(self.rpc.input_type, self.media)

    @functools.cached_property
    def params(self) -> dict[str, protoform.Param]:
        params = protoform.params_of(self.rpc.input_type, skip=(self.input_field,))
        return {name: p for name, p in params.items() if name not in self.exclude}

    def build(self, data: bytes, raw: Mapping[str, str]) -> Message:
        """The gRPC request for an upload and its raw REST options, checked
        against the proto's rules (ApiError 422 naming the option otherwise)."""
        request = self.request_class()
        getattr(request, self.input_field).content = data
        protoform.parse(request, self.params, {**self.preset, **raw}, self.aliases)
        for name in self.required:
            param = self.params[name]
            if not fields.is_set(param.container(request), param.field):
                raise ApiError(
                    422,
                    "invalid_option",
                    f"{name} is required on {self.path}: give it as a form field or query "
                    "parameter",
                    fields=[name],
                )
        try:
            fields.check(request)
        except InvalidInput as exc:
            raise ApiError(422, "invalid_option", exc.message) from None
        return request

    def options(self, request: Message) -> dict[str, Any]:
        """What the caller set, in REST spelling (the task's `options`)."""
        return protoform.to_rest(request, self.params)


def _input_field(descriptor: Descriptor, media: str) -> str:
    for f in descriptor.fields:
        if f.message_type is not None and _INPUT_TYPES.get(f.message_type.full_name) == media:
            return f.name
    raise ValueError(f"{descriptor.full_name} has no {media} field")


# --- the backends ---------------------------------------------------------------------

FACE = Backend("face", face_pb.DESCRIPTOR.services_by_name["FaceService"])
OBJECT = Backend("object", object_pb.DESCRIPTOR.services_by_name["ObjectService"])
BACKENDS = (FACE, OBJECT)


# --- object classes: names/ids mixed in one parameter, checked against the model -------


def _classes(request: Message, raw: str) -> None:
    """`classes=person,2,car`: names and ids in one comma-separated list."""
    options = request.options
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if item.isascii() and item.isdigit():  # an id; '²' or '١' is a (wrong) name
            if int(item) >= 2**32:  # uint32 in the proto; no model has that many
                raise ApiError(
                    422,
                    "invalid_option",
                    f"classes: class id {item} is out of range",
                    fields=["classes"],
                )
            options.class_ids.append(int(item))
        else:
            options.class_names.append(item)


async def _check_classes(request: Message, ctx: CheckContext) -> None:
    options = request.options
    if not options.class_names and not options.class_ids:
        return
    info = await ctx.models.model_info(OBJECT)
    if info is None:
        return  # unreachable now: the service checks them itself
    known = list(info.class_names)
    unknown = [name for name in options.class_names if name not in known]
    if unknown:
        raise ApiError(
            422,
            "invalid_option",
            f"classes: unknown class names {unknown}; the model knows {known}",
            fields=["classes"],
        )
    bad_ids = [i for i in options.class_ids if i >= len(known)]
    if bad_ids:
        raise ApiError(
            422,
            "invalid_option",
            f"classes: class ids {bad_ids} are out of range; this model has ids 0..{len(known) - 1}",
            fields=["classes"],
        )


_DETECTORS = {face_pb.DETECTOR_CNN: "cnn"}


def face_cost_guard(size: tuple[int, int], options: Message, settings) -> None:
    """The face service's cost guard, at the gateway: ApiError 422 `over_limit`."""
    try:
        check_face_cost(
            *size,
            detector=_DETECTORS.get(options.detector, "hog"),
            upsample=fields.value(options, "upsample"),
            max_side=options.detection_max_side,
            max_pixels=settings.face_max_detection_pixels,
            max_cnn_pixels=settings.face_max_cnn_pixels,
        )
    except InvalidInput as exc:
        raise ApiError(422, "over_limit", exc.message, fields=["upsample"]) from None


async def _check_face_cost(request: Message, ctx: CheckContext) -> None:
    """Refused before queueing, as the service would refuse it."""
    if ctx.size is not None:
        face_cost_guard(ctx.size, request.options, ctx.settings)


async def _check_collection(request: Message, ctx: CheckContext) -> None:
    """An unknown collection is 404 at submit, before anything is queued."""
    if ctx.collections is None:
        return
    exists = await ctx.collections.collection_exists(ctx.tenant, request.collection_id)
    if exists is False:
        raise ApiError(
            404,
            "not_found",
            f"collection {request.collection_id!r} does not exist",
            fields=["collection_id"],
        )


FACE_ALIASES = {"landmarks": "return_landmarks", "encodings": "return_encodings"}
# Identification fields of the face video request: only the identification kind takes them.
_IDENTIFY_FIELDS = ("collection_id", "top_k", "threshold")
_OBJECT_ALIASES = {"classes": _classes}


def backends_of(kinds) -> list[Backend]:
    """The backends some kinds use, each once, in order."""
    return list({k.backend.name: k.backend for k in kinds}.values())


KINDS: tuple[TaskKind, ...] = (
    TaskKind(
        "face_detection",
        "image",
        FACE,
        "DetectFaces",
        "/api/detect/face/image",
        "Detect faces in an uploaded image",
        results.image_result,
        models.FaceImageResult,
        aliases=FACE_ALIASES,
        checks=(_check_face_cost,),
    ),
    TaskKind(
        "face_detection",
        "video",
        FACE,
        "DetectFacesInVideo",
        "/api/detect/face/video",
        "Detect faces in every sampled frame of an uploaded video",
        results.frame_result,
        models.FaceVideoResult,
        aliases=FACE_ALIASES,
        checks=(_check_face_cost,),
        exclude=_IDENTIFY_FIELDS,
    ),
    TaskKind(
        "face_identification",
        "image",
        FACE,
        "IdentifyFaces",
        "/api/identify/face/image",
        "Identify every face of an uploaded image against a face collection",
        results.identification_result,
        models.FaceIdentificationResult,
        aliases=FACE_ALIASES,
        checks=(_check_face_cost, _check_collection),
        required=("collection_id",),
        private=True,
        errors=(404,),  # an unknown collection
    ),
    TaskKind(
        "face_identification",
        "video",
        FACE,
        "DetectFacesInVideo",
        "/api/identify/face/video",
        "Identify every face of every sampled frame of an uploaded video against a face collection",
        results.identification_frame,
        models.FaceIdentificationVideoResult,
        aliases=FACE_ALIASES,
        checks=(_check_face_cost, _check_collection),
        required=("collection_id",),
        private=True,
        errors=(404,),  # an unknown collection
    ),
    TaskKind(
        "object_detection",
        "image",
        OBJECT,
        "DetectObjects",
        "/api/detect/object/image",
        "Detect objects in an uploaded image",
        results.image_result,
        models.ObjectImageResult,
        aliases=_OBJECT_ALIASES,
        checks=(_check_classes,),
    ),
    TaskKind(
        "object_detection",
        "video",
        OBJECT,
        "DetectObjectsInVideo",
        "/api/detect/object/video",
        "Detect objects in every sampled frame of an uploaded video",
        results.frame_result,
        models.ObjectVideoResult,
        aliases=_OBJECT_ALIASES,
        checks=(_check_classes,),
    ),
)
