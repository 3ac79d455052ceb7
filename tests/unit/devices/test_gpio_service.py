"""devices.gpio.device.GpioService in process: room events -> commands -> MockFactory pins ->
events, with a fake intent recording what would be sent to edgehs (no sockets)."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devices.common.config import load_service_config
from devices.common.intent import HomeserverClient
from devices.gpio.defaults import simulated_section
from devices.gpio.device import Board, GpioService
from devices.gpio.driver import DriverError

ROOM = "!board:t.local"
OWNER = "@owner:t.local"
BOB = "@bob:t.local"
WAIT = 10.0


class FakeIntent:
    user_id = "@gpio_board:t.local"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, dict[str, Any]]] = []

    async def send_event(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        assert room_id == ROOM
        self.sent.append((event_type, None, content))
        return f"$e{len(self.sent)}"

    async def send_state(self, room_id: str, event_type: str, state_key: str,
                         content: dict[str, Any]) -> str:
        assert room_id == ROOM
        self.sent.append((event_type, state_key, content))
        return f"$e{len(self.sent)}"


class Rig:
    def __init__(self, service: GpioService, board: Board, intent: FakeIntent) -> None:
        self.service = service
        self.board = board
        self.intent = intent
        self.refused: list[tuple[str, str]] = []

    async def event(self, content: dict[str, Any], sender: str = OWNER,
                    event_type: str = "m.room.message", room_id: str = ROOM,
                    **extra: Any) -> None:
        await self.service.on_event({"type": event_type, "room_id": room_id, "sender": sender,
                                     "event_id": "$cmd", "content": content, **extra})
        await asyncio.wait_for(self.board.outbox.drain(), WAIT)

    async def text(self, body: str, sender: str = OWNER) -> None:
        await self.event({"msgtype": "m.text", "body": body}, sender)

    def notices(self) -> list[str]:
        return [c["body"] for t, _k, c in self.intent.sent if t == "m.room.message"]

    def states(self, name: str) -> list[dict[str, Any]]:
        return [c for t, k, c in self.intent.sent if t == "org.edgehs.gpio.device" and k == name]


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    raw = {"homeserver": {"url": "http://127.0.0.1:9", "server_name": "t.local"},
           "gpio": {"appservice": {"listen": "127.0.0.1:9", "as_token": "a", "hs_token": "b"},
                    **simulated_section(tmp_path)}}
    (tmp_path / "devices.yaml").write_text(yaml.safe_dump(raw))
    config = load_service_config(tmp_path / "devices.yaml", "gpio")
    GpioService.validate(config)
    client = HomeserverClient("http://127.0.0.1:9", "a", "t.local")
    service = GpioService(config, client)
    intent = FakeIntent()
    board = Board(service.settings.boards[0], intent, ROOM)  # type: ignore[arg-type]
    await service._run_board(board)  # what start() does once the room exists
    await asyncio.wait_for(board.outbox.drain(), WAIT)
    assert {k for t, k, _c in intent.sent if t == "org.edgehs.gpio.device"} == {
        "porch_light", "doorbell", "hall_motion", "cpu"}
    assert intent.sent[0][0] == "org.edgehs.gpio.board"
    intent.sent.clear()
    made = Rig(service, board, intent)

    async def may_actuate(room_id: str, sender: str) -> bool:
        return sender == OWNER

    async def refuse(room_id: str, sender: str, what: str) -> None:
        made.refused.append((sender, what))

    monkeypatch.setattr(service, "may_actuate", may_actuate)
    monkeypatch.setattr(service, "refuse", refuse)
    yield made
    await service.stop()
    await client.close()


async def test_on_switches_and_answers(rig: Rig) -> None:
    await rig.text("!on porch_light")
    assert rig.board.driver is not None
    assert rig.board.driver.pin_states()["GPIO17"]["state"] is True
    (state,) = rig.states("porch_light")
    assert state["active"] is True and state["changed_by"] == OWNER
    _type, _key, answer = rig.intent.sent[-1]
    assert answer["body"] == "porch_light is on" and answer["msgtype"] == "m.notice"
    assert answer["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}}
    assert answer["org.edgehs.gpio.state"]["device"] == "porch_light"
    assert rig.intent.sent.index(("org.edgehs.gpio.device", "porch_light", state)) < len(
        rig.intent.sent) - 1  # the state event goes out before the answer


async def test_refused_member_changes_nothing(rig: Rig) -> None:
    await rig.text("!on porch_light", sender=BOB)
    await rig.event({"device": "porch_light", "action": "toggle"}, sender=BOB,
                    event_type="org.edgehs.gpio.command")
    assert rig.refused == [(BOB, "switch porch_light on"), (BOB, "toggle porch_light")]
    assert rig.intent.sent == []
    assert rig.board.driver is not None
    assert rig.board.driver.pin_states()["GPIO17"]["state"] is False


async def test_queries_errors_and_ignored_events(rig: Rig) -> None:
    await rig.text("!status", sender=BOB)
    await rig.event({"action": "status", "device": "cpu"}, event_type="org.edgehs.gpio.command")
    await rig.text("!on doorbell")
    await rig.text("!frobnicate")
    await rig.event({"device": "x", "action": "on"}, event_type="org.edgehs.gpio.command",
                    state_key="")  # a state event of that type is not a command
    await rig.event({"msgtype": "m.notice", "body": "!on porch_light"})
    await rig.event({"msgtype": "m.text", "body": "!on porch_light"}, room_id="!other:t.local")
    await rig.text("just chatting")
    status, cpu, doorbell, unknown = rig.notices()
    assert "- porch_light (LED, GPIO17): off" in status
    assert cpu.endswith("- cpu (CPUTemperature, internal): 45.0 °C")
    assert doorbell == "doorbell is an input (Button); it cannot be switched"
    assert unknown == "unknown command !frobnicate: try !help"


async def test_driver_failure_is_answered(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> None:
        raise DriverError("cannot on porch_light: pin is stuck")
    assert rig.board.driver is not None
    monkeypatch.setattr(rig.board.driver, "actuate", broken)
    await rig.text("!on porch_light")
    assert rig.notices() == ["failed: cannot on porch_light: pin is stuck"]


async def test_an_edge_becomes_edge_and_state_events(rig: Rig) -> None:
    driver = rig.board.driver
    assert driver is not None
    driver.drive_pin("2", False)  # the doorbell (bounce_time 0.05) is pressed
    for _ in range(int(WAIT / 0.02)):
        if rig.states("doorbell"):
            break
        await asyncio.sleep(0.02)
    await asyncio.wait_for(rig.board.outbox.drain(), WAIT)
    edge_type, _, edge = rig.intent.sent[0]
    assert edge_type == "org.edgehs.gpio.edge"
    assert (edge["device"], edge["edge"], edge["edges"]) == ("doorbell", "activated", 1)
    (state,) = rig.states("doorbell")
    assert state["pressed"] is True and state["updated_ts"] == edge["ts"]
