"""The simulation socket of a board on gpiozero's MockFactory (``pin_factory: mock`` only).

A unix socket (``sim_socket``, default ``gpio-sim-<board>.sock`` beside devices.yaml) where a
test or a person plays "the world outside the pins". One request per line, one JSON answer
per line (``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``):

    pin 4 high            drive input pin GPIO4 high (``low``, ``1``/``0`` too); any gpiozero
                          pin name works: 4, GPIO4, BOARD7
    echo 23 0.00175       a DistanceSensor's trigger pin 23 now sees echoes this long (s)
    distance garage 0.3   the same, in metres, by device name
    temp cpu 52.5         write the CPUTemperature's sensor file (degrees C)
    state                 every pin in use: {"pins": {"GPIO17": {"function": "output",
                          "state": true, "pull": null, "pwm": false}, ...}}

Try it by hand: ``socat - UNIX-CONNECT:gpio-sim-board.sock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from devices.gpio.driver import DriverError, GpioDriver, echo_time_for

log = logging.getLogger(__name__)
LEVELS = {"high": True, "1": True, "on": True, "low": False, "0": False, "off": False}
MAX_LINE = 1024


class SimError(Exception):
    pass


class MockSim:
    """Serves one board's simulation socket."""

    def __init__(self, driver: GpioDriver, path: Path) -> None:
        self.driver = driver
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a killed run
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                       limit=MAX_LINE)
        os.chmod(self.path, 0o600)
        log.info("board %s: pin simulation on %s", self.driver.board.name, self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_LINE
                    answer: dict[str, Any] = {"ok": False, "error": "line too long"}
                    writer.write(json.dumps(answer).encode() + b"\n")
                    break
                if not line:
                    break
                text = line.decode(errors="replace").strip()
                if not text:
                    continue
                try:
                    answer = {"ok": True, **await self.handle(text)}
                except (SimError, DriverError) as exc:
                    answer = {"ok": False, "error": str(exc)}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def handle(self, text: str) -> dict[str, Any]:
        """One request line -> the answer's fields (raises SimError / DriverError)."""
        words = text.split()
        verb, args = words[0].lower(), words[1:]
        if verb == "state" and not args:
            return {"pins": await asyncio.to_thread(self.driver.pin_states)}
        if verb == "pin" and len(args) == 2:
            level = LEVELS.get(args[1].lower())
            if level is None:
                raise SimError(f"level must be high or low, not {args[1]!r}")
            name = await asyncio.to_thread(self.driver.drive_pin, args[0], level)
            return {"pin": name, "state": level}
        if verb == "echo" and len(args) == 2:
            seconds = _number(args[1], 0.0, 1.0)
            return {"pin": self.driver.set_echo_time(args[0], seconds), "echo_time": seconds}
        if verb == "distance" and len(args) == 2:
            spec = self._spec(args[0], "DistanceSensor")
            metres = _number(args[1], 0.0, 100.0)
            assert spec.trigger is not None
            self.driver.set_echo_time(spec.trigger, echo_time_for(metres))
            return {"device": spec.name, "distance": metres}
        if verb == "temp" and len(args) == 2:
            spec = self._spec(args[0], "CPUTemperature")
            celsius = _number(args[1], -100.0, 200.0)
            assert spec.sensor_file is not None
            tmp = spec.sensor_file.with_name(spec.sensor_file.name + ".tmp")
            tmp.write_text(f"{round(celsius * 1000)}\n")
            tmp.replace(spec.sensor_file)
            return {"device": spec.name, "temperature": celsius}
        raise SimError(f"unknown request {text!r}: use pin PIN high|low, echo PIN SECONDS, "
                       f"distance NAME METRES, temp NAME CELSIUS or state")

    def _spec(self, name: str, kind: str) -> Any:
        spec = self.driver.board.device(name)
        if spec is None or spec.kind != kind:
            raise SimError(f"no {kind} called {name!r} on board {self.driver.board.name}")
        return spec


def _number(text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SimError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise SimError(f"{text} is out of range ({low:g} to {high:g})")
    return value


async def sim_request(path: Path, line: str) -> dict[str, Any]:
    """Client side: send one request line to a simulation socket, return the JSON answer."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(line.encode() + b"\n")
        await writer.drain()
        answer = json.loads(await reader.readline())
        assert isinstance(answer, dict)
        return answer
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
