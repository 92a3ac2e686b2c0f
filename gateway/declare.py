"""Backends and task kinds: how each is declared, once.

A Backend is a gRPC service the gateway feeds; a TaskKind says everything the
gateway needs about one kind of work on it: its REST route, the gRPC method it
becomes (so its request message - and with it every option, range and default -
comes from the proto), how results come back, and any check that needs the
model. Settings, dispatchers, the replica monitor, routes, OpenAPI, metrics,
/api/kinds and the console all read the declarations made here.

The built-in face and object backends are declared in gateway/kinds.py. Any
other backend is declared the same way by a module named in
GATEWAY_DECLARATIONS, imported at start (`load`): it calls `backend(...)` once
and `kind(...)` per kind, and touches no file of the gateway.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from pydantic import BaseModel

from gateway import models, protoform, results
from gateway.errors import ApiError
from gateway.jobs import DEFAULT_TENANT
from percept_runtime import fields
from percept_runtime.errors import InvalidInput

Media = Literal["image", "video"]
_INPUT_TYPES = {"percept.common.v1.Image": "image", "percept.common.v1.VideoSource": "video"}


@dataclass(frozen=True)
class Backend:
    """A gRPC service the gateway feeds: its replicas are `GATEWAY_{NAME}_TARGETS`
    (default `targets`), dispatchers run `GATEWAY_{NAME}_CONCURRENCY` (default
    `concurrency`) of its tasks at once."""

    name: str
    service: ServiceDescriptor
    targets: str
    concurrency: int = 4

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


class BackendMethod:
    """One gRPC method of a declared backend (`backend`, `method`), its
    descriptor and message classes looked up once: what a task kind and a live
    source's detector call."""

    backend: Backend
    method: str

    @functools.cached_property
    def rpc(self) -> MethodDescriptor:
        return self.backend.service.methods_by_name[self.method]

    @property
    def rpc_path(self) -> str:
        return f"/{self.backend.service_name}/{self.method}"

    @functools.cached_property
    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.rpc.input_type)

    @functools.cached_property
    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.rpc.output_type)


@dataclass(frozen=True)
class TaskKind(BackendMethod):
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

    @property
    def streaming(self) -> bool:
        return self.rpc.server_streaming

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


def backends_of(kinds) -> list[Backend]:
    """The backends some kinds use, each once, in order."""
    return list({k.backend.name: k.backend for k in kinds}.values())


# --- the registry ---------------------------------------------------------------------

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_ROUTE = re.compile(r"(/[A-Za-z0-9._~-]+)+")  # a plain path: no template, no query


class Registry:
    """Declared backends and kinds, in declaration order. The gateway's is
    DECLARED (behind `backend`, `kind`, `backends`, `kinds`); a test may
    declare into one of its own."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self._kinds: dict[str, TaskKind] = {}

    def backend(
        self,
        name: str,
        service: ServiceDescriptor,
        *,
        targets: str,
        concurrency: int = 4,
        descriptor_set: Path | None = None,
    ) -> Backend:
        """Declare a backend: `name` (lower case) names its settings
        GATEWAY_{NAME}_TARGETS (default `targets`) and GATEWAY_{NAME}_CONCURRENCY.
        `descriptor_set`: its protos compiled with --include_source_info, so the
        options' comments document its kinds (the built-in ones' are in gen/)."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"backend name {name!r}: lower-case letters, digits and _ only")
        declared = Backend(name, service, targets, concurrency)
        if self._backends.setdefault(name, declared) != declared:
            raise ValueError(f"backend {name!r} is declared twice, differently")
        if descriptor_set is not None:
            protoform.add_descriptor_set(descriptor_set)
        return declared

    def kind(
        self,
        kind: str,
        media: Media,
        backend: Backend,
        method: str,
        path: str,
        summary: str,
        result: Callable[[Message], dict[str, Any]] | None = None,
        result_model: type[BaseModel] | None = None,
        **more: Any,
    ) -> TaskKind:
        """Declare a task kind on a declared backend. Without `result` its
        responses take the generic shape (results.generic: boxes, labels,
        keypoints, masks), which the console draws and the SDK reads as a
        GenericResult. `more`: any other TaskKind field (aliases, checks...)."""
        name = f"{kind}:{media}"
        if not _NAME.fullmatch(kind):
            raise ValueError(f"kind name {kind!r}: lower-case letters, digits and _ only")
        if not _ROUTE.fullmatch(path):
            raise ValueError(
                f"kind {name}: route {path!r} is not a plain path such as /api/x/image"
            )
        if self._backends.get(backend.name) != backend:
            raise ValueError(f"kind {name}: declare its backend {backend.name!r} first")
        if method not in backend.service.methods_by_name:
            raise ValueError(f"kind {name}: {backend.service_name} has no method {method!r}")
        declared = TaskKind(
            kind, media, backend, method, path, summary,
            result or results.generic(),
            result_model or models.GENERIC_RESULTS[media],
            **more,
        )  # fmt: skip
        declared.input_field  # noqa: B018 - a request without an input of that media fails now
        clash = next((k for k in self._kinds.values() if k.path == path and k.id != name), None)
        if clash is not None:
            raise ValueError(f"kind {name}: {path} is already {clash.id}'s route")
        if self._kinds.setdefault(name, declared) != declared:
            raise ValueError(f"kind {name} is declared twice, differently")
        return declared

    def backends(self) -> tuple[Backend, ...]:
        return tuple(self._backends.values())

    def kinds(self) -> tuple[TaskKind, ...]:
        return tuple(self._kinds.values())


DECLARED = Registry()
backend, kind = DECLARED.backend, DECLARED.kind
backends, kinds = DECLARED.backends, DECLARED.kinds


def load(modules: str) -> None:
    """Import the modules GATEWAY_DECLARATIONS names (comma-separated), each
    declaring its backends and kinds; the built-in ones first."""
    importlib.import_module("gateway.kinds")
    for name in filter(None, (m.strip() for m in modules.split(","))):
        importlib.import_module(name)
