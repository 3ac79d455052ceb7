"""``MidiService``: every configured MIDI port is a room.

MIDI in: bytes from the port's input -> ``MidiStreamParser`` -> ``message_to_content`` ->
``Batcher`` (one sender task per port, order kept, nothing dropped) -> ``org.edgehs.midi``
events sent by ``@midi_<port>`` into ``#midi_<port>``.
MIDI out: an ``org.edgehs.midi`` event (one message or a batch) sent into the port's room by a
member with power >= ``actuate_power`` is played to the port's output, a batch with the
relative timing of its ``midi_ts``; anyone below gets a notice and nothing is played.
The schema is in devices/midi/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import mido

from devices.common.config import DeviceConfigError, ServiceConfig
from devices.common.device import DeviceService
from devices.common.intent import HomeserverClient, Intent
from devices.midi.batcher import Batcher
from devices.midi.config import PortConfig, parse_ports
from devices.midi.driver import (
    AlsaInput,
    AlsaOutput,
    DriverError,
    FdInput,
    FdOutput,
    missing_library,
    open_input,
    open_output,
    path_problem,
)
from devices.midi.mapping import (
    EVENT_TYPE,
    ContentError,
    content_to_messages,
    kind_of,
    message_to_content,
)
from devices.midi.parser import MidiStreamParser

log = logging.getLogger(__name__)
MAX_PLAY_GAP_MS = 1000  # a batch's longest pause when played (bad clocks cannot stall a port)
DRAIN_S = 5.0  # on stop, how long queued MIDI may take to reach edgehs


class MidiClock:
    """``midi_ts``: integer ms since the Unix epoch, read off the monotonic clock from a wall
    clock anchor taken at start, so the time between two messages is never bent by NTP."""

    def __init__(self) -> None:
        self._wall_ns = time.time_ns()
        self._mono_ns = time.monotonic_ns()

    def now_ms(self) -> int:
        return (self._wall_ns + time.monotonic_ns() - self._mono_ns) // 1_000_000


class Port:
    """One MIDI port: its input, its output, its room and its two tasks."""

    def __init__(self, config: PortConfig, intent: Intent, room_id: str,
                 clock: MidiClock) -> None:
        self.config = config
        self.intent = intent
        self.room_id = room_id
        self.clock = clock
        self.parser = MidiStreamParser()
        self.batcher = Batcher(self._send, window_ms=config.batch_window_ms,
                               max_batch=config.max_batch)
        self.output: FdOutput | AlsaOutput | None = None
        self._input: FdInput | AlsaInput | None = None
        self._play_queue: asyncio.Queue[list[tuple[mido.Message, int | None]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.received = 0

    async def _send(self, content: dict[str, Any]) -> None:
        await self.intent.send_event(self.room_id, EVENT_TYPE, content)

    def start(self) -> None:
        self.output = open_output(self.config.output)
        self._input = open_input(self.config.input, self.on_bytes)
        self._tasks = [asyncio.create_task(self.batcher.run(), name=f"midi-{self.config.name}-in"),
                       asyncio.create_task(self._player(), name=f"midi-{self.config.name}-out")]

    def on_bytes(self, data: bytes) -> None:
        """Bytes from the input: every complete message the port forwards goes to the batcher,
        all stamped with the time they were read."""
        ts = self.clock.now_ms()
        for msg in self.parser.feed(data):
            if kind_of(msg) in self.config.forward:
                self.received += 1
                self.batcher.put(message_to_content(msg, ts))

    def play(self, messages: list[tuple[mido.Message, int | None]]) -> None:
        self._play_queue.put_nowait(messages)

    async def _player(self) -> None:
        while True:
            messages = await self._play_queue.get()
            previous: int | None = None
            for msg, ts in messages:
                if previous is not None and ts is not None and ts > previous:
                    await asyncio.sleep(min(ts - previous, MAX_PLAY_GAP_MS) / 1000)
                previous = ts if ts is not None else previous
                if self.output is not None:
                    self.output.send(msg)

    async def close(self) -> None:
        if self._input is not None:
            self._input.close()
            self._input = None
        if not await self.batcher.drain(DRAIN_S):
            log.warning("port %s: %d MIDI message(s) not sent before stopping",
                        self.config.name, self.batcher.pending)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.output is not None:
            self.output.close()
            self.output = None


class MidiService(DeviceService):
    service = "midi"

    def __init__(self, config: ServiceConfig, client: HomeserverClient) -> None:
        super().__init__(config, client)
        self.port_configs = parse_ports(config.section)
        self.clock = MidiClock()
        self.ports: dict[str, Port] = {}  # room id -> port

    @classmethod
    def validate(cls, config: ServiceConfig) -> None:
        """DeviceConfigError for a bad ``midi:`` section, or a kind whose library is missing."""
        for i, port in enumerate(parse_ports(config.section)):
            for side, ep in (("input", port.input), ("output", port.output)):
                reason = missing_library(ep.kind)
                if reason:
                    raise DeviceConfigError(f"midi.ports[{i}].{side}.kind", reason,
                                            config.path.name)
                reason = path_problem(ep)
                if reason:
                    raise DeviceConfigError(f"midi.ports[{i}].{side}.path", reason,
                                            config.path.name)

    async def start(self) -> None:
        for pc in self.port_configs:
            intent, room_id = await self.setup_device(
                pc.name, displayname=f"MIDI {pc.name}", room_name=f"MIDI {pc.name}",
                topic=(f"MIDI port {pc.name}: what is played arrives as {EVENT_TYPE} events; "
                       f"{EVENT_TYPE} events sent here by members with power "
                       f"{self.gate_threshold} are played"))
            port = Port(pc, intent, room_id, self.clock)
            try:
                port.start()
            except DriverError as exc:
                await port.close()
                raise RuntimeError(f"port {pc.name}: {exc}") from exc
            self.ports[room_id] = port
            self.log.info("port %s: input %s, output %s", pc.name, pc.input.kind,
                          pc.output.kind)

    async def stop(self) -> None:
        for port in self.ports.values():
            await port.close()
        self.ports.clear()

    async def on_event(self, event: dict[str, Any]) -> None:
        """MIDI out: a member's ``org.edgehs.midi`` event in a port's room is played."""
        if event.get("type") != EVENT_TYPE or "state_key" in event:
            return
        port = self.ports.get(str(event.get("room_id")))
        sender = event.get("sender")
        if port is None or not isinstance(sender, str):
            return
        if not await self.may_actuate(port.room_id, sender):
            self.log.info("port %s: refused MIDI from %s", port.config.name, sender)
            await self.refuse(port.room_id, sender, "play MIDI")
            return
        content = event.get("content")
        try:
            messages = content_to_messages(content if isinstance(content, dict) else {})
        except ContentError as exc:
            await port.intent.send_notice(
                port.room_id, f"Not played: {event.get('event_id')} is not MIDI ({exc})")
            return
        if port.output is None:
            await port.intent.send_notice(
                port.room_id, f"Not played: port {port.config.name} has no MIDI output")
            return
        port.play(messages)
