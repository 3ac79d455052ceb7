"""devices.midi.parser: MIDI 1.0 byte streams -> mido messages (running status, real-time)."""

import random

import mido
import pytest

from devices.midi.parser import MidiStreamParser


def parse(data: bytes | list[int]) -> list[str]:
    return [str(m) for m in MidiStreamParser().feed(bytes(data))]


def note(n: int, v: int, ch: int = 0) -> str:
    return str(mido.Message("note_on", channel=ch, note=n, velocity=v))


def test_plain_messages() -> None:
    assert parse([0x90, 60, 100, 0x80, 60, 64]) == [
        note(60, 100), str(mido.Message("note_off", note=60, velocity=64))]


def test_running_status_notes() -> None:
    # one status byte, three notes (the last a note-on with velocity 0 = note off)
    assert parse([0x90, 60, 100, 62, 90, 64, 0]) == [note(60, 100), note(62, 90), note(64, 0)]


def test_running_status_two_byte_messages() -> None:
    assert parse([0xC3, 5, 6, 7]) == [
        str(mido.Message("program_change", channel=3, program=p)) for p in (5, 6, 7)]


def test_realtime_inside_a_message() -> None:
    # a clock between the note number and the velocity: emitted first, the note survives
    assert parse([0x90, 60, 0xF8, 100]) == ["clock time=0", note(60, 100)]


def test_realtime_interleaved_with_running_status() -> None:
    data = [0x90, 60, 100, 0xF8, 62, 0xFE, 90, 0xFA, 64, 0xFC, 0xFB, 0, 0xFF]
    assert parse(data) == [note(60, 100), "clock time=0", "active_sensing time=0", note(62, 90),
                           "start time=0", "stop time=0", "continue time=0", note(64, 0),
                           "reset time=0"]


def test_undefined_realtime_and_common_are_ignored() -> None:
    parser = MidiStreamParser()
    assert [str(m) for m in parser.feed([0x90, 60, 0xF9, 0xFD, 100])] == [note(60, 100)]
    # F4 (undefined system common) cancels running status: the next data bytes are stray
    assert parser.feed([0xF4, 61, 100]) == []
    assert parser.stray == 2


def test_system_common_cancels_running_status() -> None:
    parser = MidiStreamParser()
    out = [str(m) for m in parser.feed([0x90, 60, 100, 0xF3, 5, 62, 90, 0xF6])]
    assert out == [note(60, 100), "song_select song=5 time=0", "tune_request time=0"]
    assert parser.stray == 2


def test_system_common_messages() -> None:
    msgs = MidiStreamParser().feed([0xF1, 0x35, 0xF2, 0x10, 0x20])
    assert [m.type for m in msgs] == ["quarter_frame", "songpos"]
    assert (msgs[0].frame_type, msgs[0].frame_value, msgs[1].pos) == (3, 5, 0x20 * 128 + 0x10)


def test_sysex_with_realtime_inside() -> None:
    assert parse([0xF0, 0x7E, 0xF8, 0x01, 0x02, 0xF7, 0x90, 60, 100]) == [
        "clock time=0", "sysex data=(126,1,2) time=0", note(60, 100)]


def test_sysex_cut_by_a_status_byte_is_dropped() -> None:
    assert parse([0xF0, 1, 2, 0x90, 60, 100]) == [note(60, 100)]


def test_sysex_end_without_start_and_no_running_status_after_sysex() -> None:
    parser = MidiStreamParser()
    assert parser.feed([0xF7, 0x90, 60, 100, 0xF0, 1, 0xF7, 62, 90]) != []
    assert parser.stray == 2  # 62 90 after a sysex: running status was cancelled


def test_overlong_sysex_is_dropped() -> None:
    parser = MidiStreamParser(max_sysex=10)
    out = parser.feed([0xF0, *([1] * 50), 0xF7, 0x90, 60, 100])
    assert [str(m) for m in out] == [note(60, 100)]
    assert parser.stray > 0


def test_stray_data_before_any_status() -> None:
    parser = MidiStreamParser()
    assert [str(m) for m in parser.feed([1, 2, 3, 0x90, 60, 100])] == [note(60, 100)]
    assert parser.stray == 3


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 4096])
def test_any_chunking_gives_the_same_messages(chunk: int) -> None:
    data = bytes([0x90, 60, 0xF8, 100, 62, 90, 0xB0, 7, 0xFE, 100, 0xE1, 0, 64, 0xF0, 1, 0xF7])
    whole = parse(data)
    parser = MidiStreamParser()
    parts: list[str] = []
    for i in range(0, len(data), chunk):
        parts.extend(str(m) for m in parser.feed(data[i:i + chunk]))
    assert parts == whole
    assert len(whole) == 7


def _random_messages(rng: random.Random, count: int) -> list[mido.Message]:
    out = []
    for _ in range(count):
        ch = rng.randrange(16)
        kind = rng.choice(["note_on", "note_off", "control_change", "program_change",
                           "pitchwheel", "aftertouch", "polytouch", "sysex"])
        if kind in ("note_on", "note_off"):
            msg = mido.Message(kind, channel=ch, note=rng.randrange(128),
                               velocity=rng.randrange(128))
        elif kind == "control_change":
            msg = mido.Message(kind, channel=ch, control=rng.randrange(128),
                               value=rng.randrange(128))
        elif kind == "program_change":
            msg = mido.Message(kind, channel=ch, program=rng.randrange(128))
        elif kind == "pitchwheel":
            msg = mido.Message(kind, channel=ch, pitch=rng.randrange(-8192, 8192))
        elif kind == "aftertouch":
            msg = mido.Message(kind, channel=ch, value=rng.randrange(128))
        elif kind == "polytouch":
            msg = mido.Message(kind, channel=ch, note=rng.randrange(128),
                               value=rng.randrange(128))
        else:
            msg = mido.Message(kind, data=[rng.randrange(128) for _ in range(rng.randrange(8))])
        out.append(msg)
    return out


def _encode(rng: random.Random, messages: list[mido.Message]) -> bytes:
    """Running status wherever the sender may use it, clock bytes sprinkled anywhere."""
    out: list[int] = []
    running = 0
    for msg in messages:
        data = msg.bytes()
        if data[0] < 0xF0 and data[0] == running:
            data = data[1:]
        running = msg.bytes()[0] if msg.bytes()[0] < 0xF0 else 0
        for byte in data:
            if rng.random() < 0.1:
                out.append(0xF8)
            out.append(byte)
    return bytes(out)


@pytest.mark.parametrize("seed", range(5))
def test_random_streams_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    messages = _random_messages(rng, 500)
    data = _encode(rng, messages)
    parser = MidiStreamParser()
    got: list[mido.Message] = []
    pos = 0
    while pos < len(data):
        step = rng.randrange(1, 40)
        got.extend(parser.feed(data[pos:pos + step]))
        pos += step
    assert [m for m in got if m.type != "clock"] == messages
    assert parser.stray == 0


def test_burst_of_2000_notes_in_running_status() -> None:
    data = bytearray([0x90])
    for i in range(2000):
        data += bytes([i % 128, 1 + i % 127])
    got = MidiStreamParser().feed(bytes(data))
    assert [(m.note, m.velocity) for m in got] == [(i % 128, 1 + i % 127) for i in range(2000)]
