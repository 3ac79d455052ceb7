"""devices.midi.mapping: mido messages <-> org.edgehs.midi event content."""

from typing import Any

import mido
import pytest

from devices.midi.mapping import (
    ContentError,
    content_to_message,
    content_to_messages,
    message_to_content,
)

TS = 1_700_000_000_123


def test_note_on_is_the_issue_shape() -> None:
    msg = mido.Message("note_on", channel=0, note=71, velocity=68)
    assert message_to_content(msg, TS) == {"kind": "note", "state": "on", "note": 71,
                                           "velocity": 68, "channel": 1, "midi_ts": TS}


@pytest.mark.parametrize(("msg", "content"), [
    (mido.Message("note_on", channel=15, note=60, velocity=0),
     {"kind": "note", "state": "off", "note": 60, "velocity": 0, "channel": 16}),
    (mido.Message("note_off", channel=2, note=60, velocity=40),
     {"kind": "note", "state": "off", "note": 60, "velocity": 40, "channel": 3}),
    (mido.Message("control_change", channel=0, control=7, value=100),
     {"kind": "control_change", "control": 7, "value": 100, "channel": 1}),
    (mido.Message("program_change", channel=9, program=5),
     {"kind": "program_change", "program": 5, "channel": 10}),
    (mido.Message("pitchwheel", channel=0, pitch=-8192),
     {"kind": "pitchwheel", "pitch": -8192, "channel": 1}),
    (mido.Message("aftertouch", channel=0, value=30),
     {"kind": "aftertouch", "value": 30, "channel": 1}),
    (mido.Message("polytouch", channel=0, note=60, value=30),
     {"kind": "polytouch", "note": 60, "value": 30, "channel": 1}),
    (mido.Message("sysex", data=[0x7E, 1, 2]), {"kind": "sysex", "data": [0x7E, 1, 2]}),
    (mido.Message("songpos", pos=300), {"kind": "songpos", "pos": 300}),
    (mido.Message("clock"), {"kind": "clock"}),
])
def test_message_to_content(msg: mido.Message, content: dict[str, Any]) -> None:
    assert message_to_content(msg, TS) == {**content, "midi_ts": TS}


@pytest.mark.parametrize("msg", [
    mido.Message("note_on", channel=3, note=71, velocity=68),
    mido.Message("note_off", channel=0, note=0, velocity=127),
    mido.Message("control_change", channel=15, control=127, value=0),
    mido.Message("program_change", channel=1, program=127),
    mido.Message("pitchwheel", channel=0, pitch=8191),
    mido.Message("aftertouch", channel=0, value=1),
    mido.Message("polytouch", channel=0, note=1, value=2),
    mido.Message("sysex", data=[1, 2, 3]),
    mido.Message("quarter_frame", frame_type=7, frame_value=15),
    mido.Message("song_select", song=3),
    mido.Message("tune_request"),
    mido.Message("start"),
])
def test_round_trip(msg: mido.Message) -> None:
    assert content_to_messages(message_to_content(msg, TS)) == [(msg, TS)]


def test_issue_shape_without_kind_is_a_note() -> None:
    content = {"note": 71, "velocity": 68, "state": "on", "channel": 1, "midi_ts": TS}
    assert content_to_messages(content) == [
        (mido.Message("note_on", channel=0, note=71, velocity=68), TS)]


def test_velocity_defaults_and_missing_midi_ts() -> None:
    assert content_to_messages({"kind": "note", "state": "on", "note": 60, "channel": 1}) == [
        (mido.Message("note_on", note=60, velocity=64), None)]


def test_batch_keeps_order() -> None:
    items = [message_to_content(mido.Message("note_on", note=n, velocity=1), TS + n)
             for n in range(10)]
    got = content_to_messages({"batch": items})
    assert [(m.note, ts) for m, ts in got] == [(n, TS + n) for n in range(10)]


@pytest.mark.parametrize(("content", "error"), [
    ({"kind": "note", "state": "on", "note": 60, "velocity": 300, "channel": 1},
     "velocity: must be an integer 0..127, not 300"),
    ({"kind": "note", "state": "on", "note": 60, "channel": 0},
     "channel: must be an integer 1..16, not 0"),
    ({"kind": "note", "state": "on", "note": 60, "channel": 17},
     "channel: must be an integer 1..16, not 17"),
    ({"kind": "note", "state": "on", "note": True, "channel": 1},
     "note: must be an integer 0..127, not True"),
    ({"kind": "note", "state": "on", "channel": 1}, "note: must be an integer 0..127, not missing"),
    ({"kind": "note", "state": "up", "note": 1, "channel": 1},
     "state: must be \"on\" or \"off\", not 'up'"),
    ({"kind": "pitchwheel", "pitch": 8192, "channel": 1},
     "pitch: must be an integer -8192..8191, not 8192"),
    ({"kind": "control_change", "control": 1.5, "value": 1, "channel": 1},
     "control: must be an integer 0..127, not 1.5"),
    ({"kind": "sysex", "data": [1, 200]}, "data: must be a list of at most 12288 integers 0..127"),
    ({"body": "hello"}, "kind: must be one of note, control_change"),
    ({"kind": "nope"}, "kind: must be one of"),
    ({"batch": []}, "batch: must be a non-empty list of MIDI messages"),
    ({"batch": "x"}, "batch: must be a non-empty list of MIDI messages"),
    ({"batch": [{"kind": "clock"}, {"kind": "note", "state": "on", "note": 1, "channel": 99}]},
     "batch[1].channel: must be an integer 1..16, not 99"),
    ({"batch": [{"kind": "clock"}, 5]}, "batch[1]: must be an object"),
])
def test_bad_content_names_the_field(content: dict[str, Any], error: str) -> None:
    with pytest.raises(ContentError) as info:
        content_to_messages(content)
    assert str(info.value).startswith(error)


def test_single_message_error_has_no_prefix() -> None:
    with pytest.raises(ContentError, match=r"^content: must be an object$"):
        content_to_message(5)  # type: ignore[arg-type]
