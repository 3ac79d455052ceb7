"""The only module that touches gpiozero: builds a board's pin factory and devices, reads
inputs, drives outputs, and bridges gpiozero's callbacks (which run in gpiozero's own threads)
into asyncio with ``loop.call_soon_threadsafe``.

With ``pin_factory: mock`` the pins are gpiozero's ``MockFactory`` pins (``MockPWMPin`` for PWM
outputs, ``MockTriggerPin`` for a DistanceSensor's trigger); ``drive_pin``, ``set_echo_time``
and ``pin_states`` let the simulation socket (mocksim.py) act on them at the pin level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

from devices.gpio.mapping import Reading
from devices.gpio.settings import BoardSpec, DeviceSpec

log = logging.getLogger(__name__)
SPEED_OF_SOUND = 343.26  # m/s, as gpiozero's DistanceSensor assumes
MOCK_CPU_MILLIDEGREES = "45000\n"  # what a fresh mock temperature file says

EdgeCallback = Callable[[str, Reading, int], None]


class DriverError(Exception):
    """A device or pin could not be opened, read or driven; the text says which and why."""


def make_factory(name: str) -> Any:
    """The gpiozero pin factory called ``name`` (mock | lgpio | rpigpio | native)."""
    try:
        if name == "mock":
            from gpiozero.pins.mock import MockFactory
            return MockFactory()
        if name == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory
            return LGPIOFactory()
        if name == "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory
            return RPiGPIOFactory()
        if name == "native":
            from gpiozero.pins.native import NativeFactory
            return NativeFactory()
    except ImportError as exc:
        raise DriverError(f"pin factory {name}: {exc} (is this a Raspberry Pi?)") from exc
    except Exception as exc:  # gpiozero raises assorted errors off a Pi
        raise DriverError(f"pin factory {name} cannot start: {exc}") from exc
    raise DriverError(f"unknown pin factory {name!r}")


def echo_time_for(distance: float) -> float:
    """How long an HC-SR04 holds echo high for an object ``distance`` metres away."""
    return 2 * distance / SPEED_OF_SOUND


class GpioDriver:
    """One board: its pin factory and one gpiozero device per configured device.

    ``open``, ``read``, ``actuate`` and ``close`` may block (gpiozero's smoothed inputs wait for
    their first samples), so async callers run them with ``asyncio.to_thread``. Edges of
    digital inputs go to ``on_edge(name, reading, ts_ms)`` on the event loop's thread.
    """

    def __init__(self, board: BoardSpec, loop: asyncio.AbstractEventLoop,
                 on_edge: EdgeCallback) -> None:
        self.board = board
        self.loop = loop
        self.on_edge = on_edge
        self.factory: Any = None
        self.devices: dict[str, Any] = {}
        self._lock = threading.Lock()  # one gpiozero call at a time per board

    @property
    def is_mock(self) -> bool:
        return self.board.pin_factory == "mock"

    def open(self) -> None:
        self.factory = make_factory(self.board.pin_factory)
        try:
            for spec in self.board.devices:
                self.devices[spec.name] = self._make(spec)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        with self._lock:
            for name in reversed(list(self.devices)):
                device = self.devices.pop(name)
                with contextlib.suppress(Exception):
                    device.close()
            if self.factory is not None:
                with contextlib.suppress(Exception):
                    self.factory.close()
                self.factory = None

    # ---- building devices ----

    def _make(self, spec: DeviceSpec) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. PWMSoftwareFallback off pigpio
                device = self._construct(spec)
        except DriverError:
            raise
        except Exception as exc:
            raise DriverError(f"board {self.board.name}: device {spec.name} ({spec.kind} on "
                              f"{', '.join(spec.pins) or 'no pin'}): {exc}") from exc
        if spec.kind in ("Button", "MotionSensor", "LineSensor", "DigitalInputDevice"):
            device.when_activated = partial(self._edge, spec.name, True)
            device.when_deactivated = partial(self._edge, spec.name, False)
        return device

    def _construct(self, spec: DeviceSpec) -> Any:
        import gpiozero

        f = self.factory
        if spec.kind in ("Button", "DigitalInputDevice"):
            cls = getattr(gpiozero, spec.kind)
            return cls(spec.pin, pull_up=spec.pull_up, pin_factory=f,
                       active_state=spec.active_high if spec.pull_up is None else None)
        if spec.kind in ("MotionSensor", "LineSensor"):
            cls = getattr(gpiozero, spec.kind)
            extra = {k: v for k, v in (("queue_len", spec.queue_len),
                                       ("sample_rate", spec.sample_rate),
                                       ("threshold", spec.threshold)) if v is not None}
            return cls(spec.pin, pull_up=spec.pull_up, pin_factory=f,
                       active_state=spec.active_high if spec.pull_up is None else None, **extra)
        if spec.kind == "DistanceSensor":
            if self.is_mock:
                from gpiozero.pins.mock import MockTriggerPin
                echo = f.pin(spec.echo)
                f.pin(spec.trigger, pin_class=MockTriggerPin, echo_pin=echo,
                      echo_time=echo_time_for(spec.max_distance))
            extra = {"queue_len": spec.queue_len} if spec.queue_len else {}
            return gpiozero.DistanceSensor(echo=spec.echo, trigger=spec.trigger, partial=True,
                                           max_distance=spec.max_distance,
                                           threshold_distance=spec.threshold_distance,
                                           pin_factory=f, **extra)
        if spec.kind == "CPUTemperature":
            assert spec.sensor_file is not None
            if self.is_mock and not spec.sensor_file.exists():
                spec.sensor_file.parent.mkdir(parents=True, exist_ok=True)
                spec.sensor_file.write_text(MOCK_CPU_MILLIDEGREES)
            return gpiozero.CPUTemperature(sensor_file=str(spec.sensor_file),
                                           threshold=spec.threshold, pin_factory=f)
        cls = getattr(gpiozero, spec.kind)
        if spec.is_pwm:
            kwargs: dict[str, Any] = {"initial_value": spec.initial_value,
                                      "frequency": spec.frequency}
        else:
            kwargs = {"initial_value": bool(spec.initial_value)}
        if not (spec.is_pwm and self.is_mock):
            return cls(spec.pin, active_high=spec.active_high, pin_factory=f, **kwargs)
        from gpiozero.pins.mock import MockPin, MockPWMPin
        f.pin_class = MockPWMPin  # gpiozero asks the factory for the pin: make it a PWM one
        try:
            return cls(spec.pin, active_high=spec.active_high, pin_factory=f, **kwargs)
        finally:
            f.pin_class = MockPin

    def _edge(self, name: str, active: bool) -> None:
        """A gpiozero callback (any thread): hand the edge to the event loop."""
        reading = Reading(1.0 if active else 0.0, active)
        ts = int(time.time() * 1000)
        with contextlib.suppress(RuntimeError):  # the loop is closing: shutting down anyway
            self.loop.call_soon_threadsafe(self.on_edge, name, reading, ts)

    # ---- reading and driving ----

    def _device(self, name: str) -> tuple[DeviceSpec, Any]:
        spec = self.board.device(name)
        device = self.devices.get(spec.name) if spec is not None else None
        if spec is None or device is None:
            raise DriverError(f"no device {name!r} on board {self.board.name}")
        return spec, device

    def read(self, name: str) -> Reading:
        spec, device = self._device(name)
        with self._lock:
            try:
                if spec.kind == "DistanceSensor":
                    return Reading(float(device.distance), bool(device.is_active))
                if spec.kind == "CPUTemperature":
                    temp = float(device.temperature)
                    return Reading(temp, temp > (spec.threshold or 0.0))
                active = bool(device.is_active)
                if spec.is_input or not spec.is_pwm:
                    return Reading(1.0 if active else 0.0, active)
                return Reading(float(device.value), active)
            except Exception as exc:
                raise DriverError(f"cannot read {spec.name} ({spec.kind}): {exc}") from exc

    def read_inputs(self) -> dict[str, Reading]:
        """Every input that can be read now (a failing one is logged and left out)."""
        out = {}
        for spec in self.board.inputs:
            try:
                out[spec.name] = self.read(spec.name)
            except DriverError as exc:
                log.warning("%s", exc)
        return out

    def actuate(self, name: str, action: str, value: float | None = None) -> Reading:
        """on | off | toggle | set VALUE on an output; returns its new reading."""
        spec, device = self._device(name)
        if spec.is_input:
            raise DriverError(f"{spec.name} is an input")
        with self._lock:
            try:
                if action == "on":
                    device.on()
                elif action == "off":
                    device.off()
                elif action == "toggle":
                    device.toggle()
                elif action == "set" and value is not None:
                    if spec.is_pwm:
                        device.value = value
                    elif value:
                        device.on()
                    else:
                        device.off()
                else:
                    raise DriverError(f"unknown action {action!r}")
            except DriverError:
                raise
            except Exception as exc:
                raise DriverError(f"cannot {action} {spec.name}: {exc}") from exc
        return self.read(name)

    # ---- pin level, mock factory only (used by mocksim) ----

    def _mock_pin(self, name: str) -> Any:
        if not self.is_mock or self.factory is None:
            raise DriverError("pin simulation needs pin_factory: mock")
        try:
            _header, info = next(iter(self.factory.board_info.find_pin(name)))
        except (StopIteration, Exception) as exc:
            raise DriverError(f"{name} is not a pin on this board") from exc
        pin = self.factory.pins.get(info)
        if pin is None:
            raise DriverError(f"{info.name} is not used by any device on board "
                              f"{self.board.name}")
        return pin

    def drive_pin(self, name: str, high: bool) -> str:
        """Drive a mock INPUT pin high or low, as the wire outside would; returns its name."""
        pin = self._mock_pin(name)
        if pin.function != "input":
            raise DriverError(f"{pin.info.name} is an output pin; only inputs can be driven")
        with self._lock:
            if high:
                pin.drive_high()
            else:
                pin.drive_low()
        return str(pin.info.name)

    def set_echo_time(self, name: str, seconds: float) -> str:
        """Set the echo pulse of a mock DistanceSensor TRIGGER pin (2 * distance / 343.26)."""
        pin = self._mock_pin(name)
        if not hasattr(pin, "echo_time"):
            raise DriverError(f"{pin.info.name} is not a DistanceSensor trigger pin")
        pin.echo_time = seconds
        return str(pin.info.name)

    def pin_states(self) -> dict[str, dict[str, Any]]:
        """Every mock pin in use: function (input/output), state (bool, or 0..1 for PWM)."""
        if not self.is_mock or self.factory is None:
            raise DriverError("pin simulation needs pin_factory: mock")
        out: dict[str, dict[str, Any]] = {}
        for info, pin in list(self.factory.pins.items()):
            state = pin.state
            out[str(info.name)] = {
                "function": pin.function,
                "state": state if isinstance(state, bool) else float(state),
                "pull": pin.pull if pin.function == "input" else None,
                "pwm": type(pin).__name__ == "MockPWMPin",
            }
        return out

