"""MIDI messages <-> ``org.edgehs.midi`` event content (pure: no I/O, no clock).

One message is one content dict; a note (note_on / note_off) looks like
``{"kind": "note", "state": "on", "note": 71, "velocity": 68, "channel": 1, "midi_ts": ...}``
(a note_on with velocity 0 is a note off, as MIDI says). Every other kind is named after mido's
message type with mido's field names: ``control_change`` (control, value), ``program_change``
(program), ``pitchwheel`` (pitch, -8192..8191), ``aftertouch`` (value), ``polytouch`` (note,
value), ``sysex`` (data: list of 0..127, without F0/F7), ``quarter_frame``, ``songpos``,
``song_select``, ``tune_request``, ``clock``, ``start``, ``continue``, ``stop``,
``active_sensing``, ``reset``. ``channel`` counts 1..16 as people do (the wire has 0..15).
``midi_ts`` is an integer: milliseconds since the Unix epoch when the bytes were read.
A batch is ``{"batch": [content, ...]}`` in the order played. See devices/midi/README.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import mido

EVENT_TYPE = "org.edgehs.midi"
NOTE_KINDS = ("note_on", "note_off")
# Everything a port forwards unless `forward:` says otherwise (clock etc. would flood a room).
DEFAULT_FORWARD = ("note", "control_change", "program_change", "pitchwheel", "aftertouch",
                   "polytouch")
ALL_KINDS = ("note", "control_change", "program_change", "pitchwheel", "aftertouch",
             "polytouch", "sysex", "quarter_frame", "songpos", "song_select", "tune_request",
             "clock", "start", "continue", "stop", "active_sensing", "reset")
# Allowed ranges of each field in event content.
RANGES: dict[str, tuple[int, int]] = {
    "channel": (1, 16), "note": (0, 127), "velocity": (0, 127), "control": (0, 127),
    "value": (0, 127), "program": (0, 127), "pitch": (-8192, 8191), "pos": (0, 16383),
    "song": (0, 127), "frame_type": (0, 7), "frame_value": (0, 15),
}
MAX_SYSEX_DATA = 12 * 1024  # as the parser: a longer sysex would not fit one event


class ContentError(ValueError):
    """Event content that is not a MIDI message; str() names the field, e.g.
    ``batch[3].velocity: must be an integer 0..127, not 300``."""


def kind_of(msg: mido.Message) -> str:
    return "note" if msg.type in NOTE_KINDS else str(msg.type)


def message_to_content(msg: mido.Message, midi_ts: int) -> dict[str, Any]:
    """One mido message -> event content (see the module docstring)."""
    fields = msg.dict()
    fields.pop("time", None)
    kind = fields.pop("type")
    content: dict[str, Any]
    if kind in NOTE_KINDS:
        on = kind == "note_on" and fields["velocity"] > 0
        content = {"kind": "note", "state": "on" if on else "off", "note": fields["note"],
                   "velocity": fields["velocity"]}
    else:
        content = {"kind": kind}
        for name, value in fields.items():
            if name != "channel":
                content[name] = list(value) if name == "data" else value
    if "channel" in fields:
        content["channel"] = fields["channel"] + 1
    content["midi_ts"] = midi_ts
    return content


def _int_field(item: Mapping[str, Any], name: str, where: str) -> int:
    low, high = RANGES[name]
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = "missing" if name not in item else repr(value)
        raise ContentError(f"{where}{name}: must be an integer {low}..{high}, not {shown}")
    return value


def content_to_message(item: Mapping[str, Any], where: str = "") -> mido.Message:
    """One message's content -> mido message, or ContentError naming the bad field.
    ``kind`` may be left out of a note (``{"note", "velocity", "state"}`` is enough)."""
    if not isinstance(item, Mapping):
        raise ContentError(f"{where.rstrip('.') or 'content'}: must be an object")
    kind = item.get("kind", "note" if "note" in item and "state" in item else None)
    if kind not in ALL_KINDS:
        raise ContentError(f"{where}kind: must be one of {', '.join(ALL_KINDS)}, not "
                           f"{'missing' if kind is None else repr(kind)}")
    if kind == "note":
        state = item.get("state")
        if state not in ("on", "off"):
            raise ContentError(f"{where}state: must be \"on\" or \"off\", not {state!r}")
        mtype = "note_on" if state == "on" else "note_off"
        velocity = _int_field(item, "velocity", where) if "velocity" in item else (
            64 if state == "on" else 0)
        return mido.Message(mtype, channel=_int_field(item, "channel", where) - 1,
                            note=_int_field(item, "note", where), velocity=velocity)
    spec = mido.messages.specs.SPEC_BY_TYPE[kind]
    kwargs: dict[str, Any] = {}
    for name in spec["value_names"]:
        if name == "channel":
            kwargs["channel"] = _int_field(item, "channel", where) - 1
        elif name == "data":
            kwargs["data"] = _sysex_data(item.get("data"), where)
        else:
            kwargs[name] = _int_field(item, name, where)
    return mido.Message(kind, **kwargs)


def _sysex_data(value: object, where: str) -> list[int]:
    if (not isinstance(value, list) or len(value) > MAX_SYSEX_DATA
            or any(isinstance(b, bool) or not isinstance(b, int) or not 0 <= b <= 127
                   for b in value)):
        raise ContentError(f"{where}data: must be a list of at most {MAX_SYSEX_DATA} integers "
                           f"0..127")
    return list(value)


def content_to_messages(content: Mapping[str, Any]) -> list[tuple[mido.Message, int | None]]:
    """Event content (one message or a batch) -> [(message, midi_ts or None)] in order.
    All-or-nothing: one bad item makes the whole event a ContentError."""
    if not isinstance(content, Mapping):
        raise ContentError("content: must be an object")
    if "batch" in content:
        items = content["batch"]
        if not isinstance(items, list) or not items:
            raise ContentError("batch: must be a non-empty list of MIDI messages")
        return [(content_to_message(item, f"batch[{i}]."), _ts(item))
                for i, item in enumerate(items)]
    return [(content_to_message(content), _ts(content))]


def _ts(item: Mapping[str, Any]) -> int | None:
    value = item.get("midi_ts") if isinstance(item, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def contents_of(content: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """The per-message dicts of an event content (itself, or its batch)."""
    items = content.get("batch")
    return items if isinstance(items, list) else [content]
