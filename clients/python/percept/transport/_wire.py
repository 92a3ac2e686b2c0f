"""Options -> request messages and response messages -> JSON, from the descriptors.

A gRPC request is filled the way the gateway fills one from REST parameters:
every option names a scalar field of the request or of a nested options
message (under the aliases in `percept.rules`), checked against the field's
rules first. A response becomes the JSON the REST gateway would send for it,
so one reader per type (`Face.from_json`...) serves both transports.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from percept import rules
from percept.errors import InvalidInput

_POINT = "percept.common.v1.Point"
_TIMESTAMP = "google.protobuf.Timestamp"
# Distances and thresholds are float32 on the wire; the gateway rounds away the noise.
_ROUNDED = {"distance", "threshold", "best_score"}


def check(option_rules: Mapping[str, rules.Rule], values: Mapping[str, Any]) -> None:
    """InvalidInput naming the option, as the server would answer, for a value
    out of its rules (options without rules are the server's to check)."""
    for name, value in values.items():
        rule = option_rules.get(name)
        if rule is None or value is None:
            continue
        try:
            rule.check(name, value)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="invalid_option", fields=(name,)) from None


@functools.cache
def _fields(descriptor: Descriptor) -> dict[str, tuple[str | None, FieldDescriptor]]:
    """Option name -> (the request's message field that holds it, None: the
    request itself; the field), flattened as the gateway does (once per message
    type: a live stream fills a request per frame)."""
    out: dict[str, tuple[str | None, FieldDescriptor]] = {}
    for field in descriptor.fields:
        if field.message_type is None:
            out[field.name] = (None, field)
        elif not field.is_repeated:
            for sub in field.message_type.fields:
                if sub.message_type is None:
                    out.setdefault(sub.name, (field.name, sub))
    return out


def fill(message: Message, values: Mapping[str, Any], aliases: Mapping[str, str] = {}) -> Message:  # noqa: B006
    """Set the options that are given (None: unset, the service's default) on
    a request; names the request does not take are left out (a live stream
    takes no frame_stride)."""
    fields = _fields(message.DESCRIPTOR)
    names = {alias: name for name, alias in aliases.items()}
    for name, value in values.items():
        if value is None:
            continue
        if name == "classes":  # names and ids in one list, as on the command line
            for item in value:
                digits = isinstance(item, int) or (str(item).isascii() and str(item).isdigit())
                key = "class_ids" if digits else "class_names"
                fill(message, {key: [int(item) if digits else str(item)]})
            continue
        found = fields.get(names.get(name, name))
        if found is None:
            continue
        parent, field = found
        target = getattr(message, parent) if parent else message
        if field.is_repeated:
            getattr(target, field.name).extend(value)
        elif field.enum_type is not None:
            number = _enum(field).get(str(value).lower())
            if number is None:
                raise ValueError(f"{name} must be one of {', '.join(_enum(field))} (got {value!r})")
            setattr(target, field.name, number)
        else:
            setattr(target, field.name, value)
    return message


@functools.cache
def _enum(field: FieldDescriptor) -> dict[str, int]:
    """An enum's numbers by their REST spellings (`rules.enum_choices`)."""
    numbers = [v.number for v in field.enum_type.values if not v.name.endswith("_UNSPECIFIED")]
    return dict(zip(rules.enum_choices(field), numbers, strict=True))


@functools.cache
def input_field(descriptor: Descriptor) -> str:
    """The request field that carries the upload (an Image or a VideoSource)."""
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.full_name in rules._INPUTS:
            return field.name
    raise ValueError(f"{descriptor.full_name} takes no upload")


def to_json(message: Message) -> dict[str, Any]:
    """A response as JSON: every scalar, set messages, non-empty lists; enums in
    REST spelling ('pytorch'), timestamps as ISO 8601, points as [x, y]."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.is_repeated:
            if len(value):
                out[field.name] = [_value(field, v) for v in value]
        elif field.message_type is None or message.HasField(field.name):
            out[field.name] = _value(field, value)
    return out


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None:
        name = field.message_type.full_name
        if name == _POINT:
            return [value.x, value.y]
        if name == _TIMESTAMP:
            return value.ToDatetime(tzinfo=UTC).isoformat() if value.seconds else None
        return to_json(value)
    if field.enum_type is not None:
        return next((name for name, n in _enum(field).items() if n == value), "unspecified")
    if field.name in _ROUNDED:
        return round(value, 6)
    return value
