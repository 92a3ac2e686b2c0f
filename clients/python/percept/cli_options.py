"""A task kind's command-line options, from the rules the gateway checks.

Each option's type, choices, range and help come from its proto field
(`percept.rules`, which reads the same descriptors and `(percept.common.v1.rules)`
field options as the gateway): a value the gateway would refuse is refused
here with the accepted range, before anything is uploaded, and a range changed
in the proto changes here with it.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any

import typer

from percept import rules
from percept.cli_common import param
from percept.rules import Rule

# Shorter flags people type for some options (the long name works too).
SHORT_FLAGS = {"confidence_threshold": "--confidence", "iou_threshold": "--iou"}


@functools.cache
def kind_rules(kind: str) -> Mapping[str, Rule]:
    """The options of a built-in kind on images, then those on videos only, by name."""
    merged = rules.option_rules(kind, "image")
    for name, rule in rules.option_rules(kind, "video").items():
        merged.setdefault(name, rule)
    return merged


def video_only(kind: str) -> tuple[str, ...]:
    """The options of `kind` that apply to videos only."""
    return tuple(set(kind_rules(kind)) - set(rules.option_rules(kind, "image")))


def _checker(name: str, rule: Rule) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is not None:
            try:
                rule.check(name, value)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
        return value

    return check


def _help(rule: Rule) -> str:
    """The proto field's comment, with the range when the comment does not say it."""
    shown = rule.describe()
    if rule.type is bool or rule.choices or shown == "any value" or shown in rule.description:
        return rule.description
    return f"{rule.description} Accepts {shown}.".strip()


def option(name: str, rule: Rule) -> Any:
    """An `Annotated` Typer option for the task option `name`."""
    flags = ["--" + name.replace("_", "-")]
    if name in SHORT_FLAGS:
        flags.insert(0, SHORT_FLAGS[name])
    if rule.type is bool:
        return Annotated[bool, typer.Option(*flags, help=_help(rule))]
    if rule.choices:
        choices = enum.StrEnum(name.title().replace("_", ""), {c: c for c in rule.choices})
        return Annotated[choices | None, typer.Option(*flags, help=_help(rule),
                                                      show_default=False)]  # fmt: skip
    type_ = str if rule.repeated else rule.type  # a list: comma-separated
    return Annotated[
        type_ | None,
        typer.Option(*flags, help=_help(rule), callback=_checker(name, rule), show_default=False),
    ]


def parameters(rules_: Mapping[str, Rule], names: Iterable[str]) -> list[inspect.Parameter]:
    """Keyword parameters for the options `names`, in that order."""
    return [
        param(n, option(n, rules_[n]), False if rules_[n].type is bool else None) for n in names
    ]


def given(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options set on the command line (a flag left off is unset, not false),
    as the SDK takes them (an enum as its value)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value is False:
            continue
        out[name] = value.value if isinstance(value, enum.Enum) else value
    return out
