"""The ``midi:`` section of devices.yaml, checked once before anything starts.

```yaml
midi:
  appservice: {...}                 # the kit's part
  ports:
    - name: keys                    # -> @midi_keys:SERVER in #midi_keys:SERVER
      input:  {kind: fifo, path: midi-in.fifo}     # fifo | rawmidi | serial | alsa | none
      output: {kind: file, path: midi-out.raw}     # fifo | file | rawmidi | serial | alsa | none
      batch_window_ms: 20           # 0 = one event per message
      max_batch: 500                # messages per event at most
      forward: [note, control_change, program_change, pitchwheel, aftertouch, polytouch]
```
Input/output keys: ``path`` for fifo, file, rawmidi and serial; ``baud`` for serial (default
31250, the DIN MIDI rate); ``port`` for alsa (a port name or the start of one, as listed by
``mido.get_input_names()``; ``virtual: true`` creates a new ALSA port of that name instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devices.common.config import Section
from devices.midi.mapping import ALL_KINDS, DEFAULT_FORWARD

PORT_KEYS = ("name", "input", "output", "batch_window_ms", "max_batch", "forward")
INPUT_KINDS = ("fifo", "rawmidi", "serial", "alsa", "none")
OUTPUT_KINDS = ("fifo", "file", "rawmidi", "serial", "alsa", "none")
DEFAULT_WINDOW_MS = 20
DEFAULT_MAX_BATCH = 500
MAX_BATCH_LIMIT = 5000  # the batcher also cuts an event at 48 KB of JSON
DEFAULT_BAUD = 31250


@dataclass(frozen=True)
class Endpoint:
    """One side of a port: ``kind`` plus where it is."""

    kind: str
    path: Path | None = None
    port: str | None = None
    baud: int = DEFAULT_BAUD
    virtual: bool = False


@dataclass(frozen=True)
class PortConfig:
    name: str
    input: Endpoint
    output: Endpoint
    batch_window_ms: int = DEFAULT_WINDOW_MS
    max_batch: int = DEFAULT_MAX_BATCH
    forward: tuple[str, ...] = DEFAULT_FORWARD


def _endpoint(port: Section, key: str, kinds: tuple[str, ...]) -> Endpoint:
    if not port.has(key):
        return Endpoint("none")
    sect = port.section(key)
    kind = sect.choice("kind", kinds)
    if kind == "none":
        sect.check_keys(("kind",))
        return Endpoint("none")
    if kind == "alsa":
        sect.check_keys(("kind", "port", "virtual"))
        return Endpoint(kind, port=sect.str("port"), virtual=sect.bool("virtual", False))
    if kind == "serial":
        sect.check_keys(("kind", "path", "baud"))
        return Endpoint(kind, path=sect.path("path"),
                        baud=sect.int("baud", DEFAULT_BAUD, min=50, max=4_000_000))
    sect.check_keys(("kind", "path"))
    return Endpoint(kind, path=sect.path("path"))


def parse_port(sect: Section) -> PortConfig:
    sect.check_keys(PORT_KEYS)
    name = sect.device_name("midi")
    forward = tuple(sect.str_list("forward", list(DEFAULT_FORWARD)))
    for i, kind in enumerate(forward):
        if kind not in ALL_KINDS:
            raise sect.error(f"forward[{i}]", f"must be one of {', '.join(ALL_KINDS)}, not "
                                              f"{kind!r}")
    max_batch = sect.int("max_batch", DEFAULT_MAX_BATCH, min=1, max=MAX_BATCH_LIMIT)
    return PortConfig(
        name=name,
        input=_endpoint(sect, "input", INPUT_KINDS),
        output=_endpoint(sect, "output", OUTPUT_KINDS),
        batch_window_ms=sect.int("batch_window_ms", DEFAULT_WINDOW_MS, min=0, max=10_000),
        max_batch=max_batch,
        forward=forward,
    )


def parse_ports(section: Section) -> list[PortConfig]:
    """Every port of the ``midi:`` section, or DeviceConfigError naming the key."""
    section.check_keys(("ports",))
    ports = [parse_port(sect) for sect in section.sections("ports")]
    if not ports:
        raise section.error("ports", "must list at least one port")
    seen: dict[str, int] = {}
    for i, port in enumerate(ports):
        if port.name in seen:
            raise section.error(f"ports[{i}].name",
                                f"{port.name!r} is already the name of ports[{seen[port.name]}]")
        seen[port.name] = i
    return ports
