"""REST parameters <-> a gRPC request message, from the message's descriptor.

The proto is the single source of truth for a task's options: every scalar
field of the request (and of its nested option messages) is a REST parameter
of the same name, typed, ranged and documented by the proto itself (the
`(percept.common.v1.rules)` option and the field's comment). A parameter left
out stays unset in the message, so the service's own default applies.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.errors import ApiError
from percept_runtime import fields as rules_

DESCRIPTOR_SET = Path(__file__).resolve().parent.parent / "gen" / "descriptors.binpb"
# Descriptor sets with source info (protoc --include_source_info): the built-in
# protos', and those a declared backend names (gateway.declare.backend).
_DESCRIPTOR_SETS = [DESCRIPTOR_SET]
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
# Numbers as written in ASCII, nothing around them: Python's int() and float()
# would also take ' 2', '1_000', '١' (Arabic-Indic one), '２' (fullwidth two).
INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
INTEGER_TEXT = "an integer in ASCII digits (0-9, no spaces)"
DECIMAL_TEXT = "a finite number in ASCII digits, such as 0.25 (0-9 and '.', no spaces)"

# A custom parameter: (request message, raw value) -> None, raising ApiError.
Setter = Callable[[Message, str], None]


@dataclass(frozen=True)
class Param:
    """One REST parameter: a scalar field of the request, maybe inside a
    nested options message."""

    name: str
    path: tuple[str, ...]
    field: FieldDescriptor

    @property
    def doc(self) -> str:
        return field_comment(self.field)

    def container(self, message: Message) -> Message:
        for part in self.path[:-1]:
            message = getattr(message, part)
        return message


def params_of(descriptor: Descriptor, skip: tuple[str, ...] = ()) -> dict[str, Param]:
    """Every scalar field of a request message, flattened one level: the
    fields of a nested message (such as `options`) are parameters too."""
    out: dict[str, Param] = {}

    def add(param: Param) -> None:
        if param.name in out:
            raise ValueError(f"{descriptor.full_name}: two fields are named {param.name!r}")
        out[param.name] = param

    for field in descriptor.fields:
        if field.name in skip:
            continue
        if field.message_type is None:
            add(Param(field.name, (field.name,), field))
        elif not field.is_repeated:
            for sub in field.message_type.fields:
                if sub.message_type is None:
                    add(Param(sub.name, (field.name, sub.name), sub))
    return out


def enum_prefix(field: FieldDescriptor) -> str:
    name = field.enum_type.name
    snake = "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()
    return snake + "_"


def enum_choices(field: FieldDescriptor) -> list[str]:
    """REST spellings of an enum: DETECTOR_CNN -> 'cnn' (UNSPECIFIED left out)."""
    prefix = enum_prefix(field)
    return [
        v.name.removeprefix(prefix).lower()
        for v in field.enum_type.values
        if v.number != 0 or not v.name.endswith("_UNSPECIFIED")
    ]


def _convert(param: Param, raw: str, shown: str) -> Any:
    """One value, exactly as written: no spaces around it, numbers in ASCII."""
    field = param.field
    text = raw
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise _bad(shown, raw, "true or false")
    if field.enum_type is not None:
        prefix = enum_prefix(field)
        wanted = text.upper() if text.isascii() else ""
        for v in field.enum_type.values:
            if v.name in (wanted, prefix + wanted) and not v.name.endswith("_UNSPECIFIED"):
                return v.number
        raise _bad(shown, raw, "one of " + ", ".join(enum_choices(field)))
    if rules_.is_integer(field):
        if not INTEGER.fullmatch(text):
            raise _bad(shown, raw, INTEGER_TEXT)
        number = int(text)
        unsigned = field.cpp_type in (
            FieldDescriptor.CPPTYPE_UINT32,
            FieldDescriptor.CPPTYPE_UINT64,
        )
        bits = (
            64
            if field.cpp_type
            in (
                FieldDescriptor.CPPTYPE_INT64,
                FieldDescriptor.CPPTYPE_UINT64,
            )
            else 32
        )
        low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        if not low <= number <= high:
            r = rules_.rules(field)
            ranged = r is not None and (r.HasField("min") or r.HasField("max"))
            limits = rules_.describe_range(r) if ranged else f"[{low}, {high}]"
            raise _bad(shown, raw, f"an integer in {limits}")
        return number
    if rules_.is_float(field):
        if not DECIMAL.fullmatch(text):
            raise _bad(shown, raw, DECIMAL_TEXT)
        number = float(text)
        if not math.isfinite(number):
            raise _bad(shown, raw, "a finite number")
        return number
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        return raw
    raise _bad(shown, raw, "a value this route cannot take over REST")


def _bad(shown: str, raw: str, accepted: str) -> ApiError:
    return ApiError(
        422,
        "invalid_option",
        f"{shown}: {raw[:64]!r} is not valid: use {accepted}",
        fields=[shown],
    )


def set_param(message: Message, param: Param, raw: str, shown: str | None = None) -> None:
    """Parse one raw REST value into the message, checking the proto's range.

    Where the proto lets 0 mean "unset" (`zero_means_unset`), 0 over REST
    leaves the field unset too, as the field's documentation says.
    """
    shown = shown or param.name
    field = param.field
    target = param.container(message)
    r = rules_.rules(field)
    if field.is_repeated:
        items = [item.strip() for item in raw.split(",") if item.strip()]
        values = [_convert(param, item, shown) for item in items]
        container = getattr(target, field.name)
        container.extend(values)
        if r is not None and r.HasField("max_items") and len(container) > r.max_items:
            raise ApiError(
                422,
                "invalid_option",
                f"{shown}: at most {r.max_items} values",
                fields=[shown],
            )
        return
    value = _convert(param, raw, shown)
    if r is not None and r.zero_means_unset and value == 0:
        return  # the service's default applies
    if r is not None and not isinstance(value, bool) and not rules_.in_range(r, float(value)):
        raise ApiError(
            422,
            "invalid_option",
            f"{shown} is {rules_.number(value)}: it must be in {rules_.describe_range(r)}",
            fields=[shown],
        )
    setattr(target, field.name, value)


def given_twice(name: str, how: str) -> ApiError:
    return ApiError(
        422,
        "invalid_option",
        f"{name} is given {how}: send each option once, with one value "
        "(a list option takes its values comma-separated)",
        fields=[name],
    )


def options_of(
    query: Iterable[tuple[str, str]], form: Mapping[str, str], skip: Iterable[str] = ()
) -> dict[str, str]:
    """A request's options: its query parameters and form fields, each given
    once. The same name twice in the query, or in the query and the form, is
    422 naming it (the form itself refuses a repeated field: gateway/upload.py),
    rather than one of the values silently winning."""
    skip = frozenset(skip)
    out: dict[str, str] = {}
    for name, value in query:
        if name in out:
            raise given_twice(name, "twice as a query parameter")
        out[name] = value
    for name, value in form.items():
        if name in out:
            raise given_twice(name, "both as a query parameter and as a form field")
        out[name] = value
    return {name: value for name, value in out.items() if name not in skip}


def parse(
    message: Message,
    params: Mapping[str, Param],
    raw: Mapping[str, str],
    aliases: Mapping[str, str | Setter] | None = None,
) -> Message:
    """Fill `message` from raw REST values (form fields and query parameters)."""
    aliases = aliases or {}
    given: dict[str, str] = {}  # field -> the name it was given under
    for name, text in raw.items():
        target = aliases.get(name, name)
        if isinstance(target, str) and target in given:
            raise ApiError(
                422,
                "invalid_option",
                f"{name} and {given[target]} are the same option: send one of them",
                fields=[given[target], name],
            )
        if isinstance(target, str):
            given[target] = name
        if callable(target):
            target(message, text)
            continue
        param = params.get(target)
        if param is None:
            accepted = sorted({*params, *aliases})
            raise ApiError(
                422,
                "invalid_option",
                f"{name}: unknown option; this route accepts {', '.join(accepted)}",
                fields=[name],
            )
        set_param(message, param, text, shown=name)
    return message


def to_rest(message: Message, params: Mapping[str, Param]) -> dict[str, Any]:
    """The parameters the caller set, in REST spelling (what a task echoes)."""
    out: dict[str, Any] = {}
    for name, param in params.items():
        container = message
        missing = False
        for part in param.path[:-1]:
            if not container.HasField(part):
                missing = True
                break
            container = getattr(container, part)
        if missing or not rules_.is_set(container, param.field):
            continue
        value = getattr(container, param.field.name)
        field = param.field
        if field.enum_type is not None:
            number = value
            value = field.enum_type.values_by_number[number].name
            value = value.removeprefix(enum_prefix(field)).lower()
        elif field.is_repeated:
            value = list(value)
        elif rules_.is_float(field):
            value = float(rules_.number(value))
        out[name] = value
    return out


def openapi_schema(param: Param) -> dict[str, Any]:
    """JSON schema of one parameter, for the route's documentation."""
    field = param.field
    r = rules_.rules(field)
    doc = param.doc
    if field.is_repeated:
        schema: dict[str, Any] = {"type": "string", "description": f"{doc} Comma-separated."}
        return schema
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        schema = {"type": "boolean"}
    elif field.enum_type is not None:
        schema = {"type": "string", "enum": enum_choices(field)}
    elif rules_.is_integer(field):
        schema = {"type": "integer"}
    elif rules_.is_float(field):
        schema = {"type": "number"}
    else:
        schema = {"type": "string"}
    if r is not None:
        if r.HasField("min"):
            schema["exclusiveMinimum" if r.min_exclusive else "minimum"] = _num(field, r.min)
        if r.HasField("max"):
            schema["maximum"] = _num(field, r.max)
        if r.HasField("default"):
            schema["default"] = _num(field, r.default)
        if r.zero_means_unset:
            schema["x-zero-means-unset"] = True  # 0 is taken too: it means the default
    schema["description"] = doc
    return schema


def _num(field: FieldDescriptor, value: float) -> int | float:
    return int(value) if rules_.is_integer(field) else float(value)


# --- comments from the descriptor set `make proto` writes ----------------------------


def add_descriptor_set(path: Path) -> None:
    """Document a declared backend's options from its protos' comments too."""
    if path not in _DESCRIPTOR_SETS:
        _DESCRIPTOR_SETS.append(path)
        _comments.cache_clear()


@functools.cache
def _comments() -> dict[str, str]:
    """Full field name -> its leading comment, from gen/descriptors.binpb and
    the descriptor sets of declared backends."""
    files = []
    for path in _DESCRIPTOR_SETS:
        try:
            files += descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
        except OSError:
            continue
    out: dict[str, str] = {}
    for file in files:
        locations = {tuple(loc.path): loc for loc in file.source_code_info.location}
        for i, msg in enumerate(file.message_type):
            for j, field in enumerate(msg.field):
                loc = locations.get((4, i, 2, j))
                if loc is not None and loc.leading_comments:
                    name = f"{file.package}.{msg.name}.{field.name}"
                    out[name] = " ".join(loc.leading_comments.split())
    return out


def field_comment(field: FieldDescriptor) -> str:
    return _comments().get(field.full_name, "")
