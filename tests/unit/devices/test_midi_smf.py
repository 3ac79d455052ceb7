"""devices.midi.smf: timed messages <-> Standard MIDI Files, and replay batching."""

from pathlib import Path

import mido
import pytest

from devices.midi.smf import SmfError, from_midifile, plan_batches, read_file, to_midifile

T0 = 1_700_000_000_000


def n(note: int, vel: int = 64, kind: str = "note_on") -> mido.Message:
    return mido.Message(kind, note=note, velocity=vel)


def test_export_then_read_keeps_messages_and_ms_timing(tmp_path: Path) -> None:
    items = [(n(60), T0), (n(62), T0 + 250), (n(60, 0, "note_off"), T0 + 250),
             (mido.Message("control_change", control=64, value=127, channel=3), T0 + 1001),
             (mido.Message("pitchwheel", pitch=-100), T0 + 1500),
             (mido.Message("sysex", data=[1, 2, 3]), T0 + 1510)]
    path = tmp_path / "out.mid"
    to_midifile(items, title="keys").save(str(path))
    got = read_file(path)
    assert got == [(ts - T0, msg) for msg, ts in items]
    mid = mido.MidiFile(str(path))
    assert (mid.type, mid.ticks_per_beat, len(mid.tracks)) == (0, 500, 1)
    assert mid.tracks[0].name == "keys"


def test_time_going_backwards_keeps_order_with_no_pause() -> None:
    items = [(n(1), T0 + 100), (n(2), T0 + 50), (n(3), T0 + 150)]
    assert [(off, m.note) for off, m in from_midifile(to_midifile(items))] == [
        (0, 1), (0, 2), (50, 3)]


def test_realtime_and_common_messages_are_left_out() -> None:
    items = [(n(1), T0), (mido.Message("clock"), T0 + 1), (mido.Message("songpos", pos=4), T0 + 2),
             (n(2), T0 + 3)]
    assert [(off, m.note) for off, m in from_midifile(to_midifile(items))] == [(0, 1), (3, 2)]


def test_type_1_file_with_tempo_changes(tmp_path: Path) -> None:
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    tempo_track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=1_000_000, time=0),
                                  mido.MetaMessage("set_tempo", tempo=500_000, time=480)])
    notes = mido.MidiTrack([n(60).copy(time=0), n(61).copy(time=480), n(62).copy(time=480)])
    mid.tracks.extend([tempo_track, notes])
    path = tmp_path / "t1.mid"
    mid.save(str(path))
    # 480 ticks at 1 s/beat, then 480 ticks at 0.5 s/beat
    assert [(off, m.note) for off, m in read_file(path)] == [(0, 60), (1000, 61), (1500, 62)]


def test_type_2_and_garbage_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SmfError, match="type 2"):
        from_midifile(mido.MidiFile(type=2))
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file at all")
    with pytest.raises(SmfError, match="not a readable Standard MIDI File"):
        read_file(bad)


def test_plan_batches() -> None:
    timed = [(0, n(1)), (5, n(2)), (20, n(3)), (21, n(4)), (100, n(5))]
    notes = lambda groups: [[m.note for _, m in g] for g in groups]  # noqa: E731
    assert notes(plan_batches(timed, 0, 500)) == [[1], [2], [3], [4], [5]]
    assert notes(plan_batches(timed, 20, 500)) == [[1, 2, 3], [4], [5]]
    assert notes(plan_batches(timed, 20, 2)) == [[1, 2], [3, 4], [5]]
    assert notes(plan_batches(timed, 1000, 500, max_bytes=200)) == [[1, 2], [3, 4], [5]]
    burst = [(0, n(i % 128)) for i in range(2000)]
    groups = plan_batches(burst, 20, 500)
    assert [len(g) for g in groups] == [500] * 4
    assert [m for g in groups for _, m in g] == [m for _, m in burst]
