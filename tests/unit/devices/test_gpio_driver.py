"""devices.gpio.driver on gpiozero's MockFactory, in process, and the mocksim socket."""

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devices.gpio.driver import DriverError, GpioDriver, echo_time_for, make_factory
from devices.gpio.mapping import Reading
from devices.gpio.mocksim import MockSim, sim_request
from devices.gpio.settings import BoardSpec, DeviceSpec

WAIT = 10.0  # seconds to wait for a gpiozero thread (never a timing assertion)


def board(tmp_path: Path) -> BoardSpec:
    return BoardSpec("t", "mock", (
        DeviceSpec("lamp", "LED", pin="GPIO17"),
        DeviceSpec("fan", "PWMLED", pin="GPIO18", initial_value=0.25),
        DeviceSpec("relay", "OutputDevice", pin="GPIO27", active_high=False),
        DeviceSpec("bell", "Button", pin="GPIO2", pull_up=True, active_high=False),
        DeviceSpec("pir", "MotionSensor", pin="GPIO4", pull_up=False),
        DeviceSpec("float", "DigitalInputDevice", pin="GPIO5", pull_up=None,
                   active_high=False),
        DeviceSpec("cpu", "CPUTemperature", sensor_file=tmp_path / "temp", threshold=60.0),
    ))


class Edges:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, Reading, int]] = asyncio.Queue()

    def __call__(self, name: str, reading: Reading, ts: int) -> None:
        self.queue.put_nowait((name, reading, ts))

    async def next(self) -> tuple[str, Reading]:
        name, reading, _ts = await asyncio.wait_for(self.queue.get(), WAIT)
        return name, reading


@pytest.fixture
async def driven(tmp_path: Path) -> AsyncIterator[tuple[GpioDriver, Edges]]:
    edges = Edges()
    driver = GpioDriver(board(tmp_path), asyncio.get_running_loop(), edges)
    await asyncio.to_thread(driver.open)
    yield driver, edges
    await asyncio.to_thread(driver.close)


async def until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(WAIT / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {WAIT}s: {what}")


async def test_outputs(driven: tuple[GpioDriver, Edges]) -> None:
    driver, _ = driven
    pins = driver.pin_states()
    assert pins["GPIO17"] == {"function": "output", "state": False, "pull": None, "pwm": False}
    assert pins["GPIO18"]["pwm"] is True and pins["GPIO18"]["state"] == 0.25
    assert pins["GPIO27"]["state"] is True  # an active-low relay that is off: pin high
    assert driver.read("lamp") == Reading(0.0, False)
    assert driver.actuate("lamp", "on") == Reading(1.0, True)
    assert driver.pin_states()["GPIO17"]["state"] is True
    assert driver.actuate("lamp", "toggle") == Reading(0.0, False)
    assert driver.actuate("fan", "set", 0.4) == Reading(0.4, True)
    assert driver.pin_states()["GPIO18"]["state"] == 0.4
    assert driver.actuate("relay", "set", 1.0) == Reading(1.0, True)
    assert driver.pin_states()["GPIO27"]["state"] is False
    with pytest.raises(DriverError, match="bell is an input"):
        driver.actuate("bell", "on")
    with pytest.raises(DriverError, match="no device 'nope'"):
        driver.read("nope")


async def test_button_edges_cross_threads(driven: tuple[GpioDriver, Edges]) -> None:
    driver, edges = driven
    assert driver.read("bell") == Reading(0.0, False)  # pulled up: released
    await asyncio.to_thread(driver.drive_pin, "2", False)  # pressed: the pin goes low
    assert await edges.next() == ("bell", Reading(1.0, True))
    assert driver.read("bell") == Reading(1.0, True)
    await asyncio.to_thread(driver.drive_pin, "GPIO2", True)
    assert await edges.next() == ("bell", Reading(0.0, False))


async def test_floating_active_low_input(driven: tuple[GpioDriver, Edges]) -> None:
    driver, edges = driven
    assert driver.read("float") == Reading(1.0, True)  # a floating mock pin starts low
    driver.drive_pin("5", True)
    assert await edges.next() == ("float", Reading(0.0, False))
    driver.drive_pin("5", False)
    assert await edges.next() == ("float", Reading(1.0, True))


async def test_motion_sensor_from_its_queue_thread(driven: tuple[GpioDriver, Edges]) -> None:
    driver, edges = driven
    await until(lambda: driver.read("pir") == Reading(0.0, False), "pir reads inactive")
    driver.drive_pin("4", True)
    assert await edges.next() == ("pir", Reading(1.0, True))


async def test_cpu_temperature_file(driven: tuple[GpioDriver, Edges], tmp_path: Path) -> None:
    driver, _ = driven
    assert driver.read("cpu") == Reading(45.0, False)  # the mock file is created at 45 C
    (tmp_path / "temp").write_text("61500\n")
    assert driver.read("cpu") == Reading(61.5, True)
    (tmp_path / "temp").write_text("garbage\n")
    with pytest.raises(DriverError, match="cannot read cpu"):
        driver.read("cpu")
    reads = driver.read_inputs()
    assert "cpu" not in reads and reads["bell"] == Reading(0.0, False)


async def test_pin_errors(driven: tuple[GpioDriver, Edges]) -> None:
    driver, _ = driven
    with pytest.raises(DriverError, match="GPIO17 is an output pin"):
        driver.drive_pin("17", True)
    with pytest.raises(DriverError, match="not a pin"):
        driver.drive_pin("99", True)
    with pytest.raises(DriverError, match="not used by any device"):
        driver.drive_pin("GPIO22", True)
    with pytest.raises(DriverError, match="not a DistanceSensor trigger"):
        driver.set_echo_time("2", 0.001)


async def test_distance_sensor(tmp_path: Path) -> None:
    spec = BoardSpec("d", "mock", (DeviceSpec("garage", "DistanceSensor", echo="GPIO24",
                                              trigger="GPIO23", max_distance=2.0,
                                              threshold_distance=0.5),))
    driver = GpioDriver(spec, asyncio.get_running_loop(), Edges())
    await asyncio.to_thread(driver.open)
    try:
        await until(lambda: driver.read("garage").value > 1.5, "nothing in range at first")
        assert driver.read("garage").active is True  # gpiozero: active = out of range
        driver.set_echo_time("23", echo_time_for(0.2))
        await until(lambda: abs(driver.read("garage").value - 0.2) < 0.1, "object at 0.2 m")
        assert driver.read("garage").active is False
    finally:
        await asyncio.to_thread(driver.close)


def test_bad_factory_and_device(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="unknown pin factory"):
        make_factory("pigpio")
    bad = BoardSpec("b", "mock", (DeviceSpec("lamp", "LED", pin="BOARD1"),))  # 3V3 power pin
    driver = GpioDriver(bad, asyncio.new_event_loop(), Edges())
    with pytest.raises(DriverError, match="device lamp \\(LED on BOARD1\\)"):
        driver.open()
    assert driver.factory is None and not driver.devices


async def test_mocksim_socket(driven: tuple[GpioDriver, Edges], tmp_path: Path) -> None:
    driver, edges = driven
    with tempfile.TemporaryDirectory(prefix="gpio") as short:
        path = Path(short) / "sim.sock"
        sim = MockSim(driver, path)
        await sim.start()
        try:
            assert await sim_request(path, "pin 2 low") == {"ok": True, "pin": "GPIO2",
                                                             "state": False}
            assert await edges.next() == ("bell", Reading(1.0, True))
            driver.actuate("lamp", "on")
            state = await sim_request(path, "state")
            assert state["ok"] and state["pins"]["GPIO17"]["state"] is True
            assert await sim_request(path, "temp cpu 70") == {"ok": True, "device": "cpu",
                                                              "temperature": 70.0}
            assert driver.read("cpu") == Reading(70.0, True)
            for line, error in [("pin 17 high", "is an output pin"),
                                ("pin 2 sideways", "level must be high or low"),
                                ("temp lamp 3", "no CPUTemperature called 'lamp'"),
                                ("temp cpu hot", "'hot' is not a number"),
                                ("distance cpu 1", "no DistanceSensor"),
                                ("fly", "unknown request")]:
                answer = await sim_request(path, line)
                assert answer["ok"] is False and error in answer["error"], (line, answer)
        finally:
            await sim.stop()
        assert not path.exists()
