"""The MIDI hardware side: the only module that opens device files, serial ports or ALSA.

Inputs deliver raw bytes (``on_bytes``) from the event loop; nothing here blocks the loop:

- ``fifo``: a named pipe (created with ``os.mkfifo`` if missing), opened ``O_RDWR |
  O_NONBLOCK`` so that writers coming and going never make it read end-of-file. This is the
  simulated hardware: tests and demos write MIDI bytes into it.
- ``rawmidi``: an ALSA raw MIDI device such as ``/dev/snd/midiC1D0`` (``O_NONBLOCK`` +
  ``loop.add_reader``). If it is missing or goes away (USB unplugged), it is reopened every 2 s.
- ``serial``: a serial port through pyserial (optional: ``pip install pyserial``), read the
  same way through its file descriptor; ``baud`` defaults to 31250.
- ``alsa``: an ALSA sequencer port through mido's python-rtmidi backend (optional: ``pip
  install python-rtmidi``); rtmidi's thread hands each message to the loop.

Outputs take mido messages: ``fifo`` (as above; bytes wait in the pipe for a reader), ``file``
(raw MIDI bytes appended to a file), ``rawmidi``, ``serial``, ``alsa``. Writes that would block
wait in a buffer (1 MiB at most, then whole messages are dropped with a warning).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import mido

from devices.midi.config import Endpoint

log = logging.getLogger(__name__)
OnBytes = Callable[[bytes], None]
REOPEN_S = 2.0
MAX_PENDING = 1024 * 1024
READ_SIZE = 4096


class DriverError(Exception):
    """A MIDI input/output that cannot be opened; the text says what and why."""


class MidiInput(Protocol):
    def start(self) -> None: ...
    def close(self) -> None: ...


class MidiOutput(Protocol):
    def send(self, msg: mido.Message) -> None: ...
    def close(self) -> None: ...


def missing_library(kind: str) -> str | None:
    """Why ``kind`` cannot work here (an optional library missing), or None."""
    module, package = {"serial": ("serial", "pyserial"),
                       "alsa": ("rtmidi", "python-rtmidi")}.get(kind, (None, None))
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError:
        return f"kind {kind} needs {package}: install it with `pip install {package}`"
    return None


def path_problem(ep: Endpoint) -> str | None:
    """What is wrong with a fifo/file endpoint's path before anything opens it, or None
    (device files and serial ports may appear later: they are not checked)."""
    if ep.kind not in ("fifo", "file") or ep.path is None:
        return None
    if not ep.path.parent.is_dir():
        return f"the folder {ep.path.parent} does not exist"
    if ep.kind == "fifo" and ep.path.exists() and not ep.path.is_fifo():
        return f"{ep.path} exists and is not a FIFO (named pipe)"
    if ep.kind == "file" and ep.path.is_dir():
        return f"{ep.path} is a folder"
    return None


def ensure_fifo(path: Path) -> None:
    """Create the named pipe if missing; refuse a path that is something else."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        try:
            os.mkfifo(path, 0o660)
        except OSError as exc:
            raise DriverError(f"cannot create the FIFO {path}: {exc.strerror}") from exc
        return
    if not stat.S_ISFIFO(mode):
        raise DriverError(f"{path} exists and is not a FIFO (named pipe)")


def _open_serial(path: Path, baud: int) -> Any:
    reason = missing_library("serial")
    if reason:
        raise DriverError(reason)
    import serial  # type: ignore[import-untyped, unused-ignore]

    try:  # pyserial opens the tty O_NONBLOCK on POSIX; we use its fd directly
        return serial.Serial(str(path), baudrate=baud, timeout=0, write_timeout=0)
    except (serial.SerialException, OSError) as exc:
        raise DriverError(f"cannot open the serial port {path}: {exc}") from exc


class FdInput:
    """A file descriptor read with ``loop.add_reader`` (fifo, rawmidi, serial)."""

    def __init__(self, ep: Endpoint, on_bytes: OnBytes) -> None:
        assert ep.path is not None
        self.ep = ep
        self.path = ep.path
        self.on_bytes = on_bytes
        self._fd: int | None = None
        self._serial: Any = None
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        self._warned = False

    def start(self) -> None:
        _prepare(self.ep)
        self._open()

    def _open(self) -> None:
        self._retry = None
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        try:
            if self.ep.kind == "serial":
                self._serial = _open_serial(self.path, self.ep.baud)
                fd = int(self._serial.fileno())
            else:
                flags = os.O_RDWR if self.ep.kind == "fifo" else os.O_RDONLY
                fd = os.open(self.path, flags | os.O_NONBLOCK | os.O_NOCTTY)
        except (OSError, DriverError) as exc:
            if self.ep.kind == "fifo":
                raise DriverError(f"cannot open MIDI input {self.path}: {exc}") from exc
            if not self._warned:
                log.warning("MIDI input %s is not available (%s); retrying every %.0f s",
                            self.path, exc, REOPEN_S)
                self._warned = True
            self._retry = loop.call_later(REOPEN_S, self._open)
            return
        self._fd = fd
        if self._warned:
            log.info("MIDI input %s is back", self.path)
        self._warned = False
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        fd = self._fd
        assert fd is not None
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("MIDI input %s failed: %s; reopening", self.path, exc)
                self._lost()
                return
            if not data:  # only a device going away gives end-of-file here
                log.warning("MIDI input %s went away; reopening", self.path)
                self._lost()
                return
            self.on_bytes(data)
            if len(data) < READ_SIZE:
                return

    def _lost(self) -> None:
        self._close_fd()
        self._warned = True
        self._retry = asyncio.get_running_loop().call_later(REOPEN_S, self._open)

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            _release(self._fd, self._serial)
            self._fd = self._serial = None

    def close(self) -> None:
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        self._close_fd()


class FdOutput:
    """Raw MIDI bytes to a fifo, file, rawmidi device or serial port, never blocking."""

    def __init__(self, ep: Endpoint) -> None:
        assert ep.path is not None
        self.ep = ep
        self.path = ep.path
        self._fd: int | None = None
        self._serial: Any = None
        self._pending = bytearray()
        self._writer = False
        self._tried_at = 0.0
        self.dropped = 0

    def start(self) -> None:
        """Open it; a missing rawmidi device or serial port is retried at the next send."""
        _prepare(self.ep)
        try:
            self._open()
        except DriverError as exc:
            if self.ep.kind in ("fifo", "file"):
                raise
            log.warning("%s; retrying when there is something to play", exc)

    def _open(self) -> None:
        self._tried_at = asyncio.get_running_loop().time()
        try:
            if self.ep.kind == "serial":
                self._serial = _open_serial(self.path, self.ep.baud)
                self._fd = int(self._serial.fileno())
            elif self.ep.kind == "file":
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            else:
                flags = os.O_RDWR if self.ep.kind == "fifo" else os.O_WRONLY
                self._fd = os.open(self.path, flags | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as exc:
            raise DriverError(f"cannot open MIDI output {self.path}: {exc.strerror}") from exc

    def send(self, msg: mido.Message) -> None:
        data = bytes(msg.bin())
        if self._fd is None and asyncio.get_running_loop().time() - self._tried_at > REOPEN_S:
            with contextlib.suppress(DriverError):
                self._open()
        if self._fd is None:
            self._drop(len(data), "it is not available")
            return
        if self._pending:
            if len(self._pending) + len(data) > MAX_PENDING:
                self._drop(len(data), "nobody reads it")
            else:
                self._pending += data
            return
        self._pending += data
        self._flush()

    def _drop(self, size: int, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("MIDI output %s: dropped %d message(s) so far (%s)", self.path,
                        self.dropped, why)

    def _flush(self) -> None:
        fd = self._fd
        if fd is None:
            return
        loop = asyncio.get_running_loop()
        while self._pending:
            try:
                written = os.write(fd, self._pending)
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("MIDI output %s failed: %s; %d bytes dropped, reopening", self.path,
                            exc, len(self._pending))
                self._pending.clear()
                self.close()
                return
            del self._pending[:written]
        if self._pending and not self._writer:
            loop.add_writer(fd, self._flush)
            self._writer = True
        elif not self._pending and self._writer:
            loop.remove_writer(fd)
            self._writer = False

    def close(self) -> None:
        if self._fd is None:
            return
        if self._writer:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_writer(self._fd)
            self._writer = False
        _release(self._fd, self._serial)
        self._fd = self._serial = None


def _prepare(ep: Endpoint) -> None:
    """Before a port's first open: create its FIFO, or refuse a kind whose library is missing."""
    assert ep.path is not None
    if ep.kind == "fifo":
        ensure_fifo(ep.path)
    reason = missing_library(ep.kind)
    if reason:
        raise DriverError(reason)


def _release(fd: int, serial: Any) -> None:
    """Close a port's serial object (which owns ``fd``) or else the file descriptor itself;
    errors are ignored (the device may already be gone)."""
    if serial is not None:
        with contextlib.suppress(Exception):
            serial.close()
    else:
        with contextlib.suppress(OSError):
            os.close(fd)


def _alsa_backend() -> Any:
    reason = missing_library("alsa")
    if reason:
        raise DriverError(reason)
    return mido.Backend("mido.backends.rtmidi", load=True)


def _alsa_name(wanted: str, names: list[str], what: str) -> str:
    for name in names:
        if name == wanted:
            return name
    for name in names:
        if name.startswith(wanted):
            return name
    raise DriverError(f"no ALSA MIDI {what} port named {wanted!r} (there are: "
                      f"{', '.join(names) or 'none'})")


class AlsaInput:
    """An ALSA sequencer port through python-rtmidi (via mido's backend)."""

    def __init__(self, ep: Endpoint, on_bytes: OnBytes) -> None:
        self.ep = ep
        self.on_bytes = on_bytes
        self._port: Any = None

    def start(self) -> None:
        backend = _alsa_backend()
        loop = asyncio.get_running_loop()

        def callback(msg: mido.Message) -> None:  # rtmidi's thread
            loop.call_soon_threadsafe(self.on_bytes, bytes(msg.bin()))

        assert self.ep.port is not None
        try:
            name = self.ep.port if self.ep.virtual else _alsa_name(
                self.ep.port, backend.get_input_names(), "input")
            self._port = backend.open_input(name, virtual=self.ep.virtual, callback=callback)
        except Exception as exc:  # rtmidi raises its own RtMidiError family
            raise DriverError(f"cannot open ALSA MIDI input {self.ep.port!r}: {exc}") from exc

    def close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None


class AlsaOutput:
    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self._port: Any = None

    def start(self) -> None:
        backend = _alsa_backend()
        assert self.ep.port is not None
        try:
            name = self.ep.port if self.ep.virtual else _alsa_name(
                self.ep.port, backend.get_output_names(), "output")
            self._port = backend.open_output(name, virtual=self.ep.virtual)
        except Exception as exc:  # rtmidi raises its own RtMidiError family
            raise DriverError(f"cannot open ALSA MIDI output {self.ep.port!r}: {exc}") from exc

    def send(self, msg: mido.Message) -> None:
        if self._port is not None:
            try:
                self._port.send(msg)
            except Exception as exc:  # rtmidi's errors: a port that went away
                log.warning("ALSA MIDI output %r failed: %s", self.ep.port, exc)

    def close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None


def open_input(ep: Endpoint, on_bytes: OnBytes) -> FdInput | AlsaInput | None:
    """Start reading ``ep`` (None for kind none); DriverError when it cannot work at all."""
    if ep.kind == "none":
        return None
    driver: FdInput | AlsaInput = AlsaInput(ep, on_bytes) if ep.kind == "alsa" else FdInput(
        ep, on_bytes)
    driver.start()
    return driver


def open_output(ep: Endpoint) -> FdOutput | AlsaOutput | None:
    """Open ``ep`` for writing (None for kind none); DriverError when it cannot be opened."""
    if ep.kind == "none":
        return None
    driver: FdOutput | AlsaOutput = AlsaOutput(ep) if ep.kind == "alsa" else FdOutput(ep)
    driver.start()
    return driver
