"""The `percept` command's task options take their ranges from the proto's
rules (percept.rules, which reads what the gateway checks): every bound the
rules give is accepted, a step past it is refused with the accepted range, and
nothing is sent for a refused value."""

from __future__ import annotations

import pytest
import typer
from percept.cli import app
from percept.rules import Rule, option_rules
from typer.testing import CliRunner

# Each detect command and the kind whose rules it takes.
COMMANDS = {("detect", "face"): "face", ("detect", "object"): "object", ("identify",): "identify"}
LEADING = {"identify": ["--collection", "staff"]}


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")  # parsing the command reads nothing
    return str(path)


def command(words: tuple[str, ...]):
    found = typer.main.get_command(app)
    for word in words:
        found = found.commands[word]  # type: ignore[attr-defined]
    return found


def parse(words: tuple[str, ...], *args: str) -> dict:
    """The command's parameters as it would run with them (nothing is run)."""
    return command(words).make_context(words[-1], list(args)).params


def bounds(words: tuple[str, ...]) -> list[tuple[str, Rule]]:
    """Every ranged number option of the command's kind (images and videos)
    that the command takes."""
    kind = COMMANDS[words]
    rules = {**option_rules(kind, "video"), **option_rules(kind, "image")}
    taken = {p.name for p in command(words).params}
    return [
        (name, rule)
        for name, rule in rules.items()
        if name in taken
        and rule.type in (int, float)
        and (rule.minimum is not None or rule.maximum is not None)
    ]


def cases() -> list[tuple[tuple[str, ...], str, Rule]]:
    return [(words, name, rule) for words in COMMANDS for name, rule in bounds(words)]


def test_the_commands_take_their_kinds_ranged_options():
    taken = {words: [name for name, _ in bounds(words)] for words in COMMANDS}
    assert {"iou_threshold", "confidence_threshold", "max_detections"} <= set(
        taken[("detect", "object")]
    )
    assert {"upsample", "num_jitters", "frame_stride"} <= set(taken[("detect", "face")])
    assert {"top_k", "threshold"} <= set(taken[("identify",)])


def test_an_iou_of_zero_is_refused_with_the_range_the_proto_gives(image):
    result = CliRunner().invoke(
        app, ["detect", "object", image, "--iou", "0", "--server", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())
    assert "iou_threshold is 0: it must be in (0, 1]" in text
    assert "cannot reach" not in text  # refused before anything was sent
    assert option_rules("object", "image")["iou_threshold"].describe() == "(0, 1]"


@pytest.mark.parametrize(
    ("words", "name", "rule"), cases(), ids=lambda v: "-".join(v) if isinstance(v, tuple) else None
)
def test_every_bound_of_the_rules_is_the_commands(words, name, rule, image):
    flag = "--" + name.replace("_", "-")
    lead = [image, *LEADING.get(COMMANDS[words], [])]
    step = 1 if rule.type is int else 0.001

    def accepted(value) -> bool:
        try:
            params = parse(words, *lead, flag, str(value))
        except typer.BadParameter as exc:
            assert name in exc.message and rule.describe() in exc.message
            return False
        assert params[name] == pytest.approx(value)
        return True

    def unless_zero(value) -> bool:  # 0 is "the default" for some options, whatever the range
        return rule.zero_means_unset and value == 0

    if rule.minimum is not None:
        low = rule.minimum
        assert accepted(low) is not rule.exclusive_minimum or unless_zero(low)
        assert accepted(low + step)
        assert accepted(low - step) is unless_zero(low - step)
    if rule.maximum is not None:
        high = rule.maximum
        assert accepted(high) is not rule.exclusive_maximum
        assert accepted(high - step)
        assert accepted(high + step) is False


def test_choices_are_the_protos_enum_values(image):
    rule = option_rules("face", "video")["tracker"]
    for choice in rule.choices or ():
        assert parse(("detect", "face"), image, "--tracker", choice)["tracker"].value == choice
    with pytest.raises(typer.BadParameter):
        parse(("detect", "face"), image, "--tracker", "kalman")
    detector = option_rules("face", "image")["detector"].choices
    assert parse(("detect", "face"), image, "--detector", detector[-1])["detector"] == detector[-1]


def test_enrollment_options_are_ranged_by_the_proto_too(image):
    enroll = ("faces", "enroll")
    lead = ["staff", image, "--subject", "ann"]
    assert parse(enroll, *lead, "--max-faces", "100")["max_faces"] == 100
    with pytest.raises(typer.BadParameter, match=r"max_faces is 101: it must be in \[1, 100\]"):
        parse(enroll, *lead, "--max-faces", "101")
    with pytest.raises(typer.BadParameter, match=r"upsample is 4: it must be in \[0, 3\]"):
        parse(enroll, *lead, "--upsample", "4")
