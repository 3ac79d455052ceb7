"""The MIDI device service end to end: a real edgehs, ``python -m devices.midi`` as a separate
process with a FIFO as its MIDI input and a file as its MIDI output, members over raw HTTP.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import mido
import pytest
from devices_support import *  # noqa: F403  (the device fixtures)
from devices_support import (
    OWNER,
    SERVER_NAME,
    DeviceProcess,
    DevicesSetup,
    MatrixUser,
    q,
    run_module,
)
from support import write_fifo

from devices.midi.smf import read_file

pytestmark = pytest.mark.integration

StartDevice = Callable[..., Awaitable[DeviceProcess]]
MakeUser = Callable[[str], Awaitable[MatrixUser]]
KEYS = f"@midi_keys:{SERVER_NAME}"
ALIAS = f"#midi_keys:{SERVER_NAME}"
MIDI = "org.edgehs.midi"
V3 = "/_matrix/client/v3"
WAIT_S = 60.0


@pytest.fixture
def device_services() -> list[str]:
    return ["midi"]


def use_file_output(devices: DevicesSetup, **port: Any) -> Path:
    """The port's output becomes a plain file the test reads (raw MIDI bytes appended)."""
    out = devices.dir / "midi-out.raw"

    def change(section: dict[str, Any]) -> None:
        section["ports"][0]["output"] = {"kind": "file", "path": str(out)}
        section["ports"][0].update(port)
    devices.update("midi", change)
    return out


def midi_messages(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-message contents of the room's MIDI events from the port's user, in order."""
    out: list[dict[str, Any]] = []
    for event in events:
        if event.get("type") == MIDI and event.get("sender") == KEYS:
            content = event["content"]
            out.extend(content.get("batch", [content]))
    return out


async def wait_messages(user: MatrixUser, room_id: str, count: int,
                        timeout: float = WAIT_S) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        got = midi_messages(await user.messages(room_id))
        if len(got) >= count or time.monotonic() > deadline:
            assert len(got) == count, f"{len(got)} MIDI messages in the room, wanted {count}"
            return got
        await asyncio.sleep(0.1)


async def wait_bytes(path: Path, size: int, timeout: float = WAIT_S) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        data = path.read_bytes() if path.exists() else b""
        if len(data) >= size or time.monotonic() > deadline:
            assert len(data) == size, f"{len(data)} bytes played, wanted {size}: {data.hex()}"
            return data
        await asyncio.sleep(0.05)


def shape(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k != "midi_ts"} for c in items]


def note(n: int, v: int, state: str = "on", channel: int = 1) -> dict[str, Any]:
    return {"kind": "note", "state": state, "note": n, "velocity": v, "channel": channel}


async def start_keys(devices: DevicesSetup, owner: MatrixUser,
                     device_process: StartDevice) -> tuple[DeviceProcess, str]:
    proc = await device_process("midi")
    room_id = await owner.join_when_invited(ALIAS)
    return proc, room_id


async def test_fifo_bytes_become_events_in_order(devices: DevicesSetup, owner: MatrixUser,
                                                 device_process: StartDevice) -> None:
    use_file_output(devices)
    _, room_id = await start_keys(devices, owner, device_process)
    power = await owner.state_event(room_id, "m.room.power_levels")
    assert power is not None and power["users"][OWNER] == 50

    fifo = devices.dir / "midi-in.fifo"
    # running status (3 notes after one 0x90), a clock inside a note and between running-status
    # notes, active sensing, then CC 7, program change, pitch bend on channel 2, a note off
    write_fifo(fifo, bytes([0x90, 71, 0xF8, 68, 72, 70, 0xFE, 74, 0, 0xB0, 7, 100,
                            0xC0, 5, 0xE1, 0x00, 0x60, 0x80, 71, 64]))
    got = await wait_messages(owner, room_id, 7)
    assert shape(got) == [
        note(71, 68), note(72, 70), note(74, 0, "off"),
        {"kind": "control_change", "control": 7, "value": 100, "channel": 1},
        {"kind": "program_change", "program": 5, "channel": 1},
        {"kind": "pitchwheel", "pitch": 0x60 * 128 - 8192, "channel": 2},
        note(71, 64, "off"),
    ]
    now_ms = time.time() * 1000
    assert all(isinstance(c["midi_ts"], int) and abs(c["midi_ts"] - now_ms) < 600_000
               for c in got)

    # a burst of 2,000 notes in running status: all arrive, in order, batched into few events
    burst = bytearray([0x90])
    for i in range(2000):
        burst += bytes([i % 128, 1 + i % 127])
    write_fifo(fifo, bytes(burst))
    got = await wait_messages(owner, room_id, 7 + 2000)
    assert [(c["note"], c["velocity"]) for c in got[7:]] == [
        (i % 128, 1 + i % 127) for i in range(2000)]
    stamps = [c["midi_ts"] for c in got]
    assert stamps == sorted(stamps)
    events = [e for e in await owner.messages(room_id) if e["type"] == MIDI]
    batches = [e for e in events if "batch" in e["content"]]
    assert batches and len(events) < 7 + 2000
    assert all(len(e["content"]["batch"]) <= 500 for e in batches)


async def test_member_midi_is_played_and_low_power_refused(
        devices: DevicesSetup, owner: MatrixUser, make_user: MakeUser,
        device_process: StartDevice) -> None:
    out = use_file_output(devices)
    _, room_id = await start_keys(devices, owner, device_process)
    bob = await make_user("bob")
    await owner.request("POST", f"{V3}/rooms/{q(room_id)}/invite", json={"user_id": bob.user_id})
    await bob.join(room_id)

    # the issue's own shape (no "kind") from the owner, power 50: played
    await owner.send(room_id, {"note": 71, "velocity": 68, "state": "on", "channel": 1,
                               "midi_ts": 1}, MIDI)
    assert await wait_bytes(out, 3) == bytes([0x90, 71, 68])

    # bob has power 0: refused with a notice naming him, nothing played
    refused = await bob.send(room_id, {**note(60, 100), "midi_ts": 1}, MIDI)
    await owner.wait_for(
        room_id, type="m.room.message", sender=KEYS, after=refused,
        body=f"{bob.user_id} may not play MIDI here: needs power 50 (has 0)")
    # bad content from the owner: a notice naming the field, nothing played
    bad = await owner.send(room_id, {"kind": "note", "state": "on", "note": 60,
                                     "velocity": 300, "channel": 1}, MIDI)
    notice = await owner.wait_for(room_id, type="m.room.message", sender=KEYS, after=bad)
    assert notice["content"]["msgtype"] == "m.notice"
    assert "velocity: must be an integer 0..127, not 300" in notice["content"]["body"]

    # a batch from the owner: played in order (after everything above was handled)
    await owner.send(room_id, {"batch": [
        {**note(60, 90, channel=10), "midi_ts": 1000},
        {"kind": "control_change", "control": 64, "value": 127, "channel": 1, "midi_ts": 1005},
        {**note(60, 0, "off", channel=10), "midi_ts": 1010},
    ]}, MIDI)
    played = await wait_bytes(out, 3 + 9)
    assert played == bytes([0x90, 71, 68, 0x99, 60, 90, 0xB0, 64, 127, 0x89, 60, 0])


async def test_export_replay_round_trip(devices: DevicesSetup, owner: MatrixUser,
                                        device_process: StartDevice, tmp_path: Path) -> None:
    out = use_file_output(devices)
    _, room_id = await start_keys(devices, owner, device_process)
    fifo = devices.dir / "midi-in.fifo"
    phrase = [bytes([0x90, 60, 100]), bytes([0xB0, 1, 64, 0x90, 64, 90]),
              bytes([0x80, 60, 0, 0xE0, 0, 0x50]), bytes([0x80, 64, 10])]
    for chunk in phrase:  # some time between the parts: real timing goes into the file
        write_fifo(fifo, chunk)
        await asyncio.sleep(0.15)
    await wait_messages(owner, room_id, 6)

    config = str(devices.config_path)
    first, second = tmp_path / "first.mid", tmp_path / "second.mid"
    done = run_module("devices.midi", "export", "-c", config, "keys", str(first))
    assert done.returncode == 0, done.stderr
    assert "wrote 6 MIDI messages" in done.stdout
    timed = read_file(first)
    assert [str(m) for _, m in timed] == [str(m) for m in [
        mido.Message("note_on", note=60, velocity=100),
        mido.Message("control_change", control=1, value=64),
        mido.Message("note_on", note=64, velocity=90),
        mido.Message("note_off", note=60, velocity=0),
        mido.Message("pitchwheel", pitch=0x50 * 128 - 8192),
        mido.Message("note_off", note=64, velocity=10)]]
    offsets = [off for off, _ in timed]
    assert offsets == sorted(offsets) and offsets[-1] > 0

    # replay into another room as the port's user, export that room: the same file content
    other = await owner.request("POST", f"{V3}/createRoom", json={
        "name": "replay", "invite": [KEYS]})
    other_id = other["room_id"]
    done = run_module("devices.midi", "replay", "-c", config, str(first), other_id,
                      "--no-timing")
    assert done.returncode == 0, done.stderr
    assert "replayed 6 MIDI messages" in done.stdout
    done = run_module("devices.midi", "export", "-c", config, other_id, str(second))
    assert done.returncode == 0, done.stderr
    assert [(off, str(m)) for off, m in read_file(second)] == [
        (off, str(m)) for off, m in timed]

    # replayed by the owner (her token) into the port's room: played to the MIDI output
    done = run_module("devices.midi", "replay", "--token", owner.token, "-c", config,
                      str(first), "keys", "--speed", "4")
    assert done.returncode == 0, done.stderr
    expected = b"".join(bytes(m.bin()) for _, m in timed)
    assert await wait_bytes(out, len(expected)) == expected

    # tool errors are one clear line
    done = run_module("devices.midi", "export", "-c", config, "#nope:test.local", str(second))
    assert done.returncode == 1 and done.stderr.startswith("error: no room #nope:test.local")
    (tmp_path / "junk.mid").write_bytes(b"junk")
    done = run_module("devices.midi", "replay", "-c", config, str(tmp_path / "junk.mid"), "keys")
    assert done.returncode == 1 and "not a readable Standard MIDI File" in done.stderr


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_survives_edgehs_restart(server: Any, devices: DevicesSetup, owner: MatrixUser,
                                       device_process: StartDevice, how: str) -> None:
    out = use_file_output(devices)
    proc, room_id = await start_keys(devices, owner, device_process)
    fifo = devices.dir / "midi-in.fifo"

    def notes(start: int, count: int) -> bytes:
        return bytes([0x90]) + b"".join(bytes([i % 128, 1 + i % 100])
                                        for i in range(start, start + count))

    write_fifo(fifo, notes(0, 100))
    await wait_messages(owner, room_id, 100)
    write_fifo(fifo, notes(100, 1000))  # still being sent when edgehs goes away
    await (server.stop() if how == "stop" else server.kill())
    for part in range(5):  # played while edgehs is down: queued in order, retried
        write_fifo(fifo, notes(1100 + part * 100, 100))
        await asyncio.sleep(0.1)
    await server.start()
    got = await wait_messages(owner, room_id, 1600)  # each exactly once (txn ids kept)
    assert [(c["note"], c["velocity"]) for c in got] == [
        (i % 128, 1 + i % 100) for i in range(1600)]
    assert proc.running
    assert "retrying" in proc.log_text()

    # and MIDI out still works: edgehs pushes to the service again
    await owner.send(room_id, {**note(61, 61), "midi_ts": 1}, MIDI)
    assert await wait_bytes(out, 3) == bytes([0x90, 61, 61])


async def test_bad_config_names_the_key(devices: DevicesSetup) -> None:
    config = str(devices.config_path)

    def kind(section: dict[str, Any]) -> None:
        section["ports"][0]["input"]["kind"] = "usb"
    devices.update("midi", kind)
    done = run_module("devices.midi", "-c", config)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: devices.yaml: midi.ports[0].input.kind: must be one of "
                                   "fifo, rawmidi, serial, alsa, none, not 'usb'")

    def window(section: dict[str, Any]) -> None:
        section["ports"][0]["input"]["kind"] = "fifo"
        section["ports"][0]["batch_window_ms"] = "soon"
    devices.update("midi", window)
    done = run_module("devices.midi", "-c", config)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: devices.yaml: midi.ports[0].batch_window_ms: must be "
                                   "an integer, not str 'soon'")

    def folder(section: dict[str, Any]) -> None:
        section["ports"][0]["batch_window_ms"] = 20
        section["ports"][0]["output"] = {"kind": "file", "path": "gone/out.raw"}
    devices.update("midi", folder)
    done = run_module("devices.midi", "-c", config)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: devices.yaml: midi.ports[0].output.path: the folder "
                                   f"{devices.dir / 'gone'} does not exist")
