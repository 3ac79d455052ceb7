"""THE write path for local events.

Every local event goes through :meth:`EventService.send`:

1. per-room lock;
2. build: prev_events (the forward extremities), depth, auth_events selected from the state
   before the event;
3. content hash + signature, event id (reference hash);
4. the authorization rules (``protocol.event_auth``);
5. ONE store transaction: the event, its edges, its state group, current state and the
   membership index;
6. the notifier advances the stream position, waking /sync and the senders.
"""

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiosqlite
from signedjson.types import SigningKey

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.canonical_json import json_size
from edgehs.protocol.event_auth import auth_types_for_event, check_auth_rules
from edgehs.protocol.events import compute_event_id, room_id_for_create_event, sign_event
from edgehs.protocol.room_versions import RoomVersion, get_room_version
from edgehs.service.notifier import Notifier
from edgehs.store.db import Database
from edgehs.store.events import (
    DuplicateTransaction,
    EventStore,
    StoredEvent,
    insert_event,
    set_forward_extremities,
)
from edgehs.store.rooms import MemberStore, RoomStore, insert_room
from edgehs.store.state import StateStore
from edgehs.store.streams import StreamIdGenerator
from edgehs.types import JsonDict, StateKey, StateMap

MAX_EVENT_SIZE = 65536
MAX_PREV_EVENTS = 10
MAX_DEPTH = 2**63 - 1


@dataclass
class RoomHead:
    """What the next local event in a room builds on; cached per room, refreshed on write."""

    extremities: list[str]
    depth: int
    state_group: int
    state: StateMap


def now_ms() -> int:
    return int(time.time() * 1000)


class EventService:
    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        db: Database,
        events: EventStore,
        state: StateStore,
        rooms: RoomStore,
        members: MemberStore,
        streams: StreamIdGenerator,
        notifier: Notifier,
    ) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.db = db
        self.events = events
        self.state = state
        self.rooms = rooms
        self.members = members
        self.streams = streams
        self.notifier = notifier
        self._locks: dict[str, asyncio.Lock] = {}
        self._heads: dict[str, RoomHead] = {}

    def room_lock(self, room_id: str) -> asyncio.Lock:
        return self._locks.setdefault(room_id, asyncio.Lock())

    async def room_version(self, room_id: str) -> RoomVersion:
        version = await self.rooms.get_room_version_id(room_id)
        if version is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Unknown room {room_id}")
        return get_room_version(version)

    async def _head(self, room_id: str) -> RoomHead:
        head = self._heads.get(room_id)
        if head is not None:
            return head
        extremities = await self.events.get_forward_extremities(room_id)
        pdus = await self.events.get_pdus(extremities)
        if not pdus:
            raise MatrixError(404, Codes.NOT_FOUND, f"Unknown room {room_id}")
        groups = {await self.state.get_state_group_after(e) for e in pdus}
        if len(groups) != 1:
            # Several extremities with different state arrive with federation; resolution of
            # the current state happens when those events are ingested.
            raise MatrixError(500, Codes.UNKNOWN, "room has unresolved forks")
        group = groups.pop()
        assert group is not None
        head = RoomHead(
            extremities=sorted(pdus, key=lambda e: -int(pdus[e]["depth"]))[:MAX_PREV_EVENTS],
            depth=max(int(p["depth"]) for p in pdus.values()),
            state_group=group,
            state=await self.state.get_state_group(group),
        )
        self._heads[room_id] = head
        return head

    async def current_state_event(self, room_id: str, key: StateKey) -> JsonDict | None:
        event_id = await self.state.get_current_state_event_id(room_id, key)
        if event_id is None:
            return None
        ev = await self.events.get_event(event_id)
        return None if ev is None else ev.pdu

    # --- the write path --------------------------------------------------------------------

    async def send(
        self,
        room_id: str,
        sender: str,
        event_type: str,
        content: JsonDict,
        state_key: str | None = None,
        *,
        txn_id: str | None = None,
        device_id: str | None = None,
        redacts: str | None = None,
        origin_server_ts: int | None = None,
    ) -> StoredEvent:
        """Build, sign, authorise, persist and announce one local event."""
        try:
            return await self._send(room_id, sender, event_type, content, state_key, txn_id,
                                    device_id, redacts, origin_server_ts)
        except DuplicateTransaction:
            # A retried request: the unique (sender, device, txn) index refused the second
            # event, so answer with the first one.
            assert txn_id is not None and device_id is not None
            existing = await self.events.get_event_by_txn(sender, device_id, txn_id)
            found = await self.events.get_event(existing) if existing else None
            if found is None:
                raise
            return found

    async def _send(
        self, room_id: str, sender: str, event_type: str, content: JsonDict,
        state_key: str | None, txn_id: str | None, device_id: str | None, redacts: str | None,
        origin_server_ts: int | None,
    ) -> StoredEvent:
        rv = await self.room_version(room_id)
        async with self.room_lock(room_id):
            head = await self._head(room_id)
            pdu: JsonDict = {
                "room_id": room_id,
                "sender": sender,
                "type": event_type,
                "content": content,
                "origin_server_ts": origin_server_ts or now_ms(),
                "depth": min(head.depth + 1, MAX_DEPTH),
                "prev_events": list(head.extremities),
            }
            if state_key is not None:
                pdu["state_key"] = state_key
            if redacts is not None:
                if rv.redacts_in_content:
                    pdu["content"] = {**content, "redacts": redacts}
                else:
                    pdu["redacts"] = redacts
            auth_map = await self._auth_events(pdu, head.state, rv)
            pdu["auth_events"] = [
                e["event_id"] for k, e in auth_map.items()
                if not (k == ("m.room.create", "") and rv.room_id_from_create_event)
            ]
            pdu = self._finish(pdu, rv)
            check_auth_rules(pdu, auth_map, rv)
            new_state = dict(head.state)
            if state_key is not None:
                new_state[(event_type, state_key)] = pdu["event_id"]
            stored = await self._persist(room_id, pdu, head, new_state, txn_id, device_id)
        self.notifier.notify(stored.stream_ordering)
        return stored

    def _finish(self, pdu: JsonDict, rv: RoomVersion) -> JsonDict:
        """Hash, sign and give the event its id; refuse events over the size limit."""
        signed = sign_event(pdu, self.server_name, self.signing_key, rv)
        if json_size(signed) > MAX_EVENT_SIZE:
            raise MatrixError(413, Codes.TOO_LARGE, "Event is larger than 65536 bytes")
        signed["event_id"] = compute_event_id(signed, rv)
        return signed

    async def _auth_events(
        self, pdu: JsonDict, state: StateMap, rv: RoomVersion
    ) -> dict[StateKey, JsonDict]:
        keys = auth_types_for_event(
            pdu["type"], pdu["sender"], pdu.get("state_key"), pdu["content"], rv
        )
        wanted = {k: state[k] for k in {*keys, ("m.room.create", "")} if k in state}
        pdus = await self.events.get_pdus(wanted.values())
        return {k: pdus[e] for k, e in wanted.items() if e in pdus}

    async def _persist(
        self,
        room_id: str,
        pdu: JsonDict,
        head: RoomHead | None,
        new_state: StateMap,
        txn_id: str | None,
        device_id: str | None,
    ) -> StoredEvent:
        is_state = "state_key" in pdu
        old_state: StateMap = head.state if head else {}
        memberships = {}
        if pdu["type"] == "m.room.member":
            memberships[pdu["event_id"]] = (pdu["state_key"], pdu["content"]["membership"])

        async def run(conn: aiosqlite.Connection) -> tuple[int, int]:
            pos = self.streams.next()
            if head is None:
                await insert_room(conn, room_id, _room_version_of(pdu), pdu["sender"],
                                  pdu["origin_server_ts"])
            before = head.state_group if head else None
            after = before
            if after is None or is_state:
                after = await self.state.add_group(conn, room_id, before, old_state, new_state)
            await insert_event(conn, pdu, pos, room_id, state_before=before, state_after=after,
                               txn_id=txn_id, device_id=device_id)
            await set_forward_extremities(conn, room_id, pdu["event_id"], pdu["prev_events"])
            if is_state:
                await self.state.set_current_state(conn, room_id, old_state, new_state,
                                                   memberships, pos)
            return pos, after

        try:
            pos, group = await self.db.write(run)
        except Exception:
            self._heads.pop(room_id, None)
            raise
        self._heads[room_id] = RoomHead([pdu["event_id"]], int(pdu["depth"]), group, new_state)
        if is_state:
            self.events.remember_pdu(pdu)
        for event_id, (user_id, membership) in memberships.items():
            self.members.note_membership(room_id, user_id, membership, event_id)
        return StoredEvent(pdu, pos, room_id, None, txn_id, device_id)

    async def create_room_event(self, sender: str, content: JsonDict, rv: RoomVersion) -> str:
        """Persist the m.room.create event of a new room and return the room id. For versions
        with ids derived from the create event the id is its reference hash; otherwise random."""
        pdu: JsonDict = {
            "sender": sender,
            "type": "m.room.create",
            "state_key": "",
            "content": content,
            "origin_server_ts": now_ms(),
            "depth": 1,
            "prev_events": [],
            "auth_events": [],
        }
        if rv.room_id_from_create_event:
            # The create event carries no room_id: the id is derived from the event.
            pdu = self._finish(pdu, rv)
            room_id: str = room_id_for_create_event(
                {k: v for k, v in pdu.items() if k != "event_id"}, rv
            )
        else:
            room_id = f"!{_random_localpart()}:{self.server_name}"
            pdu["room_id"] = room_id
            pdu = self._finish(pdu, rv)
        check_auth_rules(pdu, {("m.room.create", ""): pdu}, rv)
        new_state = {("m.room.create", ""): str(pdu["event_id"])}
        async with self.room_lock(room_id):
            stored = await self._persist(room_id, pdu, None, new_state, None, None)
        self.notifier.notify(stored.stream_ordering)
        return room_id

    async def run_write(self, fn: Callable[[aiosqlite.Connection, int], Awaitable[Any]]) -> int:
        """Run a non-event write that takes a stream position (account data, receipts...),
        then notify. Returns the position."""
        async def run(conn: aiosqlite.Connection) -> int:
            pos = self.streams.next()
            await fn(conn, pos)
            return pos

        pos = await self.db.write(run)
        self.notifier.notify(pos)
        return pos


def _room_version_of(create_pdu: JsonDict) -> str:
    return str(create_pdu["content"].get("room_version", "1"))


def _random_localpart() -> str:
    return secrets.token_urlsafe(12).replace("-", "a").replace("_", "b")
