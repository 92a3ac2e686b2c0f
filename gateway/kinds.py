"""The built-in backends (face, object) and their task kinds, declared as any
backend is (gateway/declare.py): one `backend(...)`, one `kind(...)` per kind.
"""

from __future__ import annotations

from google.protobuf.message import Message
from percept.face.v1 import face_service_pb2 as face_pb
from percept.object.v1 import object_service_pb2 as object_pb

from gateway import models, results
from gateway.declare import CheckContext, TaskKind, backend, kind
from gateway.errors import ApiError
from percept_runtime import fields
from percept_runtime.cost import check_face_cost
from percept_runtime.errors import InvalidInput

__all__ = ["FACE", "KINDS", "OBJECT"]

# --- the backends ---------------------------------------------------------------------

FACE = backend(
    "face", face_pb.DESCRIPTOR.services_by_name["FaceService"], targets="127.0.0.1:50051"
)
OBJECT = backend(
    "object", object_pb.DESCRIPTOR.services_by_name["ObjectService"], targets="127.0.0.1:50052"
)


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
# What both identification kinds declare: a collection required, checked at submit.
_IDENTIFYING = {
    "aliases": FACE_ALIASES,
    "checks": (_check_face_cost, _check_collection),
    "required": ("collection_id",),
    "private": True,  # faces are personal data
    "errors": (404,),  # an unknown collection
}


KINDS: tuple[TaskKind, ...] = (
    kind(
        "face_detection",
        "image",
        FACE,
        "DetectFaces",
        "/api/detect/face/image",
        "Detect faces in an uploaded image",
        results.face_image,
        models.FaceImageResult,
        aliases=FACE_ALIASES,
        checks=(_check_face_cost,),
    ),
    kind(
        "face_detection",
        "video",
        FACE,
        "DetectFacesInVideo",
        "/api/detect/face/video",
        "Detect faces in every sampled frame of an uploaded video",
        results.face_frame,
        models.FaceVideoResult,
        aliases=FACE_ALIASES,
        checks=(_check_face_cost,),
        exclude=_IDENTIFY_FIELDS,
    ),
    kind(
        "face_identification",
        "image",
        FACE,
        "IdentifyFaces",
        "/api/identify/face/image",
        "Identify every face of an uploaded image against a face collection",
        results.identification_result,
        models.FaceIdentificationResult,
        **_IDENTIFYING,
    ),
    kind(
        "face_identification",
        "video",
        FACE,
        "DetectFacesInVideo",
        "/api/identify/face/video",
        "Identify every face of every sampled frame of an uploaded video against a face collection",
        results.identification_frame,
        models.FaceIdentificationVideoResult,
        **_IDENTIFYING,
    ),
    kind(
        "object_detection",
        "image",
        OBJECT,
        "DetectObjects",
        "/api/detect/object/image",
        "Detect objects in an uploaded image",
        results.object_image,
        models.ObjectImageResult,
        aliases=_OBJECT_ALIASES,
        checks=(_check_classes,),
    ),
    kind(
        "object_detection",
        "video",
        OBJECT,
        "DetectObjectsInVideo",
        "/api/detect/object/video",
        "Detect objects in every sampled frame of an uploaded video",
        results.object_frame,
        models.ObjectVideoResult,
        aliases=_OBJECT_ALIASES,
        checks=(_check_classes,),
    ),
)
