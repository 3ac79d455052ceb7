"""Local events: built here, persisted by the one persist step (``service/persist.py``).

Every local event goes through :meth:`EventService.send`:

1. per-room lock;
2. build: prev_events (the forward extremities), depth, auth_events selected from the state
   before the event (the room's current state, or the resolution of the chosen extremities);
3. content hash + signature, event id (reference hash);
4. the authorization rules (``protocol.event_auth``);
5. the persist step: ONE store transaction (event, edges, state groups, extremities, current
   state, membership index, outbox and push rows);
6. the notifier advances the stream position, waking /sync and the senders.
"""

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import aiosqlite
from signedjson.types import SigningKey

from edgehs.errors import AuthError, Codes, MatrixError
from edgehs.protocol.canonical_json import check_canonical_json, json_size
from edgehs.protocol.event_auth import auth_types_for_event, check_auth_rules
from edgehs.protocol.events import (
    compute_event_id,
    event_reference,
    new_legacy_event_id,
    room_id_for_create_event,
    sign_event,
)
from edgehs.protocol.room_versions import RoomVersion, get_room_version
from edgehs.service.notifier import Notifier
from edgehs.service.persist import EventContext, EventRowsHook, Fanout, Persister
from edgehs.service.redactions import check_may_redact
from edgehs.store.db import Database
from edgehs.store.event_writes import DuplicateTransaction
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.rooms import MemberStore, RoomStore
from edgehs.store.state import StateStore
from edgehs.store.streams import StreamIdGenerator
from edgehs.types import JsonDict, StateKey, StateMap

MAX_EVENT_SIZE = 65536
MAX_PREV_EVENTS = 10
MAX_DEPTH = 2**63 - 1
CREATE_KEY = ("m.room.create", "")

# A precondition of a send, run inside the room lock against the state the event is built on
# (and the event store, to read that state's events); it raises MatrixError to refuse.
Check = Callable[[StateMap, EventStore], Awaitable[None]]


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
        self.persister = Persister(db, events, state, members, streams)
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_create_ts = 0
        # Run after each local event was stored and announced, outside the room lock: rules
        # that answer an event with more events (guests leaving when guest access ends).
        self.after_send: list[Callable[[StoredEvent], Awaitable[None]]] = []

    # Who else must receive each new event, and the rows other services write with it: the
    # persist step's hooks, wired here by the server.
    @property
    def fanouts(self) -> list[Fanout]:
        return self.persister.fanouts

    @property
    def event_rows(self) -> list[EventRowsHook]:
        return self.persister.event_rows

    @property
    def outbox_wake(self) -> Callable[[Iterable[str]], None] | None:
        return self.persister.outbox_wake

    @outbox_wake.setter
    def outbox_wake(self, wake: Callable[[Iterable[str]], None] | None) -> None:
        self.persister.outbox_wake = wake

    def room_lock(self, room_id: str) -> asyncio.Lock:
        return self._locks.setdefault(room_id, asyncio.Lock())

    async def room_version(self, room_id: str) -> RoomVersion:
        version = await self.rooms.get_room_version_id(room_id)
        if version is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Unknown room {room_id}")
        return get_room_version(version)

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
        check: Check | None = None,
    ) -> StoredEvent:
        """Build, sign, authorise, persist and announce one local event. ``check`` runs in
        the room lock on the state the event builds on, so two concurrent requests cannot
        both pass it (a kick of a member who has just left)."""
        try:
            return await self._send(room_id, sender, event_type, content, state_key, txn_id,
                                    device_id, redacts, origin_server_ts, check)
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
        origin_server_ts: int | None, check: Check | None = None,
    ) -> StoredEvent:
        rv = await self.room_version(room_id)
        async with self.room_lock(room_id):
            # 1. per-room lock held; 2. build on the room's head.
            head = await self.persister.head(room_id)
            prevs = head.extremities[:MAX_PREV_EVENTS]
            state = head.state
            if len(prevs) < len(head.extremities):
                state, _ = await self.persister.state_after_events(rv, prevs)
            if check is not None:
                await check(state, self.events)
            keys = auth_types_for_event(event_type, sender, state_key, content, rv)
            known = await self.events.get_pdus(
                [*(state[k] for k in {*keys, CREATE_KEY} if k in state),
                 *(prevs if rv.event_refs_with_hashes else ())]
            )
            if redacts is not None:
                await check_may_redact(self.events, room_id, sender, redacts, state)
            pdu = self._build(rv, room_id, sender, event_type, content, state_key, prevs,
                              head.depth + 1, state, known, redacts, origin_server_ts)
            # 5. the persist step
            [stored] = await self.persister.persist(
                room_id, rv, [EventContext(pdu, state, txn_id=txn_id, device_id=device_id,
                                           fresh=True)])
        # 6. wake /sync and the senders
        self.notifier.notify(stored.stream_ordering)
        for hook in self.after_send:
            await hook(stored)
        return stored

    def _build(
        self, rv: RoomVersion, room_id: str, sender: str, event_type: str, content: JsonDict,
        state_key: str | None, prev_events: list[str], depth: int, state: StateMap,
        known: Mapping[str, JsonDict], redacts: str | None = None, ts: int | None = None,
    ) -> JsonDict:
        """2-4. The PDU on top of ``prev_events`` with the room ``state`` before it: auth events
        selected from that state (``known`` holds their PDUs, and in v1/v2 those of
        ``prev_events``, cited with their reference hashes), hashed, signed, given its id and
        checked against the authorization rules."""
        pdu: JsonDict = {
            "room_id": room_id,
            "sender": sender,
            "type": event_type,
            "content": content,
            "origin_server_ts": ts or now_ms(),
            "depth": min(depth, MAX_DEPTH),
            "prev_events": [event_reference(known[e], rv) for e in prev_events]
            if rv.event_refs_with_hashes else list(prev_events),
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        if redacts is not None:
            if rv.redacts_in_content:
                pdu["content"] = {**content, "redacts": redacts}
            else:
                pdu["redacts"] = redacts
        keys = auth_types_for_event(event_type, sender, state_key, content, rv)
        auth_map = {k: known[state[k]] for k in {*keys, CREATE_KEY}
                    if k in state and state[k] in known}
        pdu["auth_events"] = [
            event_reference(e, rv) for k, e in auth_map.items()
            if not (k == CREATE_KEY and rv.room_id_from_create_event)
        ]
        pdu = self._finish(pdu, rv)
        check_auth_rules(pdu, auth_map, rv)
        return pdu

    def _finish(self, pdu: JsonDict, rv: RoomVersion) -> JsonDict:
        """3. Hash, sign and give the event its id (v1/v2: a random one, in the signed PDU;
        later: the reference hash); refuse values canonical JSON cannot carry (v1-v5 allow
        floats and large integers) and events over the size limit."""
        check_canonical_json(pdu["content"], strict=rv.strict_canonical_json)
        if rv.event_id_in_pdu:
            pdu = {**pdu, "event_id": new_legacy_event_id(self.server_name)}
        signed = sign_event(pdu, self.server_name, self.signing_key, rv)
        if json_size(signed) > MAX_EVENT_SIZE:
            raise MatrixError(413, Codes.TOO_LARGE, "Event is larger than 65536 bytes")
        if not rv.event_id_in_pdu:
            signed["event_id"] = compute_event_id(signed, rv)
        return signed

    async def create_room(
        self, sender: str, create_content: JsonDict, rv: RoomVersion,
        initial: Sequence[tuple[str, str, JsonDict]],
        extra: Callable[[str], Callable[[aiosqlite.Connection], Awaitable[None]]] | None = None,
    ) -> str:
        """Create a room atomically: the m.room.create event then the ``initial`` state events
        (type, state_key, content), all sent by ``sender``, are built and authorised in memory
        and stored in one transaction with ``extra(room_id)`` rows. If any event fails the
        authorization rules nothing is stored (400 M_INVALID_ROOM_STATE). Returns the room id;
        for versions with ids derived from the create event it is its reference hash."""
        for _attempt in range(8):
            room_id, pending = self._room_events(sender, create_content, rv, initial)
            async with self.room_lock(room_id):
                # A v12 room id is a hash: the id of a room stored before this process
                # started (clock set back) is not reused; build again one millisecond later.
                if await self.rooms.get_room_version_id(room_id) is not None:
                    continue
                stored = await self.persister.persist(
                    room_id, rv,
                    [EventContext(pdu, before, fresh=True) for pdu, before, _ in pending],
                    new_room=True, extra=extra(room_id) if extra else None)
            self.notifier.notify(stored[-1].stream_ordering)
            return room_id
        raise MatrixError(503, Codes.UNKNOWN, "Could not pick an unused room id; try again")

    def _room_events(
        self, sender: str, create_content: JsonDict, rv: RoomVersion,
        initial: Sequence[tuple[str, str, JsonDict]],
    ) -> tuple[str, list[tuple[JsonDict, StateMap, StateMap]]]:
        """The room id and the events of a new room, each with the state before and after it.
        The create event's ``origin_server_ts`` is strictly later than that of the previous
        create event built here, so identical requests (one user, same millisecond) never
        make identical create events, whose reference hash is the room id in v12."""
        self._last_create_ts = max(now_ms(), self._last_create_ts + 1)
        create: JsonDict = {
            "sender": sender, "type": "m.room.create", "state_key": "",
            "content": create_content, "origin_server_ts": self._last_create_ts, "depth": 1,
            "prev_events": [], "auth_events": [],
        }
        if rv.room_id_from_create_event:
            # The create event carries no room_id: the id is derived from the event.
            create = self._finish(create, rv)
            room_id: str = room_id_for_create_event(
                {k: v for k, v in create.items() if k != "event_id"}, rv
            )
        else:
            room_id = f"!{_random_localpart()}:{self.server_name}"
            create = self._finish({**create, "room_id": room_id}, rv)
        check_auth_rules(create, {CREATE_KEY: create}, rv)
        state: StateMap = {CREATE_KEY: create["event_id"]}
        known = {create["event_id"]: create}
        pending: list[tuple[JsonDict, StateMap, StateMap]] = [(create, {}, dict(state))]
        last = create
        for event_type, state_key, content in initial:
            try:
                pdu = self._build(rv, room_id, sender, event_type, content, state_key,
                                  [last["event_id"]], int(last["depth"]) + 1, state, known)
            except AuthError as exc:
                raise MatrixError(400, Codes.INVALID_ROOM_STATE,
                                  f"The initial state of the room is invalid: {exc.msg}") from exc
            after = _state_after(pdu, state)
            pending.append((pdu, state, after))
            known[pdu["event_id"]] = pdu
            state, last = after, pdu
        return room_id, pending

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


def _state_after(pdu: JsonDict, before: StateMap) -> StateMap:
    if "state_key" not in pdu:
        return before
    return {**before, (pdu["type"], pdu["state_key"]): pdu["event_id"]}


def _random_localpart() -> str:
    return secrets.token_urlsafe(12).replace("-", "a").replace("_", "b")
