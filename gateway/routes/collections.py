"""Face collections as REST resources: collections, their faces and subjects,
search by an enrolled face, and verification.

Each route is one unary call to the face service over the gateway's face
channel (its token, TLS and round robin), for the caller's tenant (the
`x-percept-tenant` metadata, from the API key); the service's status maps to
HTTP through gateway/errors.py. Uploads (enroll, verify) are checked here
first, like task uploads, and their options parse into the proto request, so
ranges and defaults come from the proto. Identification is a task kind
(`/api/identify/face/image|video`, gateway/kinds.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf.message import Message
from percept.face.v1 import face_service_pb2 as pb

from gateway import models, protoform, results
from gateway.backends import answered_by_replica
from gateway.errors import ApiError, grpc_api_error
from gateway.inputs import check_image
from gateway.kinds import FACE, FACE_ALIASES, face_cost_guard
from gateway.models import ErrorBody, ascii_int
from gateway.routes.openapi import multipart_body
from gateway.upload import read_upload
from percept_runtime import fields, ids
from percept_runtime.errors import InvalidInput

CollectionId = Path(description=f"The collection's id ({ids.COLLECTION_ID_RULE}).")

_ERRORS = {
    400: "Malformed request",
    401: "Missing or invalid API key",
    404: "Unknown collection (or face, or subject)",
    409: "A collection with this id exists already",
    413: "Upload over the size limit",
    415: "Wrong content type",
    422: "Invalid field, or an image without a usable face (the message says why)",
    429: "Rate limit reached (see Retry-After)",
    500: "Unexpected failure (details in the server log)",
    503: "No face replica can reach the collections' store now (see Retry-After)",
    504: "The face service did not answer in time",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _ERRORS[s]} for s in statuses}


# Every route may answer these; each adds its own (404 for a collection's routes).
router = APIRouter(tags=["collections"], responses=_errors(401, 422, 429, 500, 503, 504))


def _params(message_class, skip: tuple[str, ...], drop: tuple[str, ...] = ()):
    params = protoform.params_of(message_class.DESCRIPTOR, skip=skip)
    return {name: p for name, p in params.items() if name not in drop}


async def _call(request: Request, message: Message):
    """The face service's RPC named by the request (DeleteFacesRequest: DeleteFaces)."""
    method = message.DESCRIPTOR.name.removesuffix("Request")
    gw = request.app.state.gateway
    tenant = gw.auth.principal(request).tenant
    try:
        return await gw.backends.call(FACE, method, message, tenant=tenant)
    except grpc.aio.AioRpcError as exc:
        raise grpc_api_error(
            exc.code(), exc.details(), from_service=answered_by_replica(exc)
        ) from None


@dataclass(frozen=True)
class _Form:
    """An upload route's multipart form, said once for its OpenAPI and its
    parsing: the image in `file` (`what` it is), the proto request's options
    (`params`, also under their `aliases`) as form fields or query parameters,
    and those `required`."""

    params: dict[str, protoform.Param]
    aliases: dict[str, str]
    required: tuple[str, ...]
    what: str

    def openapi(self) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "file": {"type": "string", "format": "binary", "description": self.what}
        }
        for name, param in self.params.items():
            properties[name] = protoform.openapi_schema(param)
        for alias, target in self.aliases.items():
            if target in self.params:
                properties[alias] = {
                    **protoform.openapi_schema(self.params[target]),
                    "description": f"Same as {target}.",
                }
        return {"requestBody": multipart_body(properties, ["file", *self.required])}

    async def parse(self, request: Request, message: Message) -> Message:
        """The upload into the proto request, checked as a task's upload is."""
        settings = request.app.state.gateway.settings
        upload = await read_upload(request, "image", settings.max_image_bytes)
        size = check_image(upload.data, upload.content_type, settings.max_image_pixels)
        raw = protoform.options_of(request.query_params.multi_items(), upload.fields)
        message.image.content = upload.data
        protoform.parse(message, self.params, raw, self.aliases)
        for name in self.required:
            if not raw.get(name, "").strip():
                doc = self.params[name].doc
                raise ApiError(422, "invalid_option", f"{name} is required: {doc}", fields=[name])
        try:
            fields.check(message)
        except InvalidInput as exc:
            raise ApiError(422, "invalid_option", exc.message) from None
        face_cost_guard(size, message.options, settings)  # over_limit, as on the detect routes
        return message


# Enroll: subject, external_id, max_faces and the detection options (what the
# service ignores for enrollment, return_landmarks/encodings, is left out).
_ENROLL = _Form(
    _params(
        pb.EnrollFacesRequest, ("image", "collection_id"), ("return_landmarks", "return_encodings")
    ),
    {},
    ("subject",),
    "A photo of the subject.",
)
_VERIFY = _Form(
    _params(pb.VerifyFaceRequest, ("image", "collection_id")),
    FACE_ALIASES,
    ("subject",),
    "The face to verify.",
)


def _collection_url(request: Request, collection_id: str) -> str:
    return f"{request.base_url}api/collections/{collection_id}"


@dataclass
class _Paging:
    """A listing's paging, as query parameters and as its proto request takes them."""

    page_size: Annotated[ascii_int(ge=1, le=1000) | None, Query(description="Default 100.")] = None
    page_token: Annotated[
        str | None, Query(description="next_page_token of the previous page.")
    ] = None

    def request(self) -> dict[str, Any]:
        return {"page_size": self.page_size or 0, "page_token": self.page_token or ""}


Paging = Annotated[_Paging, Depends()]


def _page(name: str, items: list[dict[str, Any]], next_page_token: str) -> JSONResponse:
    """One page of a listing: its items and the next page's token (null on the last)."""
    return JSONResponse({name: items, "next_page_token": next_page_token or None})


# --- collections -------------------------------------------------------------------------


@router.post(
    "/api/collections",
    summary="Create a face collection",
    status_code=201,
    response_model=models.Collection,
    responses=_errors(400, 409),
)
async def create_collection(body: models.NewCollection, request: Request) -> JSONResponse:
    response = await _call(
        request,
        pb.CreateCollectionRequest(collection_id=body.collection_id, description=body.description),
    )
    url = _collection_url(request, body.collection_id)
    return JSONResponse(
        results.collection(response.collection), status_code=201, headers={"Location": url}
    )


@router.get(
    "/api/collections",
    summary="List your face collections, by id",
    response_model=models.CollectionPage,
)
async def list_collections(request: Request, paging: Paging) -> JSONResponse:
    response = await _call(request, pb.ListCollectionsRequest(**paging.request()))
    collections = [results.collection(c) for c in response.collections]
    return _page("collections", collections, response.next_page_token)


@router.get(
    "/api/collections/{collection_id}",
    summary="A face collection, with its face and subject counts",
    response_model=models.Collection,
    responses=_errors(404),
)
async def get_collection(request: Request, collection_id: str = CollectionId) -> JSONResponse:
    response = await _call(request, pb.DescribeCollectionRequest(collection_id=collection_id))
    return JSONResponse(results.collection(response.collection))


@router.delete(
    "/api/collections/{collection_id}",
    summary="Delete a face collection and every face in it, everywhere",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted."}, **_errors(404)},
)
async def delete_collection(request: Request, collection_id: str = CollectionId) -> Response:
    await _call(request, pb.DeleteCollectionRequest(collection_id=collection_id))
    return Response(status_code=204)


# --- faces ------------------------------------------------------------------------------


@router.post(
    "/api/collections/{collection_id}/faces",
    summary="Enroll the face(s) of an image under a subject",
    description="By default the image's largest face only (`max_faces` for more). An image "
    "without a face, or whose largest face is under the service's minimum size, is 422 "
    "saying so.",
    status_code=201,
    response_model=models.Enrollment,
    responses=_errors(400, 404, 413, 415),
    openapi_extra=_ENROLL.openapi(),
)
async def enroll(request: Request, collection_id: str = CollectionId) -> JSONResponse:
    message = await _ENROLL.parse(request, pb.EnrollFacesRequest(collection_id=collection_id))
    problem = ids.subject_problem(message.subject)
    if problem is not None:  # the face service says the same; no detection paid for
        raise ApiError(422, "invalid_option", problem, fields=["subject"])
    response = await _call(request, message)
    return JSONResponse(
        {
            "faces": [results.enrolled_face(f) for f in response.faces],
            "faces_found": response.faces_found,
            "image_width": response.image_width,
            "image_height": response.image_height,
        },
        status_code=201,
    )


@router.get(
    "/api/collections/{collection_id}/faces",
    summary="List a collection's enrolled faces",
    response_model=models.FacePage,
    responses=_errors(404),
)
async def list_faces(
    request: Request,
    paging: Paging,
    collection_id: str = CollectionId,
    subject: str | None = Query(None, description="Only this subject's faces."),
) -> JSONResponse:
    response = await _call(
        request,
        pb.ListFacesRequest(collection_id=collection_id, subject=subject or "", **paging.request()),
    )
    faces = [results.enrolled_face(f) for f in response.faces]
    return _page("faces", faces, response.next_page_token)


@router.delete(
    "/api/collections/{collection_id}/faces/{face_id}",
    summary="Delete an enrolled face, everywhere",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted."}, **_errors(404)},
)
async def delete_face(
    request: Request,
    collection_id: str = CollectionId,
    face_id: str = Path(description="The face's id (a UUID)."),
) -> Response:
    response = await _call(
        request,
        pb.DeleteFacesRequest(collection_id=collection_id, face_ids=[face_id]),
    )
    if face_id.lower() not in [f.lower() for f in response.deleted_face_ids]:
        raise ApiError(404, "not_found", f"face {face_id} is not in collection {collection_id!r}")
    return Response(status_code=204)


@router.delete(
    "/api/collections/{collection_id}/subjects/{subject:path}",
    summary="Delete every face of a subject, everywhere",
    response_model=models.SubjectDeleted,
    responses=_errors(404),
)
async def delete_subject(
    request: Request,
    collection_id: str = CollectionId,
    subject: str = Path(description="The subject (URL-encoded)."),
) -> JSONResponse:
    response = await _call(
        request,
        pb.DeleteSubjectRequest(collection_id=collection_id, subject=subject),
    )
    return JSONResponse({"subject": subject, "deleted_faces": response.deleted_faces})


# --- search and verify -------------------------------------------------------------------


@router.post(
    "/api/collections/{collection_id}/search",
    summary="The enrolled faces closest to an enrolled face",
    response_model=models.SearchResult,
    responses=_errors(400, 404),
)
async def search(
    body: models.SearchRequest, request: Request, collection_id: str = CollectionId
) -> JSONResponse:
    message = pb.SearchFacesRequest(
        collection_id=collection_id, face_id=body.face_id, top_k=body.top_k or 0
    )
    if body.threshold is not None:
        message.threshold = body.threshold
    response = await _call(request, message)
    return JSONResponse(
        {
            "face_id": body.face_id,
            "matches": [results.match(m) for m in response.matches],
            "threshold": round(response.threshold, 6),
        }
    )


@router.post(
    "/api/collections/{collection_id}/verify",
    summary="Is the image's largest face this subject?",
    response_model=models.Verification,
    responses=_errors(400, 404, 413, 415),
    openapi_extra=_VERIFY.openapi(),
)
async def verify(request: Request, collection_id: str = CollectionId) -> JSONResponse:
    message = await _VERIFY.parse(request, pb.VerifyFaceRequest(collection_id=collection_id))
    response = await _call(request, message)
    return JSONResponse(
        {
            "subject": message.subject,
            "match": response.match,
            "distance": round(response.distance, 6),
            "face_id": response.face_id,
            "threshold": round(response.threshold, 6),
            "face": results.face(response.face),
            "image_width": response.image_width,
            "image_height": response.image_height,
        }
    )
