"""devices.gpio.settings: the gpio: section, every mistake named by its full key."""

import copy
from pathlib import Path
from typing import Any

import pytest

from devices.common.config import DeviceConfigError, Section
from devices.gpio.defaults import simulated_section
from devices.gpio.settings import parse_gpio

BASE = Path("/srv/dev")


def section(raw: dict[str, Any]) -> Section:
    return Section(raw, "gpio", BASE)


def good() -> dict[str, Any]:
    return {
        "pin_factory": "mock",
        "boards": [{"name": "shed", "devices": [
            {"name": "lamp", "kind": "LED", "pin": 17},
            {"name": "fan", "kind": "PWMLED", "pin": "GPIO18", "initial_value": 0.5},
            {"name": "bell", "kind": "Button", "pin": "2", "bounce_time": 0.05,
             "min_interval": 1},
            {"name": "pir", "kind": "MotionSensor", "pin": 4, "queue_len": 3},
            {"name": "float", "kind": "DigitalInputDevice", "pin": 5, "active_high": False},
            {"name": "garage", "kind": "DistanceSensor", "echo": 24, "trigger": 23,
             "max_distance": 2},
            {"name": "cpu", "kind": "CPUTemperature"},
        ]}],
    }


def test_defaults_parse() -> None:
    settings = parse_gpio(section(simulated_section(BASE)))
    (board,) = settings.boards
    assert board.name == "board" and board.pin_factory == "mock"
    assert [(d.name, d.kind, d.pin) for d in board.devices] == [
        ("porch_light", "LED", "GPIO17"), ("doorbell", "Button", "GPIO2"),
        ("hall_motion", "MotionSensor", "GPIO4"), ("cpu", "CPUTemperature", None)]
    assert board.sim_socket == BASE / "gpio-sim-board.sock"
    assert board.devices[3].sensor_file == BASE / "gpio-board-cpu-temp"


def test_good_section() -> None:
    (board,) = parse_gpio(section(good())).boards
    lamp, fan, bell, pir, flt, garage, cpu = board.devices
    assert (lamp.pin, lamp.initial_value, lamp.active_high) == ("GPIO17", 0.0, True)
    assert fan.is_pwm and fan.initial_value == 0.5 and fan.frequency == 100
    assert (bell.pull_up, bell.active_high, bell.bounce_time, bell.min_interval) == (
        True, False, 0.05, 1.0)
    assert (pir.pull_up, pir.queue_len) == (False, 3)
    assert (flt.pull_up, flt.active_high) == (None, False)
    assert (garage.echo, garage.trigger, garage.max_distance, garage.delta) == (
        "GPIO24", "GPIO23", 2.0, 0.01)
    assert garage.poll_interval == 1.0
    assert cpu.sensor_file == BASE / "gpio-shed-cpu-temp" and cpu.threshold == 80.0
    assert board.sim_socket == BASE / "gpio-sim-shed.sock"
    assert [d.name for d in board.outputs] == ["lamp", "fan"]


def test_real_factory_reads_the_real_sensor() -> None:
    raw = good()
    raw["pin_factory"] = "native"
    (board,) = parse_gpio(section(raw)).boards
    assert board.devices[-1].sensor_file == Path("/sys/class/thermal/thermal_zone0/temp")
    assert board.sim_socket is None


def mutate(change: Any) -> dict[str, Any]:
    raw = copy.deepcopy(good())
    change(raw)
    return raw


def dev(i: int, **kw: Any) -> Any:
    return lambda raw: raw["boards"][0]["devices"][i].update(kw)


BAD = [
    (dev(1, pin=17), "gpio.boards[0].devices[1].pin", "GPIO17 is already used by lamp"),
    (dev(5, trigger="GPIO2"), "gpio.boards[0].devices[5].trigger",
     "GPIO2 is already used by bell"),
    (dev(1, name="LAMP"), "gpio.boards[0].devices[1].name", "'LAMP' is used twice"),
    (dev(0, kind="Lamp"), "gpio.boards[0].devices[0].kind", "must be one of Button,"),
    (dev(0, pin=None), "gpio.boards[0].devices[0].pin", "is required"),
    (dev(0, pin=40), "gpio.boards[0].devices[0].pin", "from 0 to 27"),
    (dev(0, pin="PIN7"), "gpio.boards[0].devices[0].pin", "pin name like GPIO17"),
    (dev(0, pin=True), "gpio.boards[0].devices[0].pin", "BCM pin number"),
    (dev(0, colour="red"), "gpio.boards[0].devices[0].colour", "unknown key"),
    (dev(0, bounce_time=0.1), "gpio.boards[0].devices[0].bounce_time", "unknown key"),
    (dev(0, initial_value=0.5), "gpio.boards[0].devices[0].initial_value",
     "must be true or false"),
    (dev(1, initial_value=2), "gpio.boards[0].devices[1].initial_value", "at most 1.0"),
    (dev(2, bounce_time=-1), "gpio.boards[0].devices[2].bounce_time", "at least 0.0"),
    (dev(2, min_interval="1s"), "gpio.boards[0].devices[2].min_interval", "must be a number"),
    (dev(2, pull_up=True, active_high=True), "gpio.boards[0].devices[2].active_high",
     "only for a floating input"),
    (dev(2, name="bad name"), "gpio.boards[0].devices[2].name", "must be letters"),
    (dev(5, threshold_distance=3), "gpio.boards[0].devices[5].threshold_distance",
     "at most 2.0"),
    (lambda r: r.update(pin_factory="pigpio"), "gpio.pin_factory", "must be one of mock,"),
    (lambda r: r.update(colour=1), "gpio.colour", "unknown key"),
    (lambda r: r.update(boards=[]), "gpio.boards", "at least one board"),
    (lambda r: r.pop("boards"), "gpio.boards", "is required"),
    (lambda r: r["boards"][0].update(name="Shed"), "gpio.boards[0].name", "lower-case"),
    (lambda r: r["boards"][0].update(devices=[]), "gpio.boards[0].devices", "at least one"),
    (lambda r: r["boards"][0]["devices"].append("lamp"), "gpio.boards[0].devices[7]",
     "must be a mapping"),
    (lambda r: r["boards"].append(copy.deepcopy(r["boards"][0])), "gpio.boards[1].name",
     "board 'shed' is listed twice"),
    (lambda r: r["boards"][0].update(sim_socket="/x" * 60), "gpio.boards[0].sim_socket",
     "too long for a unix socket"),
]


@pytest.mark.parametrize(("change", "key", "reason"), BAD)
def test_bad_section(change: Any, key: str, reason: str) -> None:
    with pytest.raises(DeviceConfigError) as info:
        parse_gpio(section(mutate(change)))
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(info.value).startswith(f"devices.yaml: {key}: ")


def test_sim_socket_only_with_mock() -> None:
    raw = good()
    raw["boards"][0].update(pin_factory="native", sim_socket="x.sock")
    with pytest.raises(DeviceConfigError, match=r"gpio.boards\[0\].sim_socket: only with"):
        parse_gpio(section(raw))


def test_lgpio_without_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import devices.gpio.settings as settings

    monkeypatch.setattr(settings, "find_spec", lambda name: None)
    raw = good()
    raw["boards"][0]["pin_factory"] = "lgpio"
    with pytest.raises(DeviceConfigError) as info:
        parse_gpio(section(raw))
    assert info.value.key == "gpio.boards[0].pin_factory"
    assert "pip install lgpio" in info.value.reason
