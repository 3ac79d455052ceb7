"""The GPIO device service end to end: a real edgehs process, ``python -m devices.gpio`` as a
separate process on gpiozero's MockFactory, driven at the pin level through its simulation
socket (devices/gpio/mocksim.py), and members acting over plain Client-Server HTTP.
"""

import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from devices_support import *  # noqa: F403  (the device fixtures)
from devices_support import OWNER, SERVER_NAME, DeviceProcess, DevicesSetup, MatrixUser, run_module

from devices.gpio.mocksim import sim_request

pytestmark = pytest.mark.integration

BOARD = f"@gpio_board:{SERVER_NAME}"
ALIAS = f"#gpio_board:{SERVER_NAME}"
DEVICE = "org.edgehs.gpio.device"
EDGE = "org.edgehs.gpio.edge"

StartDevice = Callable[..., Awaitable[DeviceProcess]]
MakeUser = Callable[[str], Awaitable[MatrixUser]]


@pytest.fixture
def device_services() -> list[str]:
    return ["gpio"]


@pytest.fixture
def sim_dir() -> Iterator[Path]:
    """A short folder for the simulation socket (a unix socket path must be < 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="gpio"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Rig:
    def __init__(self, devices: DevicesSetup, sim: Path, proc: DeviceProcess,
                 owner: MatrixUser, room_id: str) -> None:
        self.devices = devices
        self.sim = sim
        self.proc = proc
        self.owner = owner
        self.room_id = room_id

    async def sim_ok(self, line: str) -> dict[str, Any]:
        answer = await sim_request(self.sim, line)
        assert answer["ok"] is True, (line, answer)
        return answer

    async def pin(self, name: str) -> Any:
        return (await self.sim_ok("state"))["pins"][name]["state"]

    async def device(self, name: str, predicate: Callable[[dict[str, Any]], bool] | None = None
                     ) -> dict[str, Any]:
        return await self.owner.wait_for_state(self.room_id, DEVICE, name, predicate)

    async def answer_to(self, user: MatrixUser, event_id: str) -> dict[str, Any]:
        def replies(event: dict[str, Any]) -> bool:
            relates = event["content"].get("m.relates_to") or {}
            return relates.get("m.in_reply_to", {}).get("event_id") == event_id
        return await user.wait_for(self.room_id, replies, type="m.room.message", sender=BOARD,
                                   after=event_id, what=f"the answer to {event_id}")


@pytest.fixture
async def rig(devices: DevicesSetup, owner: MatrixUser, device_process: StartDevice,
              sim_dir: Path) -> Rig:
    sim = sim_dir / "sim.sock"
    devices.update("gpio", lambda s: s["boards"][0].update(sim_socket=str(sim)))
    proc = await device_process("gpio")
    room_id = await owner.join_when_invited(ALIAS)
    return Rig(devices, sim, proc, owner, room_id)


async def test_gpio_room_and_initial_state(rig: Rig) -> None:
    owner, room_id = rig.owner, rig.room_id
    power = await owner.state_event(room_id, "m.room.power_levels")
    assert power is not None and power["users"][OWNER] == 50
    board = await owner.wait_for_state(room_id, "org.edgehs.gpio.board")
    assert board["board"] == "board" and board["pin_factory"] == "mock"
    assert [d["name"] for d in board["devices"]] == ["porch_light", "doorbell", "hall_motion",
                                                     "cpu"]
    light = await rig.device("porch_light")
    assert {k: light[k] for k in ("kind", "direction", "pin", "value", "active", "pwm")} == {
        "kind": "LED", "direction": "output", "pin": "GPIO17", "value": "0", "active": False,
        "pwm": False}
    bell = await rig.device("doorbell")
    assert (bell["kind"], bell["pin"], bell["pressed"], bell["active"]) == (
        "Button", "GPIO2", False, False)
    assert isinstance(bell["updated_ts"], int)
    cpu = await rig.device("cpu")
    assert (cpu["value"], cpu["millidegrees"], cpu["unit"], cpu["active"]) == (
        "45", 45000, "°C", False)


async def test_gpio_mock_pin_high_is_a_state_change(rig: Rig) -> None:
    owner, room_id = rig.owner, rig.room_id
    await rig.device("hall_motion", lambda c: c["active"] is False)
    await rig.sim_ok("pin 4 high")
    motion = await rig.device("hall_motion", lambda c: c["active"] is True)
    assert motion["motion"] is True and motion["value"] == "1"
    edge = await owner.wait_for(room_id, lambda e: e["content"].get("device") == "hall_motion",
                                type=EDGE, sender=BOARD)
    assert {k: edge["content"][k] for k in ("kind", "edge", "active", "value", "edges")} == {
        "kind": "MotionSensor", "edge": "activated", "active": True, "value": "1", "edges": 1}
    assert isinstance(edge["content"]["ts"], int)

    await rig.sim_ok("pin 2 low")  # the doorbell button pulls its pin low
    bell = await rig.device("doorbell", lambda c: c["pressed"] is True)
    assert bell["active"] is True
    await rig.sim_ok("temp cpu 85.5")  # over the 80 C threshold: polled, then published
    cpu = await rig.device("cpu", lambda c: c["value"] == "85.5")
    assert cpu["active"] is True and cpu["over_threshold"] is True


async def test_gpio_on_lights_the_led(rig: Rig) -> None:
    owner, room_id = rig.owner, rig.room_id
    assert await rig.pin("GPIO17") is False
    command = await owner.send_text(room_id, "!on porch_light")
    answer = await rig.answer_to(owner, command)
    assert answer["content"]["msgtype"] == "m.notice"
    assert answer["content"]["body"] == "porch_light is on"
    assert answer["content"]["org.edgehs.gpio.state"]["active"] is True
    light = await rig.device("porch_light", lambda c: c["active"] is True)
    assert light["value"] == "1" and light["changed_by"] == OWNER
    assert await rig.pin("GPIO17") is True

    structured = await owner.send(room_id, {"device": "porch_light", "action": "off"},
                                  event_type="org.edgehs.gpio.command")
    answer = await rig.answer_to(owner, structured)
    assert answer["content"]["body"] == "porch_light is off"
    await rig.device("porch_light", lambda c: c["active"] is False)
    assert await rig.pin("GPIO17") is False

    bad = await owner.send_text(room_id, "!set porch_light 0.5")
    answer = await rig.answer_to(owner, bad)
    assert "only on or off" in answer["content"]["body"]
    unknown = await owner.send_text(room_id, "!on garden")
    assert "no device 'garden'" in (await rig.answer_to(owner, unknown))["content"]["body"]
    status = await owner.send_text(room_id, "!status")
    text = (await rig.answer_to(owner, status))["content"]["body"]
    assert "- porch_light (LED, GPIO17): off" in text and "- doorbell (Button, GPIO2)" in text
    helped = await owner.send_text(room_id, "!help")
    assert "!set NAME VALUE" in (await rig.answer_to(owner, helped))["content"]["body"]
    assert await rig.pin("GPIO17") is False


async def test_gpio_non_privileged_member_is_refused(rig: Rig, make_user: MakeUser) -> None:
    owner, room_id = rig.owner, rig.room_id
    bob = await make_user("bob")
    await owner.request("POST", f"/_matrix/client/v3/rooms/{room_id}/invite",
                        json={"user_id": bob.user_id})
    await bob.join(room_id)
    before = await rig.device("porch_light")
    command = await bob.send_text(room_id, "!on porch_light")
    notice = await bob.wait_for(room_id, type="m.room.message", sender=BOARD, after=command,
                                what="the refusal")
    assert notice["content"]["body"] == (f"{bob.user_id} may not switch porch_light on here: "
                                         f"needs power 50 (has 0)")
    structured = await bob.send(room_id, {"device": "porch_light", "action": "on"},
                                event_type="org.edgehs.gpio.command")
    await bob.wait_for(room_id, lambda e: "may not" in e["content"].get("body", ""),
                       type="m.room.message", sender=BOARD, after=structured)
    status = await bob.send_text(room_id, "!status porch_light")  # reading is for everyone
    answer = await rig.answer_to(bob, status)
    assert answer["content"]["body"].endswith("- porch_light (LED, GPIO17): off")
    assert await rig.pin("GPIO17") is False
    assert await owner.state_event(room_id, DEVICE, "porch_light") == before


async def test_gpio_survives_edgehs_restart(rig: Rig, server: Any) -> None:
    owner, room_id = rig.owner, rig.room_id
    await rig.device("doorbell", lambda c: c["pressed"] is False)
    await server.stop()
    await rig.sim_ok("pin 2 low")  # pressed while edgehs is down
    await rig.sim_ok("pin 4 high")
    await server.start()
    bell = await rig.device("doorbell", lambda c: c["pressed"] is True)
    assert bell["active"] is True
    await rig.device("hall_motion", lambda c: c["active"] is True)
    edges = [e for e in await owner.messages(room_id) if e["type"] == EDGE]
    assert sorted((e["content"]["device"], e["content"]["edge"]) for e in edges) == [
        ("doorbell", "activated"), ("hall_motion", "activated")]  # each once, none lost
    command = await owner.send_text(room_id, "!on porch_light")
    assert (await rig.answer_to(owner, command))["content"]["body"] == "porch_light is on"
    assert await rig.pin("GPIO17") is True
    assert rig.proc.running


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["boards"][0]["devices"][1].update(pin=17),
     "devices.yaml: gpio.boards[0].devices[1].pin: GPIO17 is already used by porch_light"),
    (lambda s: s["boards"][0]["devices"][0].update(kind="Lamp"),
     "devices.yaml: gpio.boards[0].devices[0].kind: must be one of Button,"),
    (lambda s: s.update(pin_factory="gpio"), "devices.yaml: gpio.pin_factory: must be one of"),
])
async def test_gpio_bad_config_names_the_key(devices: DevicesSetup, change: Any,
                                             message: str) -> None:
    devices.update("gpio", change)
    done = run_module("devices.gpio", "-c", str(devices.config_path))
    assert done.returncode == 2, done
    assert message in done.stderr
    assert "Traceback" not in done.stderr
