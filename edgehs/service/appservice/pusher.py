"""Pushing events to application services: interest, transactions, ephemeral data.

https://spec.matrix.org/v1.19/application-service-api/#pushing-events

The write path asks :meth:`AppServicePusher.destinations_for_event` which services are
interested in an event and queues one outbox row per service in the event's own transaction.
Ephemeral data (typing, receipts, presence) is not queued: the outbox builds it from its streams
(``service.appservice.ephemeral``) when it builds a transaction; a change only wakes the
services that receive it. The outbox then calls :meth:`send` (the ``OutboundSender``
interface) with numbered transactions, in order, retried unchanged until the service answers
200. Requests go through the server's one shared HTTP client.
"""

import logging
from collections.abc import Iterable, Sequence
from urllib.parse import quote

import aiohttp

from edgehs.service.appservice.registry import AppService, AppServiceRegistry
from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.outbound import Delivery, DeliveryFailed, EduStream, Transaction
from edgehs.service.outbox import OutboxSender
from edgehs.store.events import EventStore
from edgehs.store.rooms import MemberStore, RoomStore
from edgehs.types import JsonDict

log = logging.getLogger(__name__)

PREFIX = "as:"
TIMEOUT_S = 30.0


def destination(service: AppService) -> str:
    return PREFIX + service.id


class AppServicePusher:
    def __init__(
        self, registry: AppServiceRegistry, http: aiohttp.ClientSession, events: EventStore,
        members: MemberStore, rooms: RoomStore, formatter: ClientEventFormatter,
        sender: OutboxSender, timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.registry = registry
        self.http = http  # the server's one outbound client, shared (closed by HomeServer)
        self.events = events
        self.members = members
        self.rooms = rooms
        self.formatter = formatter
        self.sender = sender
        self.timeout_s = timeout_s
        self._legacy_path: set[str] = set()  # services that only answer /transactions/{id}
        self._streams: list[EduStream] = []

    def set_edu_streams(self, streams: Sequence[EduStream]) -> None:
        """The ephemeral streams (typing, receipts, presence) built into transactions."""
        self._streams = list(streams)

    def edu_streams(self) -> Sequence[EduStream]:
        return self._streams

    # --- interest ---------------------------------------------------------------------------

    async def interested(self, room_id: str, services: Iterable[AppService],
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
        return [destination(s) for s in await self.interested(room_id, services, users)]

    def _ephemeral_services(self) -> list[AppService]:
        return [s for s in self.registry.all() if s.receive_ephemeral and s.url]

    def _service(self, destination_id: str) -> AppService | None:
        service = self.registry.by_id(destination_id.removeprefix(PREFIX))
        return service if service is not None and service.url else None

    def on_edu(self, room_id: str, edu: JsonDict) -> None:
        """Typing or a public receipt changed: the outbox builds the EDUs; wake the services
        that receive them (interest is decided when the transaction is built)."""
        self._wake_ephemeral()

    def on_presence(self, user_id: str, edu: JsonDict) -> None:
        """A local user's presence changed: as :meth:`on_edu`."""
        self._wake_ephemeral()

    def _wake_ephemeral(self) -> None:
        services = self._ephemeral_services()
        if services:
            self.sender.wake(destination(s) for s in services)

    def receives_ephemeral(self, destination_id: str) -> bool:
        """Does this destination's service receive ephemeral data at all (nothing is read for
        those that do not)?"""
        service = self._service(destination_id)
        return service is not None and service.receive_ephemeral

    async def wants_ephemeral(self, destination_id: str, room_id: str) -> bool:
        """Does this destination's service receive the ephemeral data of ``room_id``?"""
        service = self._service(destination_id)
        return service is not None and service.receive_ephemeral and bool(
            await self.interested(room_id, [service]))

    async def wants_presence(self, destination_id: str, user_id: str) -> bool:
        """Does this destination's service receive the presence of local user ``user_id``:
        it owns the user or is interested in one of the user's rooms?"""
        service = self._service(destination_id)
        if service is None or not service.receive_ephemeral:
            return False
        if service.owns_user(user_id):
            return True
        for room_id in await self.members.get_rooms_for_user(user_id):
            if await self.interested(room_id, [service]):
                return True
        return False

    # --- delivery ---------------------------------------------------------------------------

    async def send(self, destination_id: str, txn: Transaction) -> Delivery:
        """PUT one transaction to the service (the ``OutboundSender`` interface)."""
        try:
            await self._deliver(destination_id, txn)
        except DeliveryFailed as exc:
            log.info("appservice transaction %d to %s: %s", txn.txn_id, destination_id, exc)
            return Delivery.RETRY
        return Delivery.SENT

    async def _deliver(self, destination_id: str, txn: Transaction) -> None:
        rows, txn_id = txn.rows, txn.txn_id
        service = self._service(destination_id)
        if service is None:
            log.info("dropping %d rows for %s: no such service or no url", len(rows),
                     destination_id)
            return
        stored = await self.events.get_events(r.event_id for r in rows if r.event_id)
        in_order = [stored[r.event_id] for r in rows if r.event_id in stored]
        body: JsonDict = {
            "events": await self.formatter.format(in_order, None, bundle=False),
        }
        # EDUs built from their streams (and rows queued before EDUs were built so).
        ephemeral = [*txn.edus,
                     *(r.payload for r in rows if r.kind == "ephemeral" and r.payload)]
        if ephemeral:
            body["ephemeral"] = ephemeral
        to_device = [r.payload for r in rows if r.kind == "to_device" and r.payload]
        if to_device:
            # The spec (v1.19) has no field for them yet: MSC2409's name, which Synapse sends,
            # and the unprefixed one, which mautrix-python reads first.
            body["to_device"] = to_device
            body["de.sorunome.msc2409.to_device"] = to_device
        await self._put(service, txn_id, body)

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
                async with self.http.put(
                        base + path, json=body, headers=headers, params=params,
                        timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
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
