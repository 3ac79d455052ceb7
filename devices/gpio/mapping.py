"""The pure GPIO <-> Matrix mapping: readings, the debounce / minimum-interval filter and the
content of every event the service sends. No I/O, no clock (time is passed in), no gpiozero.

Event types (see devices/gpio/README.md):
- state ``org.edgehs.gpio.device``, state_key = device name: the device's current value;
- state ``org.edgehs.gpio.board``, state_key '': the board and its devices;
- timeline ``org.edgehs.gpio.edge``: an input became active or inactive;
- timeline ``org.edgehs.gpio.command``: a structured command (sent by members, read here).
Numbers in events are integers or decimal strings: canonical JSON has no floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from devices.gpio.settings import BoardSpec, DeviceSpec

DEVICE_STATE = "org.edgehs.gpio.device"
BOARD_STATE = "org.edgehs.gpio.board"
EDGE_EVENT = "org.edgehs.gpio.edge"
COMMAND_EVENT = "org.edgehs.gpio.command"
STATE_FIELD = "org.edgehs.gpio.state"  # the structured new state in a command's answer

# friendly name of the condition each input kind reports, and whether it is gpiozero's
# is_active (False) or its negation (True; e.g. a LineSensor sees a line when NOT active)
ALIASES: dict[str, tuple[str, bool]] = {
    "Button": ("pressed", False),
    "MotionSensor": ("motion", False),
    "LineSensor": ("line", True),
    "DistanceSensor": ("in_range", True),
    "CPUTemperature": ("over_threshold", False),
}


@dataclass(frozen=True)
class Reading:
    """A device's value (1.0/0.0 for on/off devices, 0..1 for PWM, metres for a
    DistanceSensor, degrees C for CPUTemperature) and gpiozero's ``is_active``."""

    value: float
    active: bool


@dataclass(frozen=True)
class Emission:
    """What the filter lets through: the reading to publish (``ts`` in ms of the change that
    produced it), whether it differs from the last published one, and how many times the
    input flipped between active and inactive since the last emission (0: no edge event)."""

    reading: Reading
    ts: int
    changed: bool
    edges: int


def differs(a: Reading | None, b: Reading | None, delta: float = 0.0) -> bool:
    """Whether ``a`` and ``b`` are different enough to publish (``delta`` for analog values)."""
    if a is None or b is None:
        return a is not b
    if a.active != b.active:
        return True
    gap = abs(a.value - b.value)
    return gap >= delta if delta > 0 else gap > 0


class InputFilter:
    """Debounce and minimum interval for one input; pure, the caller passes monotonic ``now``.

    - Debounce: a change counts only once the input has held it for ``bounce_time`` seconds
      (each new raw change restarts the wait); shorter glitches are dropped.
    - Minimum interval: at most one emission per ``min_interval`` seconds; changes in between
      are coalesced, so the emission still carries the latest value and counts the edges.
    The caller calls ``feed`` for every raw reading, then ``step``; ``step`` returns the
    emission (or None) and the monotonic time at which ``step`` must run again (or None).
    """

    def __init__(self, *, bounce_time: float = 0.0, min_interval: float = 0.0,
                 delta: float = 0.0) -> None:
        self.bounce_time = bounce_time
        self.min_interval = min_interval
        self.delta = delta
        self.published: Reading | None = None
        self._pending: tuple[Reading, int] | None = None
        self._settle_at = 0.0
        self._accepted: Reading | None = None
        self._accepted_ts = 0
        self._flips = 0
        self._last_emit: float | None = None

    @property
    def current(self) -> Reading | None:
        """The latest accepted (debounced) reading, published or not yet."""
        return self._accepted

    def feed(self, reading: Reading, ts: int, now: float) -> None:
        if self._accepted is None or self.bounce_time <= 0:
            self._accept(reading, ts)
            return
        if self._pending is not None and self._pending[0] == reading:
            return  # the same raw value again (a poll): keep the running debounce wait
        if self._pending is None and not differs(reading, self._accepted, self.delta):
            return
        self._pending = (reading, ts)
        self._settle_at = now + self.bounce_time

    def _accept(self, reading: Reading, ts: int) -> None:
        if not differs(reading, self._accepted, self.delta):
            return
        if self._accepted is not None and reading.active != self._accepted.active:
            self._flips += 1
        self._accepted = reading
        self._accepted_ts = ts

    def step(self, now: float) -> tuple[Emission | None, float | None]:
        if self._pending is not None and now >= self._settle_at:
            reading, ts = self._pending
            self._pending = None
            self._accept(reading, ts)
        emission = None
        due = self._accepted is not None and (
            self._flips > 0 or differs(self._accepted, self.published, self.delta))
        next_emit = (self._last_emit + self.min_interval if self._last_emit is not None
                     else now)
        if due and now >= next_emit:
            assert self._accepted is not None
            emission = Emission(self._accepted, self._accepted_ts,
                                differs(self._accepted, self.published, self.delta), self._flips)
            if self.published is not None:  # the first (start-up) value delays nothing
                self._last_emit = now
            self.published = self._accepted
            self._flips = 0
            due = False
        wakes = []
        if self._pending is not None:
            wakes.append(self._settle_at)
        if due:
            wakes.append(next_emit)
        return emission, (min(wakes) if wakes else None)


def decimal_text(value: float, places: int) -> str:
    """``value`` as a short decimal string ('0.4', '45.13', '1'): Matrix events carry no
    floats (canonical JSON allows integers only), so fractional values travel as text."""
    text = f"{value:.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def value_text(spec: DeviceSpec, value: float) -> str:
    return decimal_text(value, 3 if spec.kind == "DistanceSensor" else 2 if spec.is_analog
                        else 3)


def milli(value: float) -> int:
    return round(value * 1000)


def device_content(spec: DeviceSpec, reading: Reading, ts: int, *,
                   changed_by: str | None = None) -> dict[str, Any]:
    """The content of the ``org.edgehs.gpio.device`` state event for ``spec``."""
    content: dict[str, Any] = {
        "kind": spec.kind,
        "direction": "input" if spec.is_input else "output",
        "value": value_text(spec, reading.value),
        "active": reading.active,
        "updated_ts": ts,
    }
    if spec.pin is not None:
        content["pin"] = spec.pin
    if spec.kind == "DistanceSensor":
        content.update(echo=spec.echo, trigger=spec.trigger, mm=milli(reading.value),
                       max_distance_mm=milli(spec.max_distance),
                       threshold_mm=milli(spec.threshold_distance))
    if spec.kind == "CPUTemperature":
        content.update(millidegrees=milli(reading.value),
                       threshold_millidegrees=milli(spec.threshold or 0.0))
    if spec.is_pwm:
        content["percent"] = round(reading.value * 100)
    if spec.unit:
        content["unit"] = spec.unit
    if spec.label:
        content["label"] = spec.label
    alias = ALIASES.get(spec.kind)
    if alias is not None:
        content[alias[0]] = reading.active != alias[1]
    if not spec.is_input:
        content["pwm"] = spec.is_pwm
        if changed_by is not None:
            content["changed_by"] = changed_by
    return content


def edge_content(spec: DeviceSpec, emission: Emission) -> dict[str, Any]:
    """The content of an ``org.edgehs.gpio.edge`` timeline event."""
    reading = emission.reading
    return {
        "device": spec.name,
        "kind": spec.kind,
        "edge": "activated" if reading.active else "deactivated",
        "active": reading.active,
        "value": value_text(spec, reading.value),
        "edges": emission.edges,
        "ts": emission.ts,
    }


def board_content(board: BoardSpec) -> dict[str, Any]:
    """The content of the ``org.edgehs.gpio.board`` state event (state_key '')."""
    return {
        "board": board.name,
        "pin_factory": board.pin_factory,
        "label": board.label,
        "devices": [{"name": d.name, "kind": d.kind,
                     "direction": "input" if d.is_input else "output",
                     "pins": list(d.pins)} for d in board.devices],
    }


def describe(spec: DeviceSpec, reading: Reading | None) -> str:
    """A short human word for the reading: 'on', '40%', 'pressed', '21.5 °C'."""
    if reading is None:
        return "unknown"
    if spec.kind == "DistanceSensor":
        where = "in range" if not reading.active else "out of range"
        return f"{reading.value:.2f} m ({where})"
    if spec.kind == "CPUTemperature":
        hot = " (over threshold)" if reading.active else ""
        return f"{reading.value:.1f} °C{hot}"
    if spec.is_pwm:
        return "off" if reading.value <= 0 else f"{round(reading.value * 100)}%"
    if not spec.is_input:
        return "on" if reading.active else "off"
    words = {"Button": ("pressed", "released"), "MotionSensor": ("motion", "no motion"),
             "LineSensor": ("no line", "line")}.get(spec.kind, ("active", "inactive"))
    return words[0] if reading.active else words[1]


def device_line(spec: DeviceSpec, reading: Reading | None) -> str:
    where = ", ".join(spec.pins) if spec.pins else "internal"
    return f"{spec.name} ({spec.kind}, {where}): {describe(spec, reading)}"


def status_text(board: BoardSpec, readings: Mapping[str, Reading | None],
                only: Iterable[DeviceSpec] | None = None) -> str:
    """The answer to ``!status``: one line per device."""
    specs = list(only) if only is not None else list(board.devices)
    lines = [f"Board {board.name} ({board.pin_factory}):"]
    lines += [f"- {device_line(spec, readings.get(spec.name))}" for spec in specs]
    return "\n".join(lines)


def help_text(board: BoardSpec, actuate_power: int) -> str:
    """The answer to ``!help``."""
    outputs = ", ".join(d.name for d in board.outputs) or "(none)"
    inputs = ", ".join(d.name for d in board.inputs) or "(none)"
    return "\n".join([
        f"GPIO board {board.name}. Commands:",
        "!on NAME / !off NAME / !toggle NAME - switch an output",
        "!set NAME VALUE - set an output: 0..1 or 0%..100% (PWM), on/off or 1/0 (others)",
        "!status [NAME] - the current value of every device (or one)",
        "!help - this text",
        f"Outputs: {outputs}. Inputs: {inputs}.",
        f"Switching outputs needs power level {actuate_power} in this room. A structured "
        f"{COMMAND_EVENT} event {{\"device\": NAME, \"action\": on|off|toggle|set, "
        f"\"value\": \"0.4\"}} works too.",
    ])


def answer_content(text: str, *, in_reply_to: str | None = None,
                   state: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An m.notice answering a command, replying to it, with the new state attached."""
    content: dict[str, Any] = {"msgtype": "m.notice", "body": text}
    if in_reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": in_reply_to}}
    if state is not None:
        content[STATE_FIELD] = dict(state)
    return content
