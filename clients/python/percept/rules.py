"""Option rules of each task kind, read from the proto descriptors.

The gateway and the services check every option against the
`(percept.common.v1.rules)` option of its proto field (range, default,
"0 means unset"); this module reads the same descriptors, so the SDK and the
CLI accept exactly what the server accepts without restating a range by hand.
Options carry their REST names: a scalar field of the kind's request message
or of a nested options message, under the few aliases the gateway also takes
(`landmarks` for `return_landmarks`, `classes` for class names and ids).

Kinds the gateway serves beyond the built-in ones describe their options as
JSON schemas in `GET /api/kinds`; `rules_from_schema` reads those into the
same `Rule`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

from percept.common.v1 import field_rules_pb2
from percept.face.v1 import face_service_pb2  # noqa: F401 - registers the descriptors
from percept.object.v1 import object_service_pb2  # noqa: F401 - registers the descriptors

_INPUTS = ("percept.common.v1.Image", "percept.common.v1.VideoSource")
# A scalar field's Python type by its protobuf C++ type (strings, bytes and
# enums, by their names, are str). bool is no integer here.
_PYTHON_TYPES = {
    FieldDescriptor.CPPTYPE_INT32: int,
    FieldDescriptor.CPPTYPE_INT64: int,
    FieldDescriptor.CPPTYPE_UINT32: int,
    FieldDescriptor.CPPTYPE_UINT64: int,
    FieldDescriptor.CPPTYPE_FLOAT: float,
    FieldDescriptor.CPPTYPE_DOUBLE: float,
    FieldDescriptor.CPPTYPE_BOOL: bool,
}
_SCHEMA_TYPES = {"integer": int, "number": float, "boolean": bool, "string": str}
# The SDK's and the gateway's names for some request fields.
_FACE_ALIASES = {"return_landmarks": "landmarks", "return_encodings": "encodings"}
_OBJECT_ALIASES = {"class_names": "classes", "class_ids": "classes"}
_IDENTIFY_FIELDS = ("collection_id", "top_k", "threshold")


@dataclass(frozen=True, slots=True)
class KindSpec:
    """A built-in task kind: its REST route and the gRPC method behind it."""

    kind: str
    media: str
    rpc: str  # "package.Service/Method"
    path: str
    aliases: Mapping[str, str]
    exclude: tuple[str, ...] = ()  # request fields this kind does not take

    @property
    def request(self) -> Descriptor:
        return method(self.rpc).input_type


@functools.cache
def method(rpc: str) -> MethodDescriptor:
    """A method's descriptor from its name, "package.Service/Method" (a gRPC
    path's leading slash allowed)."""
    service, name = rpc.strip("/").split("/")
    return descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]


_FACE = "percept.face.v1.FaceService"
_OBJECT = "percept.object.v1.ObjectService"
BUILTIN: tuple[KindSpec, ...] = (
    KindSpec("face_detection", "image", f"{_FACE}/DetectFaces", "/api/detect/face/image",
             _FACE_ALIASES),
    KindSpec("face_detection", "video", f"{_FACE}/DetectFacesInVideo", "/api/detect/face/video",
             _FACE_ALIASES, _IDENTIFY_FIELDS),
    KindSpec("face_identification", "image", f"{_FACE}/IdentifyFaces",
             "/api/identify/face/image", _FACE_ALIASES),
    KindSpec("face_identification", "video", f"{_FACE}/DetectFacesInVideo",
             "/api/identify/face/video", _FACE_ALIASES),
    KindSpec("object_detection", "image", f"{_OBJECT}/DetectObjects", "/api/detect/object/image",
             _OBJECT_ALIASES),
    KindSpec("object_detection", "video", f"{_OBJECT}/DetectObjectsInVideo",
             "/api/detect/object/video", _OBJECT_ALIASES),
)  # fmt: skip
# Short names the SDK and the CLI take for the built-in kinds.
SHORT_NAMES = {"face": "face_detection", "object": "object_detection",
               "identify": "face_identification"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rule:
    """What one option accepts. `type` is int, float, bool or str; a number
    must lie between `minimum` and `maximum` (either bound open when its
    `exclusive_*` is true); an enum's values are `choices`. `default` is what
    the server uses when the option is not sent. With `zero_means_unset`, 0
    is accepted and means "the default". A `repeated` option takes a list
    (comma-separated on the command line)."""

    type: type
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[str, ...] | None = None
    default: Any = None
    description: str = ""
    zero_means_unset: bool = False
    repeated: bool = False

    def describe(self) -> str:
        """'[0, 3]', '(0, 1]', '>= 1', 'one of hog, cnn'... for messages."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            left, right = "(["[not self.exclusive_minimum], ")]"[not self.exclusive_maximum]
            return f"{left}{_num(low)}, {_num(high)}{right}"
        if low is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {_num(low)}"
        if high is not None:
            return f"{'<' if self.exclusive_maximum else '<='} {_num(high)}"
        return "any value"

    def accepts(self, value: Any) -> bool:
        if self.choices is not None:
            return str(value).lower() in self.choices
        if self.type not in (int, float) or isinstance(value, bool):
            return True
        number = float(value)
        if not math.isfinite(number):
            return False
        if self.zero_means_unset and number == 0:
            return True
        if self.minimum is not None:
            below = number <= self.minimum if self.exclusive_minimum else number < self.minimum
            if below:
                return False
        if self.maximum is not None:
            above = number >= self.maximum if self.exclusive_maximum else number > self.maximum
            if above:
                return False
        return True

    def check(self, name: str, value: Any) -> None:
        """ValueError naming the option when the server would refuse `value`."""
        values = value if self.repeated and isinstance(value, list | tuple) else (value,)
        for item in values:
            if not self.accepts(item):
                shown = _num(item) if isinstance(item, int | float) else repr(item)
                raise ValueError(f"{name} is {shown}: it must be {self._must()}")

    def _must(self) -> str:
        text = self.describe()
        text = text if text.startswith(("one of", ">", "<", "any")) else f"in {text}"
        return text + (" (or 0 for the default)" if self.zero_means_unset else "")


def _num(value: float) -> str:
    """1.0 -> '1', 0.25 -> '0.25' (float32 noise rounded away)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def spec(kind: str, media: str) -> KindSpec:
    """The built-in kind `kind` ('face', 'face_detection'...) on `media`;
    KeyError when it is not built in."""
    name = SHORT_NAMES.get(kind, kind)
    for candidate in BUILTIN:
        if candidate.kind == name and candidate.media == media:
            return candidate
    raise KeyError(f"{kind}:{media}")


def option_rules(kind: str, media: str) -> dict[str, Rule]:
    """The options of a built-in kind on one media ('image' or 'video'), by
    their REST names, from the proto descriptors."""
    return dict(_option_rules(SHORT_NAMES.get(kind, kind), media))


@functools.cache
def _option_rules(kind: str, media: str) -> tuple[tuple[str, Rule], ...]:
    kind_spec = spec(kind, media)
    out: dict[str, Rule] = {}
    for field in _scalars(kind_spec.request):
        if field.name in kind_spec.exclude:
            continue
        name = kind_spec.aliases.get(field.name, field.name)
        if name in out:  # several fields under one alias (class names and ids)
            out[name] = Rule(str, repeated=True, description=out[name].description)
        else:
            out[name] = field_rule(field)
    return tuple(out.items())


def _scalars(descriptor: Descriptor) -> list[FieldDescriptor]:
    """The scalar fields of a request, and of its nested (non-repeated)
    messages, as the gateway flattens them into REST parameters; the upload
    itself left out."""
    out: list[FieldDescriptor] = []
    for field in descriptor.fields:
        if field.message_type is None:
            out.append(field)
        elif not field.is_repeated and field.message_type.full_name not in _INPUTS:
            out.extend(sub for sub in field.message_type.fields if sub.message_type is None)
    return out


def field_rule(field: FieldDescriptor) -> Rule:
    """One proto field's Rule: its type, enum values and `rules` option."""
    choices = enum_choices(field) if field.enum_type is not None else None
    type_ = str if choices is not None else _PYTHON_TYPES.get(field.cpp_type, str)
    kw: dict[str, Any] = {}
    options = field.GetOptions()
    if options.HasExtension(field_rules_pb2.rules):
        r = options.Extensions[field_rules_pb2.rules]
        cast = int if type_ is int else float
        if r.HasField("min"):
            kw["minimum"] = cast(r.min)
            kw["exclusive_minimum"] = r.min_exclusive
        if r.HasField("max"):
            kw["maximum"] = cast(r.max)
        if r.HasField("default"):
            kw["default"] = cast(r.default)
        kw["zero_means_unset"] = r.zero_means_unset
    return Rule(
        type_,
        choices=choices,
        description=_comments().get(field.full_name, ""),
        repeated=field.is_repeated,
        **kw,
    )


@functools.cache
def enum_choices(field: FieldDescriptor) -> tuple[str, ...]:
    """REST spellings of an enum: DETECTOR_CNN -> 'cnn' (UNSPECIFIED left out)."""
    name = field.enum_type.name
    prefix = "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()
    return tuple(
        v.name.removeprefix(prefix + "_").lower()
        for v in field.enum_type.values
        if not v.name.endswith("_UNSPECIFIED")
    )


def rules_from_schema(options: Mapping[str, Mapping[str, Any]]) -> dict[str, Rule]:
    """Rules from the JSON schemas of a kind's options in `GET /api/kinds`."""
    out: dict[str, Rule] = {}
    for name, schema in options.items():
        type_ = _SCHEMA_TYPES.get(schema.get("type", "string"), str)
        low = schema.get("exclusiveMinimum", schema.get("minimum"))
        high = schema.get("exclusiveMaximum", schema.get("maximum"))
        choices = schema.get("enum")
        out[name] = Rule(
            type_,
            minimum=low,
            maximum=high,
            exclusive_minimum="exclusiveMinimum" in schema,
            exclusive_maximum="exclusiveMaximum" in schema,
            choices=tuple(choices) if choices else None,
            default=schema.get("default"),
            description=schema.get("description", ""),
            zero_means_unset=bool(schema.get("x-zero-means-unset")),
        )
    return out


# --- field comments, from the descriptor set `make proto` writes -----------------------

_DESCRIPTOR_SETS = (
    Path(__file__).resolve().parent / "descriptors.binpb",  # a wheel that carries it
    Path(__file__).resolve().parents[3] / "gen" / "descriptors.binpb",  # the checkout
)


@functools.cache
def _comments() -> dict[str, str]:
    """Full field name -> its leading comment; empty where no descriptor set
    with source info is at hand (the generated modules carry no comments)."""
    for path in _DESCRIPTOR_SETS:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        fds = descriptor_pb2.FileDescriptorSet.FromString(data)
        out: dict[str, str] = {}
        for file in fds.file:
            where = {tuple(loc.path): loc for loc in file.source_code_info.location}
            for i, msg in enumerate(file.message_type):
                for j, field in enumerate(msg.field):
                    loc = where.get((4, i, 2, j))
                    if loc is not None and loc.leading_comments:
                        out[f"{file.package}.{msg.name}.{field.name}"] = " ".join(
                            loc.leading_comments.split()
                        )
        return out
    return {}
