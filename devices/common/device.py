"""``DeviceService``: the base class of the midi, gpio and camera services, and ``PowerGate``,
who may actuate a device (power level in its room >= ``actuate_power``).

A device ``name`` of service ``svc`` is the virtual user ``@{svc}_{name}:{server}`` and the
room ``#{svc}_{name}:{server}``, created private with the owners invited at ``actuate_power``.
``ServiceEvents`` sits between the AS server and the service: it waits until the service has
started, keeps the gate's power levels fresh and drops the service's own users' events (echo).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from devices.common.config import ServiceConfig
from devices.common.intent import HomeserverClient, Intent

log = logging.getLogger(__name__)


class PowerGate:
    """Power levels per room (fetched once, then refreshed from m.room.power_levels events)."""

    def __init__(self, intent: Intent, threshold: int) -> None:
        self.intent = intent
        self.threshold = threshold
        self._levels: dict[str, dict[str, Any]] = {}
        self._readers: dict[str, Intent] = {}  # a room member to read each room's state as

    def use_intent(self, room_id: str, intent: Intent) -> None:
        """Read ``room_id``'s power levels as ``intent`` (a member; the sender may not be)."""
        self._readers[room_id] = intent

    async def level(self, room_id: str, user_id: str) -> int:
        """``user_id``'s power level in the room (``users_default`` when not listed)."""
        content = self._levels.get(room_id)
        if content is None:
            reader = self._readers.get(room_id, self.intent)
            content = await reader.get_state(room_id, "m.room.power_levels") or {}
            self._levels[room_id] = content
        users = content.get("users") or {}
        value = users.get(user_id, content.get("users_default", 0))
        try:
            return int(value)
        except (TypeError, ValueError):
            return 0

    async def allowed(self, room_id: str, user_id: str) -> bool:
        return await self.level(room_id, user_id) >= self.threshold

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "m.room.power_levels" and event.get("state_key") == "":
            content = event.get("content")
            room_id = event.get("room_id")
            if isinstance(content, dict) and isinstance(room_id, str):
                self._levels[room_id] = content

    def forget(self, room_id: str) -> None:
        self._levels.pop(room_id, None)


class DeviceService:
    """Subclass per service: set ``service``, implement ``start``/``stop``/``on_event`` and,
    for config checks, ``validate``."""

    service: ClassVar[str]

    def __init__(self, config: ServiceConfig, client: HomeserverClient) -> None:
        self.config = config
        self.client = client
        self.server_name = config.homeserver.server_name
        self.gate_threshold = config.actuate_power
        self.log = logging.getLogger(f"devices.{self.service}")
        self.bot = client.intent(self.service)  # the registration's sender
        self.gate = PowerGate(self.bot, self.gate_threshold)
        self.rooms: dict[str, str] = {}  # room id -> device name (filled by setup_device)

    # --- naming --------------------------------------------------------------------------

    def user_id_for(self, name: str) -> str:
        return f"@{self.service}_{name}:{self.server_name}"

    def alias_localpart(self, name: str) -> str:
        return f"{self.service}_{name}"

    def alias_for(self, name: str) -> str:
        return f"#{self.alias_localpart(name)}:{self.server_name}"

    def is_own_user(self, user_id: str) -> bool:
        """The sender or any virtual user of this service (whose events are our echo)."""
        suffix = f":{self.server_name}"
        if not user_id.endswith(suffix):
            return False
        localpart = user_id[1:-len(suffix)]
        return localpart == self.service or localpart.startswith(f"{self.service}_")

    # --- rooms ---------------------------------------------------------------------------

    async def setup_device(self, name: str, *, displayname: str, room_name: str,
                           topic: str = "",
                           initial_state: Sequence[dict[str, Any]] = ()) -> tuple[Intent, str]:
        """Register the device's virtual user and make sure its room exists with the owners
        invited at ``actuate_power``; (intent, room id)."""
        intent = self.client.intent(self.user_id_for(name))
        await intent.ensure_registered(displayname)
        owners = self.config.owners
        room_id = await intent.ensure_room(
            self.alias_localpart(name), name=room_name, topic=topic, invite=owners,
            power_users={o: self.config.actuate_power for o in owners},
            initial_state=initial_state)
        self.rooms[room_id] = name
        self.gate.forget(room_id)
        self.gate.use_intent(room_id, intent)
        self.log.info("device %s: %s in room %s (%s)", name, intent.user_id, room_id,
                      self.alias_for(name))
        return intent, room_id

    def device_intent(self, name: str) -> Intent:
        return self.client.intent(self.user_id_for(name))

    # --- lifecycle and events: override ---------------------------------------------------

    async def start(self) -> None:
        """Open drivers, set up rooms, start loops."""

    async def stop(self) -> None:
        """Close drivers, cancel tasks."""

    async def on_event(self, event: dict[str, Any]) -> None:
        """A room event from someone else than this service's own users."""

    async def on_ephemeral(self, edu: dict[str, Any]) -> None:
        """An ephemeral event (typing, receipts) if the registration asks for them."""

    async def on_to_device(self, message: dict[str, Any]) -> None:
        """A to-device message for one of this service's users."""

    async def query_user(self, user_id: str) -> bool:
        return False

    async def query_alias(self, alias: str) -> bool:
        return False

    # --- permissions ---------------------------------------------------------------------

    async def may_actuate(self, room_id: str, sender: str) -> bool:
        return await self.gate.allowed(room_id, sender)

    async def refuse(self, room_id: str, sender: str, what: str) -> None:
        """Tell the room, as the device (or the bot outside device rooms), that ``sender`` may
        not ``what`` here."""
        has = await self.gate.level(room_id, sender)
        name = self.rooms.get(room_id)
        intent = self.device_intent(name) if name is not None else self.bot
        await intent.send_notice(room_id, f"{sender} may not {what} here: needs power "
                                          f"{self.gate_threshold} (has {has})")

    @classmethod
    def validate(cls, config: ServiceConfig) -> None:
        """Raise DeviceConfigError for a bad service section; runs before anything starts.
        The default refuses nothing but ``appservice``-only sections are fine."""


class ServiceEvents:
    """The AS server's EventHandler for a DeviceService: events wait until ``ready`` is set
    (the service started), update the power gate, and skip the service's own users."""

    def __init__(self, service: DeviceService) -> None:
        self.service = service
        self.ready = asyncio.Event()
        self.start_called = False  # stop() is only called when start() was

    async def on_event(self, event: dict[str, Any]) -> None:
        await self.ready.wait()
        self.service.gate.on_event(event)
        sender = event.get("sender")
        if isinstance(sender, str) and self.service.is_own_user(sender):
            return
        await self.service.on_event(event)

    async def on_ephemeral(self, edu: dict[str, Any]) -> None:
        await self.ready.wait()
        await self.service.on_ephemeral(edu)

    async def on_to_device(self, message: dict[str, Any]) -> None:
        await self.ready.wait()
        await self.service.on_to_device(message)

    async def query_user(self, user_id: str) -> bool:
        return await self.service.query_user(user_id)

    async def query_alias(self, alias: str) -> bool:
        return await self.service.query_alias(alias)
