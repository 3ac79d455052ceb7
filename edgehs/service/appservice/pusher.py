"""Pushing events to application services: interest, transactions, ephemeral data.

https://spec.matrix.org/v1.19/application-service-api/#pushing-events

The write path asks :meth:`AppServicePusher.destinations_for_event` which services are
interested in an event and queues one outbox row per service in the event's own transaction.
The outbox sender then calls :meth:`deliver` with numbered transactions, in order, retried
unchanged until the service answers 200.
"""

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any
from urllib.parse import quote

import aiohttp
import aiosqlite

from edgehs.service.appservice.registry import AppService, AppServiceRegistry
from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.outbox import DeliveryFailed, OutboxSender
from edgehs.store.db import Database
from edgehs.store.events import EventStore
from edgehs.store.outbox import OutboxRow, enqueue_payload
from edgehs.store.rooms import MemberStore, RoomStore
from edgehs.types import JsonDict

log = logging.getLogger(__name__)

PREFIX = "as:"
TIMEOUT_S = 30.0


def destination(service: AppService) -> str:
    return PREFIX + service.id


class AppServicePusher:
    def __init__(
        self, registry: AppServiceRegistry, db: Database, events: EventStore,
        members: MemberStore, rooms: RoomStore, formatter: ClientEventFormatter,
        sender: OutboxSender, timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.registry = registry
        self.db = db
        self.events = events
        self.members = members
        self.rooms = rooms
        self.formatter = formatter
        self.sender = sender
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._legacy_path: set[str] = set()  # services that only answer /transactions/{id}
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- interest ---------------------------------------------------------------------------

    async def _interested(self, room_id: str, services: Iterable[AppService],
                          users: Iterable[str] = ()) -> list[AppService]:
        """The services interested in a room (its id, aliases or joined members) or in one of
        ``users``. Aliases and members are only looked up if a service needs them."""
        out: list[AppService] = []
        aliases: list[str] | None = None
        joined: frozenset[str] | None = None
        for service in services:
            if any(service.owns_user(u) for u in users) or service.owns_room(room_id):
                out.append(service)
                continue
            if service.aliases:
                if aliases is None:
                    aliases = await self.rooms.get_aliases_for_room(room_id)
                if any(service.owns_alias(a) for a in aliases):
                    out.append(service)
                    continue
            if service.users:
                if joined is None:
                    joined = await self.members.get_joined(room_id)  # cached per room
                if any(service.owns_user(u) for u in joined):
                    out.append(service)
        return out

    async def destinations_for_event(self, pdu: JsonDict, room_id: str) -> list[str]:
        """Outbox destinations of the services interested in a new event."""
        services = [s for s in self.registry.all() if s.url]
        if not services:
            return []
        users = [pdu["sender"]]
        if pdu["type"] == "m.room.member" and isinstance(pdu.get("state_key"), str):
            users.append(pdu["state_key"])
        return [destination(s) for s in await self._interested(room_id, services, users)]

    def on_edu(self, room_id: str, edu: JsonDict) -> None:
        """Typing and receipts: queue them for services with ``receive_ephemeral``."""
        self._spawn(self._queue_edu(room_id, edu))

    def _ephemeral_services(self) -> list[AppService]:
        return [s for s in self.registry.all() if s.receive_ephemeral and s.url]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Queue ephemeral data in the background, only if some service wants it."""
        if not self._ephemeral_services():
            work.close()
            return
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _enqueue_ephemeral(self, services: Iterable[AppService], edu: JsonDict) -> None:
        targets = [destination(s) for s in services]
        if not targets:
            return

        async def run(conn: aiosqlite.Connection) -> None:
            for target in targets:
                await enqueue_payload(conn, target, "ephemeral", edu)

        await self.db.write(run)
        self.sender.wake(targets)

    async def _queue_edu(self, room_id: str, edu: JsonDict) -> None:
        interested = await self._interested(room_id, self._ephemeral_services())
        await self._enqueue_ephemeral(interested, edu)

    def on_presence(self, user_id: str, edu: JsonDict) -> None:
        """m.presence of a local user: queue it for services with ``receive_ephemeral``
        that own the user or are interested in one of the user's rooms."""
        self._spawn(self._queue_presence(user_id, edu))

    async def _queue_presence(self, user_id: str, edu: JsonDict) -> None:
        services = self._ephemeral_services()
        chosen = {s.id: s for s in services if s.owns_user(user_id)}
        for room_id in await self.members.get_rooms_for_user(user_id):
            rest = [s for s in services if s.id not in chosen]
            if not rest:
                break
            chosen.update((s.id, s) for s in await self._interested(room_id, rest))
        await self._enqueue_ephemeral(chosen.values(), edu)

    # --- delivery ---------------------------------------------------------------------------

    async def deliver(self, destination_id: str, txn_id: int, rows: list[OutboxRow]) -> None:
        service = self.registry.by_id(destination_id.removeprefix(PREFIX))
        if service is None or not service.url:
            log.info("dropping %d rows for %s: no such service or no url", len(rows),
                     destination_id)
            return
        stored = await self.events.get_events(r.event_id for r in rows if r.event_id)
        in_order = [stored[r.event_id] for r in rows if r.event_id in stored]
        body: JsonDict = {
            "events": await self.formatter.format(in_order, None, bundle=False),
        }
        ephemeral = [r.payload for r in rows if r.kind == "ephemeral" and r.payload]
        if ephemeral:
            body["ephemeral"] = ephemeral
        to_device = [r.payload for r in rows if r.kind == "to_device" and r.payload]
        if to_device:
            # The spec (v1.19) has no field for them yet: MSC2409's name, which Synapse sends,
            # and the unprefixed one, which mautrix-python reads first.
            body["to_device"] = to_device
            body["de.sorunome.msc2409.to_device"] = to_device
        await self._put(service, txn_id, body)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session

    async def _put(self, service: AppService, txn_id: int, body: JsonDict) -> None:
        assert service.url is not None
        base = service.url.rstrip("/")
        paths = [f"/_matrix/app/v1/transactions/{txn_id}", f"/transactions/{txn_id}"]
        if service.id in self._legacy_path:
            paths.reverse()
        headers = {"Authorization": f"Bearer {service.hs_token}"}
        # Old receivers (like the 2015 examples) read the token from the query string.
        params = {"access_token": service.hs_token}
        for path in paths:
            try:
                async with self._client().put(base + path, json=body, headers=headers,
                                              params=params) as resp:
                    status = resp.status
                    text = (await resp.text())[:200]
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
            if status == 200:
                if path.startswith("/transactions"):
                    self._legacy_path.add(service.id)
                return
            if status not in (404, 405):
                break  # a real refusal: do not try the other path
        raise DeliveryFailed(f"HTTP {status} from {quote(service.id)}: {text}")
