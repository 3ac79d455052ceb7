"""The midi: section of devices.yaml: defaults, and errors naming the full key."""

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devices.common.config import DeviceConfigError, load_service_config
from devices.common.runner import load_checked
from devices.midi.config import DEFAULT_BAUD, Endpoint, parse_ports
from devices.midi.defaults import simulated_section
from devices.midi.device import MidiService
from devices.midi.mapping import DEFAULT_FORWARD


def write(tmp_path: Path, midi: dict[str, Any]) -> Path:
    raw = {
        "homeserver": {"url": "http://127.0.0.1:8008", "server_name": "test.local"},
        "owners": ["@owner:test.local"],
        "midi": {"appservice": {"listen": "127.0.0.1:9101", "as_token": "a" * 20,
                                "hs_token": "h" * 20}, **midi},
    }
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def port(**changes: Any) -> dict[str, Any]:
    return {"name": "keys", "input": {"kind": "fifo", "path": "in.fifo"},
            "output": {"kind": "file", "path": "out.raw"}, **changes}


def test_simulated_defaults_are_valid(tmp_path: Path) -> None:
    path = write(tmp_path, simulated_section(tmp_path))
    ports = parse_ports(load_checked(MidiService, path).section)
    assert [(p.name, p.input, p.output, p.batch_window_ms, p.max_batch, p.forward)
            for p in ports] == [
        ("keys", Endpoint("fifo", tmp_path / "midi-in.fifo"),
         Endpoint("fifo", tmp_path / "midi-out.fifo"), 20, 500, DEFAULT_FORWARD)]


def test_every_kind_and_default(tmp_path: Path) -> None:
    path = write(tmp_path, {"ports": [
        port(batch_window_ms=0, max_batch=1, forward=["note", "clock"]),
        {"name": "din", "input": {"kind": "rawmidi", "path": "/dev/snd/midiC1D0"},
         "output": {"kind": "none"}},
        {"name": "quiet"},
    ]})
    ports = parse_ports(load_service_config(path, "midi").section)
    assert ports[0].forward == ("note", "clock")
    assert (ports[0].batch_window_ms, ports[0].max_batch) == (0, 1)
    assert ports[1].input == Endpoint("rawmidi", Path("/dev/snd/midiC1D0"), baud=DEFAULT_BAUD)
    assert ports[1].output.kind == ports[2].input.kind == ports[2].output.kind == "none"


@pytest.mark.parametrize(("midi", "message"), [
    ({"ports": [port(input={"kind": "usb", "path": "x"})]},
     "devices.yaml: midi.ports[0].input.kind: must be one of fifo, rawmidi, serial, alsa, none, "
     "not 'usb'"),
    ({"ports": [port(), port(name="b", output={"kind": "fifo"})]},
     "devices.yaml: midi.ports[1].output.path: is required"),
    ({"ports": [port(batch_window_ms=-1)]},
     "devices.yaml: midi.ports[0].batch_window_ms: must be at least 0, not -1"),
    ({"ports": [port(max_batch=0)]},
     "devices.yaml: midi.ports[0].max_batch: must be at least 1, not 0"),
    ({"ports": [port(max_batch="many")]},
     "devices.yaml: midi.ports[0].max_batch: must be an integer, not str 'many'"),
    ({"ports": [port(forward=["note", "noise"])]},
     "devices.yaml: midi.ports[0].forward[1]: must be one of note, control_change"),
    ({"ports": [port(name="Big Keys")]}, "devices.yaml: midi.ports[0].name: must be lower-case"),
    ({"ports": [port(), port()]},
     "devices.yaml: midi.ports[1].name: 'keys' is already the name of ports[0]"),
    ({"ports": [port(colour="red")]},
     "devices.yaml: midi.ports[0].colour: unknown key (expected one of name, input"),
    ({"ports": [port(input={"kind": "fifo", "path": "x", "baud": 9600})]},
     "devices.yaml: midi.ports[0].input.baud: unknown key (expected one of kind, path)"),
    ({"ports": [port(input={"kind": "alsa"})]},
     "devices.yaml: midi.ports[0].input.port: is required"),
    ({"ports": []}, "devices.yaml: midi.ports: must list at least one port"),
    ({}, "devices.yaml: midi.ports: is required"),
    ({"ports": [port()], "port": []},
     "devices.yaml: midi.port: unknown key (expected one of ports)"),
    ({"ports": ["keys"]}, "devices.yaml: midi.ports[0]: must be a mapping, not str 'keys'"),
])
def test_bad_config_names_the_key(tmp_path: Path, midi: dict[str, Any], message: str) -> None:
    path = write(tmp_path, midi)
    with pytest.raises(DeviceConfigError) as info:
        load_checked(MidiService, path)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(("side", "kind", "package"), [
    ("input", "serial", "pyserial"), ("output", "alsa", "python-rtmidi")])
def test_missing_optional_library_names_the_key(tmp_path: Path, side: str, kind: str,
                                                package: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import serial` / `import rtmidi` fail, installed or not
    monkeypatch.setitem(sys.modules, "serial" if kind == "serial" else "rtmidi", None)
    endpoint = {"kind": kind, "path": "/dev/ttyUSB0"} if kind == "serial" else {
        "kind": kind, "port": "Keystation"}
    path = write(tmp_path, {"ports": [port(**{side: endpoint})]})
    with pytest.raises(DeviceConfigError) as info:
        load_checked(MidiService, path)
    assert str(info.value) == (f"devices.yaml: midi.ports[0].{side}.kind: kind {kind} needs "
                               f"{package}: install it with `pip install {package}`")


@pytest.mark.parametrize(("endpoint", "side", "reason"), [
    ({"kind": "fifo", "path": "nowhere/in.fifo"}, "input", "the folder {d}/nowhere does not exist"),
    ({"kind": "fifo", "path": "plain.txt"}, "input",
     "{d}/plain.txt exists and is not a FIFO (named pipe)"),
    ({"kind": "file", "path": "nowhere/out.raw"}, "output",
     "the folder {d}/nowhere does not exist"),
    ({"kind": "file", "path": "."}, "output", "{d} is a folder"),
])
def test_bad_paths_name_the_key(tmp_path: Path, endpoint: dict[str, Any], side: str,
                                reason: str) -> None:
    (tmp_path / "plain.txt").write_text("x")
    path = write(tmp_path, {"ports": [port(**{side: endpoint})]})
    with pytest.raises(DeviceConfigError) as info:
        load_checked(MidiService, path)
    assert str(info.value) == (f"devices.yaml: midi.ports[0].{side}.path: "
                               + reason.format(d=tmp_path))
