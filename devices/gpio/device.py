"""``GpioService``: each board in devices.yaml's ``gpio:`` section is a room ``#gpio_<board>``
where the virtual user ``@gpio_<board>`` publishes every device's value as state, input edges
as timeline events, and carries out the members' commands (power >= ``actuate_power``).

hardware -> driver.py -> InputFilter (mapping.py) -> Outbox -> edgehs;
room event -> commands.py -> driver.py -> new state + an answer, through the same Outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from functools import partial
from typing import Any

from devices.common.config import ServiceConfig
from devices.common.device import DeviceService
from devices.common.intent import HomeserverClient, Intent
from devices.gpio.commands import (
    Command,
    CommandError,
    lookup,
    parse_structured,
    parse_text,
    target,
    verb_for,
)
from devices.gpio.driver import DriverError, GpioDriver
from devices.gpio.mapping import (
    BOARD_STATE,
    COMMAND_EVENT,
    DEVICE_STATE,
    EDGE_EVENT,
    InputFilter,
    Reading,
    answer_content,
    board_content,
    describe,
    device_content,
    edge_content,
    help_text,
    status_text,
)
from devices.gpio.mocksim import MockSim
from devices.gpio.outbox import Outbox
from devices.gpio.settings import BoardSpec, DeviceSpec, GpioSettings, parse_gpio

DRAIN_ON_STOP = 3.0  # seconds stop() waits for queued events to reach edgehs


def now_ms() -> int:
    return int(time.time() * 1000)


class Board:
    """One running board: driver, room, filters, send queue, background tasks."""

    def __init__(self, spec: BoardSpec, intent: Intent, room_id: str) -> None:
        self.spec = spec
        self.intent = intent
        self.room_id = room_id
        self.driver: GpioDriver | None = None
        self.outbox = Outbox(self._send, name=spec.name)
        self.filters = {d.name: InputFilter(bounce_time=d.bounce_time,
                                            min_interval=d.min_interval, delta=d.delta)
                        for d in spec.inputs}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.sim: MockSim | None = None

    async def _send(self, event_type: str, state_key: str | None,
                    content: dict[str, Any]) -> None:
        if state_key is None:
            await self.intent.send_event(self.room_id, event_type, content)
        else:
            await self.intent.send_state(self.room_id, event_type, state_key, content)

    def answer(self, text: str, reply_to: str | None, state: dict[str, Any] | None = None
               ) -> None:
        self.outbox.put_event("m.room.message",
                              answer_content(text, in_reply_to=reply_to, state=state))


class GpioService(DeviceService):
    service = "gpio"

    def __init__(self, config: ServiceConfig, client: HomeserverClient) -> None:
        super().__init__(config, client)
        self.settings: GpioSettings = parse_gpio(config.section)
        self.boards: dict[str, Board] = {}  # room id -> board

    @classmethod
    def validate(cls, config: ServiceConfig) -> None:
        parse_gpio(config.section)

    # ---- lifecycle ----

    async def start(self) -> None:
        for spec in self.settings.boards:
            await self._start_board(spec)

    async def _start_board(self, spec: BoardSpec) -> None:
        label = spec.label or spec.name
        intent, room_id = await self.setup_device(
            spec.name, displayname=f"GPIO {label}", room_name=f"GPIO {label}",
            topic=f"GPIO board {spec.name}: {len(spec.devices)} devices. Say !help.")
        await self._run_board(Board(spec, intent, room_id))

    async def _run_board(self, board: Board) -> None:
        """Open the board's pins, publish every device's value, start polling (and the
        simulation socket with the mock factory)."""
        spec = board.spec
        self.boards[board.room_id] = board
        board.tasks.append(asyncio.create_task(board.outbox.run()))
        loop = asyncio.get_running_loop()
        driver = GpioDriver(spec, loop, partial(self._on_edge, board))
        await asyncio.to_thread(driver.open)  # DriverError: start-up fails, naming the device
        board.driver = driver
        board.outbox.put_state(BOARD_STATE, "", board_content(spec))
        readings = await asyncio.to_thread(driver.read_inputs)
        for name, reading in readings.items():
            self._feed(board, name, reading, now_ms())
        for out in spec.outputs:
            reading = await asyncio.to_thread(driver.read, out.name)
            board.outbox.put_state(DEVICE_STATE, out.name, device_content(out, reading, now_ms()))
        for inp in spec.inputs:
            board.tasks.append(asyncio.create_task(self._poll(board, inp)))
        if spec.pin_factory == "mock" and spec.sim_socket is not None:
            board.sim = MockSim(driver, spec.sim_socket)
            await board.sim.start()

    async def stop(self) -> None:
        for board in self.boards.values():
            if board.sim is not None:
                await board.sim.stop()
            for handle in board.timers.values():
                handle.cancel()
            for task in board.tasks[1:]:  # pollers; the outbox (tasks[0]) drains first
                task.cancel()
        for board in self.boards.values():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(board.outbox.drain(), DRAIN_ON_STOP)
            if len(board.outbox):
                self.log.warning("board %s: %d events not sent before stopping",
                                 board.spec.name, len(board.outbox))
            for task in board.tasks:
                task.cancel()
            await asyncio.gather(*board.tasks, return_exceptions=True)
            if board.driver is not None:
                await asyncio.to_thread(board.driver.close)

    # ---- inputs -> events ----

    def _on_edge(self, board: Board, name: str, reading: Reading, ts: int) -> None:
        """From the driver, on the loop's thread: a digital input changed."""
        self._feed(board, name, reading, ts)

    def _feed(self, board: Board, name: str, reading: Reading, ts: int) -> None:
        filt = board.filters.get(name)
        if filt is not None:
            filt.feed(reading, ts, asyncio.get_running_loop().time())
            self._step(board, name)

    def _step(self, board: Board, name: str) -> None:
        handle = board.timers.pop(name, None)
        if handle is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        emission, wake = board.filters[name].step(loop.time())
        spec = board.spec.device(name)
        assert spec is not None
        if emission is not None:
            if emission.edges:
                board.outbox.put_event(EDGE_EVENT, edge_content(spec, emission))
            if emission.changed:
                board.outbox.put_state(DEVICE_STATE, name,
                                       device_content(spec, emission.reading, emission.ts))
        if wake is not None:
            board.timers[name] = loop.call_at(wake, self._step, board, name)

    async def _poll(self, board: Board, spec: DeviceSpec) -> None:
        """Analog inputs are only read here; digital ones are re-read here too, so an edge
        gpiozero did not report (e.g. before its first sample) still ends up published."""
        assert board.driver is not None
        while True:
            await asyncio.sleep(spec.poll_interval)
            try:
                reading = await asyncio.to_thread(board.driver.read, spec.name)
            except DriverError as exc:
                self.log.warning("%s", exc)
                continue
            self._feed(board, spec.name, reading, now_ms())

    # ---- room events -> commands ----

    async def on_event(self, event: dict[str, Any]) -> None:
        board = self.boards.get(str(event.get("room_id")))
        content = event.get("content")
        sender = event.get("sender")
        if board is None or not isinstance(content, dict) or not isinstance(sender, str):
            return
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        try:
            if event.get("type") == COMMAND_EVENT and "state_key" not in event:
                command: Command | None = parse_structured(content)
            elif (event.get("type") == "m.room.message" and content.get("msgtype") == "m.text"
                  and isinstance(content.get("body"), str)):
                command = parse_text(content["body"])
            else:
                return
            if command is not None:
                await self._run(board, command, sender, event_id)
        except CommandError as exc:
            board.answer(str(exc), event_id)
        except DriverError as exc:
            self.log.warning("board %s: %s", board.spec.name, exc)
            board.answer(f"failed: {exc}", event_id)

    async def _run(self, board: Board, command: Command, sender: str,
                   event_id: str | None) -> None:
        assert board.driver is not None
        if command.action == "help":
            board.answer(help_text(board.spec, self.gate_threshold), event_id)
            return
        if command.action == "status":
            specs = lookup(board.spec, command.device)
            readings: dict[str, Reading | None] = {}
            for spec in specs:
                try:
                    readings[spec.name] = await asyncio.to_thread(board.driver.read, spec.name)
                except DriverError:
                    filt = board.filters.get(spec.name)
                    readings[spec.name] = filt.current if filt is not None else None
            board.answer(status_text(board.spec, readings, specs), event_id)
            return
        if not await self.may_actuate(board.room_id, sender):
            await self.refuse(board.room_id, sender, verb_for(command))
            return
        spec = target(board.spec, command)
        reading = await asyncio.to_thread(board.driver.actuate, spec.name, command.action,
                                          command.value)
        state = device_content(spec, reading, now_ms(), changed_by=sender)
        board.outbox.put_state(DEVICE_STATE, spec.name, state)
        board.answer(f"{spec.name} is {describe(spec, reading)}", event_id,
                     {"device": spec.name, **state})
