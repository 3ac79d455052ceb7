"""Commands members send to a board room, parsed and checked without touching hardware.

Text (an ``m.text`` message): ``!on NAME``, ``!off NAME``, ``!toggle NAME``, ``!set NAME VALUE``,
``!status [NAME]``, ``!help``. Structured: an ``org.edgehs.gpio.command`` event with content
``{"device": NAME, "action": "on"|"off"|"toggle"|"set"|"status", "value": "0.4"}`` (or
``"percent": 40``); a value is text, true/false or 0/1 since Matrix events carry no floats.
A mistake raises ``CommandError`` whose text is the answer the member gets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devices.gpio.settings import BoardSpec, DeviceSpec

ACTUATIONS = ("on", "off", "toggle", "set")
QUERIES = ("status", "help")
WORD_VALUES = {"on": 1.0, "off": 0.0, "true": 1.0, "false": 0.0, "high": 1.0, "low": 0.0}


class CommandError(ValueError):
    """A command that cannot be carried out; ``str(e)`` is the notice sent back."""


@dataclass(frozen=True)
class Command:
    action: str  # on | off | toggle | set | status | help
    device: str | None = None
    value: float | None = None  # only for set

    @property
    def actuates(self) -> bool:
        return self.action in ACTUATIONS


def strip_reply_fallback(body: str) -> str:
    """Drop the ``> <@user> quoted`` lines a client puts before a reply's own text."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


def parse_value(text: str) -> float:
    """``0.4``, ``40%``, ``on``/``off``/``true``/``false``/``high``/``low`` -> 0..1."""
    word = text.strip().lower()
    if word in WORD_VALUES:
        return WORD_VALUES[word]
    try:
        value = float(word[:-1]) / 100 if word.endswith("%") else float(word)
    except ValueError:
        raise CommandError(f"{text!r} is not a value: use a number from 0 to 1, a percentage "
                           f"like 40%, or on/off") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise CommandError(f"{text} is out of range: use a number from 0 to 1 (or 0% to 100%)")
    return value


def parse_text(body: str) -> Command | None:
    """A message body -> Command; None when it is not a ``!`` command at all."""
    text = strip_reply_fallback(body).strip()
    if not text.startswith("!"):
        return None
    words = text[1:].split()
    if not words:
        return None
    verb, args = words[0].lower(), words[1:]
    if verb in ("on", "off", "toggle"):
        if len(args) > 1:
            raise CommandError(f"usage: !{verb} NAME")
        return Command(verb, args[0] if args else None)
    if verb == "set":
        if len(args) == 1:
            raise CommandError(f"usage: !set NAME VALUE (e.g. !set {args[0]} 0.4)")
        if len(args) != 2:
            raise CommandError("usage: !set NAME VALUE (e.g. !set fan 0.4)")
        return Command("set", args[0], parse_value(args[1]))
    if verb == "status":
        if len(args) > 1:
            raise CommandError("usage: !status [NAME]")
        return Command("status", args[0] if args else None)
    if verb == "help":
        return Command("help")
    raise CommandError(f"unknown command !{verb}: try !help")


def parse_structured(content: Mapping[str, Any]) -> Command:
    """An ``org.edgehs.gpio.command`` content -> Command."""
    action = content.get("action")
    if not isinstance(action, str) or action not in (*ACTUATIONS, "status"):
        raise CommandError(f"action must be one of {', '.join(ACTUATIONS)} or status, "
                           f"not {action!r}")
    device = content.get("device")
    if device is not None and (not isinstance(device, str) or not device):
        raise CommandError(f"device must be a device name, not {device!r}")
    value = content.get("value")
    percent = content.get("percent")
    if action != "set":
        if value is not None or percent is not None:
            raise CommandError(f"value and percent only go with action set, not {action}")
        return Command(action, device)
    if percent is not None:
        if value is not None:
            raise CommandError("give value or percent, not both")
        if isinstance(percent, bool) or not isinstance(percent, int):
            raise CommandError(f"percent must be an integer from 0 to 100, not {percent!r}")
        return Command("set", device, parse_value(f"{percent}%"))
    if isinstance(value, bool):
        return Command("set", device, 1.0 if value else 0.0)
    if isinstance(value, int | float):
        return Command("set", device, parse_value(repr(float(value))))
    if isinstance(value, str):
        return Command("set", device, parse_value(value))
    raise CommandError(f"set needs a value (a string like \"0.4\" or \"40%\", true/false, "
                       f"0 or 1) or an integer percent, not {value!r}")


def target(board: BoardSpec, command: Command) -> DeviceSpec:
    """The output ``command`` switches; checks the value suits it."""
    if command.device is None:
        outputs = board.outputs
        if len(outputs) == 1:
            spec = outputs[0]
        else:
            names = ", ".join(d.name for d in outputs) or "none"
            raise CommandError(f"which output? usage: !{command.action} NAME (outputs: {names})")
    else:
        found = board.device(command.device)
        if found is None:
            names = ", ".join(d.name for d in board.outputs) or "none"
            raise CommandError(f"no device {command.device!r} on board {board.name} "
                               f"(outputs: {names})")
        spec = found
    if spec.is_input:
        raise CommandError(f"{spec.name} is an input ({spec.kind}); it cannot be switched")
    value = command.value
    if command.action == "set" and value is not None and not spec.is_pwm and value not in (0, 1):
        raise CommandError(f"{spec.name} ({spec.kind}) is only on or off: use 1/0 or on/off, "
                           f"not {value:g}")
    return spec


def lookup(board: BoardSpec, name: str | None) -> list[DeviceSpec]:
    """The devices ``!status [NAME]`` reports on."""
    if name is None:
        return list(board.devices)
    spec = board.device(name)
    if spec is None:
        raise CommandError(f"no device {name!r} on board {board.name} (devices: "
                           f"{', '.join(d.name for d in board.devices)})")
    return [spec]


def verb_for(command: Command) -> str:
    """How a refusal names the action: 'switch porch_light on'."""
    name = command.device or "outputs"
    if command.action == "set":
        return f"set {name}"
    if command.action == "toggle":
        return f"toggle {name}"
    return f"switch {name} {command.action}"
