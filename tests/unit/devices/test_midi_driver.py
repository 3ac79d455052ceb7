"""devices.midi.driver with real FIFOs and files (the simulated hardware), and a Port between a
FIFO and a fake intent: bytes in -> event contents in order; played messages -> output bytes."""

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mido
import pytest
from support import write_fifo

from devices.midi.config import Endpoint, PortConfig
from devices.midi.device import MidiClock, Port
from devices.midi.driver import DriverError, FdInput, ensure_fifo, open_input, open_output

WAIT_S = 10.0


async def until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {WAIT_S}s: {what}")
        await asyncio.sleep(0.005)


async def test_fifo_input_survives_writers_coming_and_going(tmp_path: Path) -> None:
    got = bytearray()
    path = tmp_path / "in.fifo"
    driver = open_input(Endpoint("fifo", path), got.extend)
    assert driver is not None
    try:
        assert path.is_fifo()
        write_fifo(path, b"\x90\x3c\x64", nonblock=True)
        await until(lambda: len(got) == 3, "first write")
        # A second writer after the first closed (no EOF loop).
        write_fifo(path, b"\x3e\x5a", nonblock=True)
        await until(lambda: len(got) == 5, "second write")
        assert bytes(got) == b"\x90\x3c\x64\x3e\x5a"
    finally:
        driver.close()


async def test_file_and_fifo_outputs(tmp_path: Path) -> None:
    file_out = open_output(Endpoint("file", tmp_path / "out.raw"))
    fifo_out = open_output(Endpoint("fifo", tmp_path / "out.fifo"))
    assert file_out is not None and fifo_out is not None
    msgs = [mido.Message("note_on", note=60, velocity=100), mido.Message("pitchwheel", pitch=0)]
    for msg in msgs:
        file_out.send(msg)
        fifo_out.send(msg)
    expected = b"".join(bytes(m.bin()) for m in msgs)
    reader = os.open(tmp_path / "out.fifo", os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert os.read(reader, 100) == expected
    finally:
        os.close(reader)
        file_out.close()
        fifo_out.close()
    assert (tmp_path / "out.raw").read_bytes() == expected


async def test_fifo_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("plain")
    with pytest.raises(DriverError, match="exists and is not a FIFO"):
        ensure_fifo(tmp_path / "x")
    with pytest.raises(DriverError, match="cannot create the FIFO"):
        ensure_fifo(tmp_path / "missing-dir" / "in.fifo")


async def test_rawmidi_device_missing_then_appearing_then_going_away(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("devices.midi.driver.REOPEN_S", 0.02)
    path = tmp_path / "midiC1D0"  # a FIFO stands in for the device file
    got = bytearray()
    driver = FdInput(Endpoint("rawmidi", path), got.extend)
    driver.start()  # missing: no error, retried
    try:
        os.mkfifo(path)
        writer = None
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while writer is None:  # opening the write end works once the driver reads it
            try:
                writer = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                assert asyncio.get_running_loop().time() < deadline, "driver never opened it"
                await asyncio.sleep(0.01)
        os.write(writer, b"\x90\x3c\x64")
        await until(lambda: bytes(got) == b"\x90\x3c\x64", "bytes from the device")
        os.close(writer)  # read-only end sees end-of-file: the device "went away"
        await asyncio.sleep(0.05)
        write_fifo_retry = 0
        while True:
            try:
                write_fifo(path, b"\xb0\x07\x64", nonblock=True)
                break
            except OSError:
                write_fifo_retry += 1
                assert write_fifo_retry < 1000
                await asyncio.sleep(0.01)
        await until(lambda: bytes(got).endswith(b"\xb0\x07\x64"), "bytes after reopening")
    finally:
        driver.close()


class FakeIntent:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def send_event(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        self.sent.append((room_id, event_type, content))
        return f"$e{len(self.sent)}"


def contents(intent: FakeIntent) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _, _, content in intent.sent:
        out.extend(content.get("batch", [content]))
    return out


@pytest.mark.parametrize("window", [0, 20])
async def test_port_fifo_to_events_in_order(tmp_path: Path, window: int) -> None:
    config = PortConfig("keys", Endpoint("fifo", tmp_path / "in.fifo"),
                        Endpoint("file", tmp_path / "out.raw"), batch_window_ms=window)
    intent = FakeIntent()
    port = Port(config, intent, "!room:test.local", MidiClock())  # type: ignore[arg-type]
    port.start()
    try:
        data = bytearray([0x90])
        for i in range(2000):
            data += bytes([i % 128, 1 + i % 127])
            if i % 100 == 0:
                data += b"\xf8"  # clock, not forwarded by default
        write_fifo(tmp_path / "in.fifo", bytes(data[:3001]), nonblock=True)
        write_fifo(tmp_path / "in.fifo", bytes(data[3001:]), nonblock=True)
        await until(lambda: len(contents(intent)) == 2000, "2000 notes as events")
        got = contents(intent)
        assert [(c["note"], c["velocity"]) for c in got] == [
            (i % 128, 1 + i % 127) for i in range(2000)]
        assert all(c["kind"] == "note" and c["state"] == "on" and c["channel"] == 1
                   for c in got)
        stamps = [c["midi_ts"] for c in got]
        assert stamps == sorted(stamps)
        assert {room for room, _, _ in intent.sent} == {"!room:test.local"}
        assert {kind for _, kind, _ in intent.sent} == {"org.edgehs.midi"}
        if window == 0:
            assert len(intent.sent) == 2000
        else:
            assert len(intent.sent) < 2000

        port.play([(mido.Message("note_on", note=60, velocity=1), 1000),
                   (mido.Message("note_off", note=60), 1001)])
        await until(lambda: (tmp_path / "out.raw").stat().st_size == 6, "played bytes")
        assert (tmp_path / "out.raw").read_bytes() == b"\x90\x3c\x01\x80\x3c\x40"
    finally:
        await port.close()


async def test_serial_port_in_and_out_through_a_pty(tmp_path: Path) -> None:
    """kind serial with pyserial on a pseudo-terminal (the slave end is the 'port')."""
    pytest.importorskip("serial")
    master, slave = os.openpty()
    name = Path(os.ttyname(slave))
    got = bytearray()
    driver_in = open_input(Endpoint("serial", name, baud=31250), got.extend)
    driver_out = open_output(Endpoint("serial", name, baud=31250))
    assert driver_in is not None and driver_out is not None
    try:
        os.write(master, b"\x90\x3c\x64\xf8\x3e\x5a")
        await until(lambda: len(got) == 6, "bytes from the serial port")
        assert bytes(got) == b"\x90\x3c\x64\xf8\x3e\x5a"
        driver_out.send(mido.Message("control_change", control=7, value=100))
        await asyncio.sleep(0)
        assert os.read(master, 100) == b"\xb0\x07\x64"
    finally:
        driver_in.close()
        driver_out.close()
        os.close(master)
        os.close(slave)
