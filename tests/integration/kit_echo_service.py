"""A tiny device service for the kit's own tests: service "echo", devices "box" (or
``echo.boxes``), no hardware.

- A member's m.text "!ping" -> "pong" from the device user if the sender may actuate, else the
  kit's refusal notice. The pong carries ``reply_to`` (the ping's event id) so tests can count
  answers per ping.
- SIGUSR1 -> the device says "tick N" (N = 1, 2, ...): an event that starts in the service, not
  in edgehs, for the restart test.

Run: ``PYTHONPATH=tests/integration python -m kit_echo_service -c devices.yaml``.
"""

import asyncio
import signal
from typing import Any

from devices.common.config import ServiceConfig
from devices.common.device import DeviceService
from devices.common.intent import HomeserverClient, Intent
from devices.common.runner import run_service


class EchoService(DeviceService):
    service = "echo"

    def __init__(self, config: ServiceConfig, client: HomeserverClient) -> None:
        super().__init__(config, client)
        self.intents: dict[str, Intent] = {}  # room id -> the device user
        self.ticks = 0
        self.pending: set[asyncio.Task[None]] = set()

    @classmethod
    def validate(cls, config: ServiceConfig) -> None:
        config.section.check_keys(["boxes"])
        config.section.str_list("boxes", ["box"])

    async def start(self) -> None:
        for name in self.config.section.str_list("boxes", ["box"]):
            intent, room_id = await self.setup_device(
                name, displayname=f"Echo {name}", room_name=f"Echo {name}",
                topic="A kit test device that answers !ping")
            self.intents[room_id] = intent
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self._tick)

    async def stop(self) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        for task in self.pending:
            task.cancel()

    def _tick(self) -> None:
        self.ticks += 1
        task = asyncio.create_task(self._say_tick(self.ticks))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _say_tick(self, n: int) -> None:
        for room_id, intent in self.intents.items():
            self.log.info("sending tick %d", n)
            await intent.send_text(room_id, f"tick {n}")
            self.log.info("sent tick %d", n)

    async def on_event(self, event: dict[str, Any]) -> None:
        room_id = event.get("room_id")
        intent = self.intents.get(room_id) if isinstance(room_id, str) else None
        content = event.get("content") or {}
        if intent is None or event.get("type") != "m.room.message":
            return
        if content.get("msgtype") != "m.text" or content.get("body") != "!ping":
            return
        assert isinstance(room_id, str)
        sender = str(event.get("sender"))
        if await self.may_actuate(room_id, sender):
            await intent.send_event(room_id, "m.room.message", {
                "msgtype": "m.text", "body": "pong", "reply_to": event.get("event_id")})
        else:
            await self.refuse(room_id, sender, "ping")


if __name__ == "__main__":
    raise SystemExit(run_service(EchoService))
