"""The ``gpio:`` section of devices.yaml, checked once at start into frozen dataclasses.

Every error is a ``DeviceConfigError`` naming the full key, e.g.
``devices.yaml: gpio.boards[0].devices[1].pin: GPIO17 is already used by porch_light``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from devices.common.config import Section

FACTORIES = ("mock", "lgpio", "rpigpio", "native")
# the Python module a real pin factory needs (gpiozero imports it lazily)
FACTORY_MODULES = {"lgpio": "lgpio", "rpigpio": "RPi.GPIO"}
DIGITAL_INPUTS = ("Button", "MotionSensor", "LineSensor", "DigitalInputDevice")
ANALOG_INPUTS = ("DistanceSensor", "CPUTemperature")
INPUT_KINDS = DIGITAL_INPUTS + ANALOG_INPUTS
PWM_OUTPUTS = ("PWMLED", "PWMOutputDevice")
OUTPUT_KINDS = ("LED", "Buzzer", "OutputDevice", *PWM_OUTPUTS)
KINDS = INPUT_KINDS + OUTPUT_KINDS
SMOOTHED = ("MotionSensor", "LineSensor", "DistanceSensor")
BOARD_KEYS = ("name", "pin_factory", "devices", "sim_socket", "label")
COMMON_KEYS = ("name", "kind", "label")
INPUT_KEYS = ("bounce_time", "min_interval", "poll_interval")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "Button": ("pin", "pull_up", "active_high"),
    "DigitalInputDevice": ("pin", "pull_up", "active_high"),
    "MotionSensor": ("pin", "pull_up", "active_high", "queue_len", "sample_rate", "threshold"),
    "LineSensor": ("pin", "pull_up", "active_high", "queue_len", "sample_rate", "threshold"),
    "DistanceSensor": ("echo", "trigger", "max_distance", "threshold_distance", "queue_len",
                       "delta"),
    "CPUTemperature": ("sensor_file", "threshold", "delta"),
    "LED": ("pin", "active_high", "initial_value"),
    "Buzzer": ("pin", "active_high", "initial_value"),
    "OutputDevice": ("pin", "active_high", "initial_value"),
    "PWMLED": ("pin", "active_high", "initial_value", "frequency"),
    "PWMOutputDevice": ("pin", "active_high", "initial_value", "frequency"),
}
DEVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PIN_NUMBER_RE = re.compile(r"^(?:GPIO|BCM)?(\d{1,2})$", re.IGNORECASE)
PIN_NAME_RE = re.compile(r"^(?:BOARD\d{1,2}|[A-Z][A-Z0-9]*:\d{1,3})$", re.IGNORECASE)
MAX_BCM = 27
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on the BSDs
CPU_SENSOR_FILE = Path("/sys/class/thermal/thermal_zone0/temp")


@dataclass(frozen=True)
class DeviceSpec:
    """One gpiozero device on a board. ``pin`` is the canonical name (``GPIO17``); a
    DistanceSensor has ``echo`` and ``trigger`` instead, a CPUTemperature no pin at all."""

    name: str
    kind: str
    label: str = ""
    pin: str | None = None
    echo: str | None = None
    trigger: str | None = None
    pull_up: bool | None = None  # None: floating, then active_high says which level is active
    active_high: bool = True
    initial_value: float = 0.0
    frequency: int = 100
    bounce_time: float = 0.0  # an input change must hold this long (seconds) to count
    min_interval: float = 0.0  # at most one published change per this many seconds
    poll_interval: float = 2.0  # re-read the input this often (seconds)
    queue_len: int | None = None
    sample_rate: float | None = None
    threshold: float | None = None  # smoothed inputs: 0..1; CPUTemperature: degrees C
    max_distance: float = 1.0
    threshold_distance: float = 0.3
    delta: float = 0.0  # analog inputs: smallest change (m or degrees C) worth publishing
    sensor_file: Path | None = None

    @property
    def is_input(self) -> bool:
        return self.kind in INPUT_KINDS

    @property
    def is_analog(self) -> bool:
        return self.kind in ANALOG_INPUTS

    @property
    def is_pwm(self) -> bool:
        return self.kind in PWM_OUTPUTS

    @property
    def unit(self) -> str:
        return {"DistanceSensor": "m", "CPUTemperature": "°C"}.get(self.kind, "")

    @property
    def pins(self) -> tuple[str, ...]:
        return tuple(p for p in (self.pin, self.echo, self.trigger) if p is not None)


@dataclass(frozen=True)
class BoardSpec:
    name: str
    pin_factory: str
    devices: tuple[DeviceSpec, ...]
    label: str = ""
    sim_socket: Path | None = None  # only with the mock factory

    def device(self, name: str) -> DeviceSpec | None:
        """The device called ``name`` (case-insensitive), or None."""
        folded = name.casefold()
        return next((d for d in self.devices if d.name.casefold() == folded), None)

    @property
    def outputs(self) -> tuple[DeviceSpec, ...]:
        return tuple(d for d in self.devices if not d.is_input)

    @property
    def inputs(self) -> tuple[DeviceSpec, ...]:
        return tuple(d for d in self.devices if d.is_input)


@dataclass(frozen=True)
class GpioSettings:
    boards: tuple[BoardSpec, ...]


def canonical_pin(section: Section, key: str) -> str:
    """An int BCM number or a gpiozero pin name -> ``GPIOn`` (or the upper-cased name)."""
    raw = section.raw.get(key)
    if raw is None:
        raise section.error(key, "is required")
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise section.error(key, f"must be a BCM pin number or a pin name like GPIO17, "
                                 f"not {raw!r}")
    match = PIN_NUMBER_RE.match(str(raw).strip())
    if match:
        number = int(match.group(1))
        if number > MAX_BCM:
            raise section.error(key, f"must be a GPIO number from 0 to {MAX_BCM}, not {raw!r}")
        return f"GPIO{number}"
    if isinstance(raw, str) and PIN_NAME_RE.match(raw.strip()):
        return raw.strip().upper()
    raise section.error(key, f"must be a BCM pin number or a pin name like GPIO17, BOARD11 or "
                             f"J8:11, not {raw!r}")


def _input_timing(sect: Section, kind: str) -> dict[str, float]:
    poll_default = {"CPUTemperature": 5.0, "DistanceSensor": 1.0}.get(kind, 2.0)
    return {
        "bounce_time": sect.float("bounce_time", 0.0, min=0.0, max=10.0),
        "min_interval": sect.float("min_interval", 0.0, min=0.0, max=3600.0),
        "poll_interval": sect.float("poll_interval", poll_default, min=0.05, max=3600.0),
    }


def _digital_input(sect: Section, kind: str) -> dict[str, object]:
    out: dict[str, object] = {"pin": canonical_pin(sect, "pin")}
    if sect.has("active_high"):
        if sect.has("pull_up"):
            raise sect.error("active_high", "only for a floating input (no pull_up): with a "
                                            "pull resistor the active level follows pull_up")
        out["pull_up"] = None
        out["active_high"] = sect.bool("active_high")
    else:
        pull_up = sect.bool("pull_up", kind == "Button")
        out["pull_up"] = pull_up
        out["active_high"] = not pull_up
    if kind in SMOOTHED:
        if sect.has("queue_len"):
            out["queue_len"] = sect.int("queue_len", min=1, max=1000)
        if sect.has("sample_rate"):
            out["sample_rate"] = sect.float("sample_rate", min=0.1, max=10000.0)
        if sect.has("threshold"):
            out["threshold"] = sect.float("threshold", min=0.0, max=1.0)
    return out


def _analog_input(sect: Section, kind: str, board: str, factory: str) -> dict[str, object]:
    if kind == "DistanceSensor":
        max_distance = sect.float("max_distance", 1.0, min=0.01, max=10.0)
        out: dict[str, object] = {
            "echo": canonical_pin(sect, "echo"), "trigger": canonical_pin(sect, "trigger"),
            "max_distance": max_distance,
            "threshold_distance": sect.float("threshold_distance", 0.3, min=0.0,
                                             max=max_distance),
            "delta": sect.float("delta", 0.01, min=0.0, max=10.0),
        }
        if sect.has("queue_len"):
            out["queue_len"] = sect.int("queue_len", min=1, max=1000)
        return out
    default_file = (Path(f"gpio-{board}-cpu-temp") if factory == "mock" else CPU_SENSOR_FILE)
    return {
        "sensor_file": sect.path("sensor_file", str(default_file)),
        "threshold": sect.float("threshold", 80.0, min=-100.0, max=200.0),
        "delta": sect.float("delta", 0.5, min=0.0, max=100.0),
    }


def _output(sect: Section, kind: str) -> dict[str, object]:
    out: dict[str, object] = {"pin": canonical_pin(sect, "pin"),
                              "active_high": sect.bool("active_high", True)}
    if kind in PWM_OUTPUTS:
        out["initial_value"] = sect.float("initial_value", 0.0, min=0.0, max=1.0)
        out["frequency"] = sect.int("frequency", 100, min=1, max=100_000)
    else:
        out["initial_value"] = 1.0 if sect.bool("initial_value", False) else 0.0
    return out


def parse_device(sect: Section, board: str, factory: str) -> DeviceSpec:
    name = sect.str("name")
    if not DEVICE_NAME_RE.match(name):
        raise sect.error("name", f"must be letters, digits, '_', '.' or '-' (at most 64), "
                                 f"not {name!r}")
    kind = sect.choice("kind", KINDS)
    sect.check_keys((*COMMON_KEYS, *KIND_KEYS[kind],
                     *(INPUT_KEYS if kind in INPUT_KINDS else ())))
    fields: dict[str, object] = {"name": name, "kind": kind,
                                 "label": sect.str("label", "", allow_empty=True)}
    if kind in DIGITAL_INPUTS:
        fields.update(_digital_input(sect, kind))
    elif kind in ANALOG_INPUTS:
        fields.update(_analog_input(sect, kind, board, factory))
    else:
        fields.update(_output(sect, kind))
    if kind in INPUT_KINDS:
        fields.update(_input_timing(sect, kind))
    return DeviceSpec(**fields)  # type: ignore[arg-type]


def parse_board(sect: Section, default_factory: str) -> BoardSpec:
    sect.check_keys(BOARD_KEYS)
    name = sect.device_name("gpio", max_length=32)
    factory = sect.choice("pin_factory", FACTORIES, default_factory)
    devices: list[DeviceSpec] = []
    names: dict[str, str] = {}
    pins: dict[str, str] = {}
    items = sect.sections("devices")
    if not items:
        raise sect.error("devices", "must list at least one device")
    for item in items:
        spec = parse_device(item, name, factory)
        other = names.get(spec.name.casefold())
        if other is not None:
            raise item.error("name", f"{spec.name!r} is used twice on board {name!r}")
        names[spec.name.casefold()] = spec.name
        for key in ("pin", "echo", "trigger"):
            pin = getattr(spec, key)
            if pin is None:
                continue
            if pin in pins:
                raise item.error(key, f"{pin} is already used by {pins[pin]}")
            pins[pin] = spec.name
        devices.append(spec)
    sim_socket = None
    if factory == "mock":
        sim_socket = sect.path("sim_socket", f"gpio-sim-{name}.sock")
        length = len(str(sim_socket))
        if length > MAX_SOCKET_PATH:
            raise sect.error("sim_socket", f"path too long for a unix socket ({length} > "
                                           f"{MAX_SOCKET_PATH} characters): {sim_socket}")
    elif sect.has("sim_socket"):
        raise sect.error("sim_socket", "only with pin_factory: mock")
    label = sect.str("label", "", allow_empty=True)
    return BoardSpec(name, factory, tuple(devices), label, sim_socket)


def parse_gpio(section: Section) -> GpioSettings:
    """The whole ``gpio:`` section (its ``appservice`` part is the kit's)."""
    section.check_keys(("appservice", "pin_factory", "boards"))
    default_factory = section.choice("pin_factory", FACTORIES, "mock")
    boards: list[BoardSpec] = []
    items = section.sections("boards")
    if not items:
        raise section.error("boards", "must list at least one board")
    for item in items:
        board = parse_board(item, default_factory)
        if any(b.name == board.name for b in boards):
            raise item.error("name", f"board {board.name!r} is listed twice")
        module = FACTORY_MODULES.get(board.pin_factory)
        if module is not None and find_spec(module.split(".")[0]) is None:
            owner = item if item.has("pin_factory") else section
            raise owner.error("pin_factory", f"{board.pin_factory} needs the Python module "
                                             f"{module} (pip install {module}; it exists only "
                                             f"on a Raspberry Pi)")
        boards.append(board)
    return GpioSettings(tuple(boards))
