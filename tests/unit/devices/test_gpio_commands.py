"""devices.gpio.commands: text and structured commands, checked against a board."""

import pytest

from devices.gpio.commands import (
    Command,
    CommandError,
    lookup,
    parse_structured,
    parse_text,
    parse_value,
    strip_reply_fallback,
    target,
    verb_for,
)
from devices.gpio.settings import BoardSpec, DeviceSpec

BOARD = BoardSpec("board", "mock", (
    DeviceSpec("porch_light", "LED", pin="GPIO17"),
    DeviceSpec("fan", "PWMOutputDevice", pin="GPIO18"),
    DeviceSpec("doorbell", "Button", pin="GPIO2", pull_up=True),
))


@pytest.mark.parametrize(("body", "command"), [
    ("!on porch_light", Command("on", "porch_light")),
    ("!OFF porch_light", Command("off", "porch_light")),
    ("  !toggle   porch_light  ", Command("toggle", "porch_light")),
    ("!off", Command("off", None)),
    ("!set fan 0.4", Command("set", "fan", 0.4)),
    ("!set fan 40%", Command("set", "fan", 0.4)),
    ("!set porch_light on", Command("set", "porch_light", 1.0)),
    ("!status", Command("status")),
    ("!status doorbell", Command("status", "doorbell")),
    ("!help", Command("help")),
    ("> <@bob:test.local> porch?\n\n!on porch_light", Command("on", "porch_light")),
])
def test_parse_text(body: str, command: Command) -> None:
    assert parse_text(body) == command


@pytest.mark.parametrize("body", ["hello", "", "on porch_light", "!", "! ", "> quote only"])
def test_not_a_command(body: str) -> None:
    assert parse_text(body) is None


@pytest.mark.parametrize(("body", "fragment"), [
    ("!dance", "unknown command !dance"),
    ("!on a b", "usage: !on NAME"),
    ("!set fan", "usage: !set NAME VALUE"),
    ("!set", "usage: !set NAME VALUE"),
    ("!set fan 1.5", "out of range"),
    ("!set fan -0.1", "out of range"),
    ("!set fan nan", "out of range"),
    ("!set fan lots", "is not a value"),
    ("!status a b", "usage: !status"),
])
def test_bad_text(body: str, fragment: str) -> None:
    with pytest.raises(CommandError, match=fragment):
        parse_text(body)


def test_values() -> None:
    assert parse_value("0") == 0.0
    assert parse_value("1") == 1.0
    assert parse_value("100%") == 1.0
    assert parse_value("off") == 0.0
    assert parse_value("High") == 1.0


def test_reply_fallback() -> None:
    assert strip_reply_fallback("plain") == "plain"
    assert strip_reply_fallback("> <@a:b> x\n> more\n\n!help") == "!help"


@pytest.mark.parametrize(("content", "command"), [
    ({"device": "porch_light", "action": "on"}, Command("on", "porch_light")),
    ({"device": "fan", "action": "set", "value": 0.25}, Command("set", "fan", 0.25)),
    ({"device": "fan", "action": "set", "value": 1}, Command("set", "fan", 1.0)),
    ({"device": "fan", "action": "set", "value": True}, Command("set", "fan", 1.0)),
    ({"device": "fan", "action": "set", "value": "50%"}, Command("set", "fan", 0.5)),
    ({"device": "fan", "action": "set", "value": "0.4"}, Command("set", "fan", 0.4)),
    ({"device": "fan", "action": "set", "percent": 40}, Command("set", "fan", 0.4)),
    ({"action": "status"}, Command("status")),
])
def test_structured(content: dict, command: Command) -> None:
    assert parse_structured(content) == command


@pytest.mark.parametrize(("content", "fragment"), [
    ({}, "action must be one of"),
    ({"device": "fan", "action": "explode"}, "action must be one of"),
    ({"device": 3, "action": "on"}, "device must be a device name"),
    ({"device": "fan", "action": "set"}, "set needs a value"),
    ({"device": "fan", "action": "set", "value": [1]}, "set needs a value"),
    ({"device": "fan", "action": "set", "value": 2}, "out of range"),
    ({"device": "fan", "action": "on", "value": 1}, "only go with action set"),
    ({"device": "fan", "action": "set", "percent": 101}, "out of range"),
    ({"device": "fan", "action": "set", "percent": "40"}, "percent must be an integer"),
    ({"device": "fan", "action": "set", "percent": 4, "value": "1"}, "not both"),
])
def test_bad_structured(content: dict, fragment: str) -> None:
    with pytest.raises(CommandError, match=fragment):
        parse_structured(content)


def test_target() -> None:
    assert target(BOARD, Command("on", "porch_light")).name == "porch_light"
    assert target(BOARD, Command("on", "PORCH_LIGHT")).name == "porch_light"
    assert target(BOARD, Command("set", "fan", 0.4)).name == "fan"
    assert target(BOARD, Command("set", "porch_light", 1.0)).name == "porch_light"


@pytest.mark.parametrize(("command", "fragment"), [
    (Command("on", "nothing"), "no device 'nothing' on board board"),
    (Command("on", "doorbell"), "doorbell is an input"),
    (Command("set", "porch_light", 0.5), "only on or off"),
    (Command("off", None), "which output"),
])
def test_bad_target(command: Command, fragment: str) -> None:
    with pytest.raises(CommandError, match=fragment):
        target(BOARD, command)


def test_single_output_needs_no_name() -> None:
    board = BoardSpec("b", "mock", (DeviceSpec("lamp", "LED", pin="GPIO5"),))
    assert target(board, Command("off", None)).name == "lamp"


def test_lookup_and_verbs() -> None:
    assert [d.name for d in lookup(BOARD, None)] == ["porch_light", "fan", "doorbell"]
    assert [d.name for d in lookup(BOARD, "Doorbell")] == ["doorbell"]
    with pytest.raises(CommandError, match="no device 'x'"):
        lookup(BOARD, "x")
    assert verb_for(Command("on", "porch_light")) == "switch porch_light on"
    assert verb_for(Command("set", "fan", 0.4)) == "set fan"
    assert verb_for(Command("toggle", None)) == "toggle outputs"
