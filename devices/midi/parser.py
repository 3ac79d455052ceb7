"""A MIDI 1.0 byte-stream tokenizer: bytes from a device file, serial port or FIFO -> mido
messages, with running status and real-time bytes handled as the MIDI 1.0 spec says.

Why not ``mido.Parser``: measured with mido 1.3.3, its tokenizer (``mido/tokenizer.py``)
clears the status after every complete message and on every real-time byte, so

- ``90 3C 64 3E 5A`` (a note-on, then a second one in running status) gives ONE note: the
  running-status data bytes are dropped as stray bytes;
- ``90 3C F8 64`` (a MIDI clock inside a note-on, which real hardware sends all the time)
  gives only the clock: the note is lost.

Both are legal MIDI (MIDI 1.0 Detailed Specification, "Running Status" and "Real Time
Messages": real-time bytes may appear anywhere, even between the bytes of another message, and
do not affect running status). So this small state machine splits the stream and hands every
complete message to ``mido.Message.from_bytes`` (mido still builds and checks the messages).

Rules:
1. Real-time bytes (F8..FF) are emitted at once and change nothing else; the undefined ones
   (F9, FD) are ignored.
2. A channel status byte (80..EF) starts a message and becomes the running status: further data
   bytes without a status byte start another message of the same kind.
3. System common bytes (F1..F6) cancel running status; F4/F5 are undefined and ignored.
4. F0 starts a System Exclusive message that ends at F7; any other non-real-time status byte
   ends it early (the truncated sysex is dropped). Sysex longer than ``max_sysex`` is dropped.
5. Data bytes with no status to belong to are counted in ``stray`` and dropped.
"""

from __future__ import annotations

import mido

SYSEX_START = 0xF0
SYSEX_END = 0xF7
# Data bytes after the status byte, for the status bytes that start a message.
_CHANNEL_DATA = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_COMMON_DATA = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0}
_REALTIME = frozenset({0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF})
DEFAULT_MAX_SYSEX = 12 * 1024  # bytes; more would not fit one event as JSON (65536 bytes)


class MidiStreamParser:
    """Feed bytes in any chunking; get complete ``mido.Message``s back in stream order."""

    def __init__(self, max_sysex: int = DEFAULT_MAX_SYSEX) -> None:
        self.max_sysex = max_sysex
        self.stray = 0  # data bytes dropped (no status, or an over-long sysex)
        self._status = 0  # the status of the message being gathered (or running status)
        self._need = 0  # data bytes that message needs
        self._data: list[int] = []
        self._sysex: list[int] | None = None
        self._sysex_overflow = False

    def feed(self, data: bytes | bytearray | list[int]) -> list[mido.Message]:
        out: list[mido.Message] = []
        for byte in data:
            if byte >= 0xF8:
                if byte in _REALTIME:  # 1.
                    out.append(mido.Message.from_bytes([byte]))
            elif byte >= 0x80:
                self._status_byte(byte, out)
            else:
                self._data_byte(byte, out)
        return out

    def _status_byte(self, byte: int, out: list[mido.Message]) -> None:
        if self._sysex is not None:  # 4. any status byte ends a sysex
            if byte == SYSEX_END and not self._sysex_overflow:
                self._sysex.append(SYSEX_END)
                out.append(mido.Message.from_bytes(self._sysex))
            self._sysex = None
            if byte == SYSEX_END:
                return
        self._data = []
        if byte < 0xF0:  # 2.
            self._status = byte
            self._need = _CHANNEL_DATA[byte & 0xF0]
        elif byte == SYSEX_START:  # 4.
            self._status = 0
            self._sysex = [SYSEX_START]
            self._sysex_overflow = False
        elif byte in _COMMON_DATA:  # 3.
            self._status = byte
            self._need = _COMMON_DATA[byte]
            if self._need == 0:
                out.append(mido.Message.from_bytes([byte]))
                self._status = 0
        else:  # 3. F4, F5 undefined; a lone F7
            self._status = 0

    def _data_byte(self, byte: int, out: list[mido.Message]) -> None:
        if self._sysex is not None:
            if len(self._sysex) > self.max_sysex:
                self._sysex_overflow = True
                self.stray += 1
            else:
                self._sysex.append(byte)
            return
        if not self._status:  # 5.
            self.stray += 1
            return
        self._data.append(byte)
        if len(self._data) == self._need:
            out.append(mido.Message.from_bytes([self._status, *self._data]))
            self._data = []
            if self._status >= 0xF0:  # 3. system common: no running status
                self._status = 0
