"""Request-field rules, read from the protos: the one place ranges and defaults
are written is the `(percept.common.v1.rules)` option on each field.

The services check every request with `check()` and read option values with
`value()` (which applies the proto's default when a field is unset); the REST
gateway parses form fields into the same messages and checks them with the
same function, so a caller gets the same message over REST and gRPC.
Protobuf only: no gRPC here.
"""

from __future__ import annotations

import math

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from percept.common.v1 import field_rules_pb2

from percept_runtime.errors import InvalidInput

_INTEGER_TYPES = {
    FieldDescriptor.CPPTYPE_INT32,
    FieldDescriptor.CPPTYPE_INT64,
    FieldDescriptor.CPPTYPE_UINT32,
    FieldDescriptor.CPPTYPE_UINT64,
}
_FLOAT_TYPES = {FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE}


def rules(field: FieldDescriptor) -> field_rules_pb2.FieldRules | None:
    """The field's rules, or None when it has none."""
    options = field.GetOptions()
    if options.HasExtension(field_rules_pb2.rules):
        return options.Extensions[field_rules_pb2.rules]
    return None


def is_repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def is_integer(field: FieldDescriptor) -> bool:
    return field.cpp_type in _INTEGER_TYPES


def is_float(field: FieldDescriptor) -> bool:
    return field.cpp_type in _FLOAT_TYPES


def number(value: float) -> str:
    """1.0 -> '1', 0.25 -> '0.25' (float32 noise rounded away)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"


def describe_range(r: field_rules_pb2.FieldRules) -> str:
    """'[0, 3]', '(0, 1]', '>= 1'... for messages and documentation."""
    low = r.HasField("min")
    high = r.HasField("max")
    if low and high:
        return f"{'(' if r.min_exclusive else '['}{number(r.min)}, {number(r.max)}]"
    if low:
        return f"{'>' if r.min_exclusive else '>='} {number(r.min)}"
    if high:
        return f"<= {number(r.max)}"
    return "any value"


def in_range(r: field_rules_pb2.FieldRules, value: float) -> bool:
    if not math.isfinite(value):
        return False
    if r.HasField("min") and (value <= r.min if r.min_exclusive else value < r.min):
        return False
    return not (r.HasField("max") and value > r.max)


def is_set(message: Message, field: FieldDescriptor) -> bool:
    """Whether the caller set a field (so the service's default does not apply)."""
    if is_repeated(field):
        return len(getattr(message, field.name)) > 0
    if field.has_presence:
        return message.HasField(field.name)
    value = getattr(message, field.name)
    return bool(value)  # proto3 without presence: the zero value means unset


def default(field: FieldDescriptor):
    """The value a service uses for the field when it is unset."""
    r = rules(field)
    if r is not None and r.HasField("default"):
        return int(r.default) if is_integer(field) else float(r.default)
    return field.default_value


def value(message: Message, name: str):
    """A field's value, or its proto default when unset."""
    field = message.DESCRIPTOR.fields_by_name[name]
    if is_set(message, field):
        return getattr(message, name)
    return default(field)


def enum_names(field: FieldDescriptor) -> list[str]:
    return [v.name for v in field.enum_type.values]


def check(message: Message, path: str = "") -> None:
    """Check a request (recursively) against its fields' rules and enums.

    Raises InvalidInput naming the field, the value, and what is accepted.
    """
    _check(message, message.DESCRIPTOR, path)


def _check(message: Message, descriptor: Descriptor, path: str) -> None:
    for field in descriptor.fields:
        where = f"{path}.{field.name}" if path else field.name
        if field.message_type is not None:
            if is_repeated(field):
                for i, item in enumerate(getattr(message, field.name)):
                    _check(item, field.message_type, f"{where}[{i}]")
            elif message.HasField(field.name):
                _check(getattr(message, field.name), field.message_type, where)
            continue
        if field.enum_type is not None and not is_repeated(field):
            number_ = getattr(message, field.name)
            if field.enum_type.values_by_number.get(number_) is None:
                raise InvalidInput(
                    f"{where} {number_} is unknown: use one of {', '.join(enum_names(field))}"
                )
        r = rules(field)
        if r is None:
            continue
        if is_repeated(field):
            count = len(getattr(message, field.name))
            if r.HasField("max_items") and count > r.max_items:
                raise InvalidInput(f"{where} has {count} entries: at most {r.max_items} allowed")
            continue
        if not is_set(message, field):
            continue
        v = getattr(message, field.name)
        if not in_range(r, float(v)):
            unset = " (or leave it unset)" if r.zero_means_unset or field.has_presence else ""
            raise InvalidInput(f"{where} is {number(v)}: it must be in {describe_range(r)}{unset}")
