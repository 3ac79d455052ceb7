"""Standard MIDI Files <-> timed MIDI messages (pure: no I/O besides mido's file reading).

Export writes a type 0 file (one track) with ``ticks_per_beat = 500`` and the default tempo
(500,000 us per beat), so one tick is exactly one millisecond and ``midi_ts`` differences go into
the file unchanged. Only what a Standard MIDI File can hold is written: channel messages and
sysex; real-time and system common messages (clock, start, songpos, ...) are left out.
Import reads any type 0 or 1 file (tempo changes included) as offsets in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import mido

from devices.midi.mapping import message_to_content

TICKS_PER_BEAT = 500
TEMPO = 500_000  # us per beat: 500 ticks per 0.5 s -> 1 tick = 1 ms
FILE_KINDS = frozenset({"note_on", "note_off", "polytouch", "control_change", "program_change",
                        "aftertouch", "pitchwheel", "sysex"})

Timed = tuple[int, mido.Message]  # (milliseconds from the start, message)


class SmfError(ValueError):
    """A file that is not a usable Standard MIDI File."""


def to_midifile(items: Iterable[tuple[mido.Message, int]], title: str = "") -> mido.MidiFile:
    """``(message, midi_ts)`` pairs in play order -> a type 0 MidiFile. A timestamp earlier than
    the one before (two senders' clocks) counts as no time passing: the order is kept."""
    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    if title:
        track.append(mido.MetaMessage("track_name", name=title))
    track.append(mido.MetaMessage("set_tempo", tempo=TEMPO))
    previous: int | None = None
    for msg, ts in items:
        if msg.type not in FILE_KINDS:
            continue
        delta = 0 if previous is None else max(0, ts - previous)
        previous = ts if previous is None else max(previous, ts)
        track.append(msg.copy(time=delta))
    track.append(mido.MetaMessage("end_of_track", time=0))
    return mid


def from_midifile(mid: mido.MidiFile) -> list[Timed]:
    """Every channel/sysex message of ``mid`` with its offset from the start in ms."""
    if mid.type == 2:
        raise SmfError("type 2 (asynchronous tracks) files are not supported")
    out: list[Timed] = []
    seconds = 0.0
    for msg in mid:  # merged tracks, delta times in seconds with tempo changes applied
        seconds += msg.time
        if not msg.is_meta and msg.type in FILE_KINDS:
            out.append((round(seconds * 1000), msg.copy(time=0)))
    return out


def read_file(path: Path) -> list[Timed]:
    try:
        mid = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise SmfError(f"{path}: not a readable Standard MIDI File ({exc})") from exc
    return from_midifile(mid)


def plan_batches(timed: list[Timed], window_ms: int, max_batch: int,
                 max_bytes: int = 48_000) -> list[list[Timed]]:
    """Group messages for replay the way the live batcher does: each group starts at a message
    and takes the following ones within ``window_ms`` of it, at most ``max_batch`` messages and
    about ``max_bytes`` of JSON (0 ms = one message per group). Order is kept."""
    groups: list[list[Timed]] = []
    current: list[Timed] = []
    size = 0
    for offset, msg in timed:
        item_size = len(json.dumps(message_to_content(msg, 10**12), separators=(",", ":"))) + 1
        if current and (window_ms <= 0 or offset - current[0][0] > window_ms
                        or len(current) >= max_batch or size + item_size > max_bytes):
            groups.append(current)
            current, size = [], 0
        current.append((offset, msg))
        size += item_size
    if current:
        groups.append(current)
    return groups
