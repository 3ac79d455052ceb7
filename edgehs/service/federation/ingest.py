"""Remote events: the checks on receipt of a PDU, one worker per room, then the persist step.

https://spec.matrix.org/v1.19/server-server-api/#checks-performed-on-receipt-of-a-pdu

1. It is a valid event (a room id, the event format of the room version), else it is dropped.
2. It passes the signature checks, else it is dropped.
3. It passes the hash checks, else it is redacted before it is processed further.
4. It passes the authorization rules based on its auth events, else it is rejected.
5. It passes the authorization rules based on the state before it, else it is rejected.
6. It passes the authorization rules based on the room's current state, else it is soft-failed.

Remote events of a room are handled in arrival order by one worker per room
(:meth:`Ingest.receive`). Missing prev_events and auth events are fetched from a
:class:`RemoteEvents` source without holding the room lock: local sends in the room go on
while the worker waits for the network. Only step 6 and the persist step take the lock.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgehs.errors import AuthError, Codes, MatrixError
from edgehs.protocol.auth_context import domain
from edgehs.protocol.canonical_json import json_size
from edgehs.protocol.event_auth import auth_types_for_event, check_auth_rules
from edgehs.protocol.events import (
    auth_event_ids,
    check_content_hash,
    compute_event_id,
    event_refs_well_formed,
    prev_event_ids,
    redact,
    verify_event_signature,
)
from edgehs.protocol.room_versions import RoomVersion, get_room_version
from edgehs.service.events import CREATE_KEY, MAX_EVENT_SIZE, EventService
from edgehs.service.persist import EventContext
from edgehs.store.events import StoredEvent
from edgehs.types import JsonDict, StateKey, StateMap

# (server_name, key_id) -> the verify key (unpadded base64), or None when it cannot be had.
KeyLookup = Callable[[str, str], Awaitable[str | None]]
# How many missing prev_events one received event may pull in.
MAX_MISSING = 50


class RemoteEvents(Protocol):
    """Where missing events come from (the origin server; federation's /get_missing_events
    and /event)."""

    async def missing_events(self, room_id: str, earliest: Sequence[str], latest: Sequence[str],
                             limit: int) -> list[JsonDict]: ...

    async def event(self, room_id: str, event_id: str) -> JsonDict | None: ...


@dataclass(frozen=True)
class Outcome:
    """What became of a received event."""

    event_id: str
    rejected: str | None = None
    soft_failed: bool = False
    stored: StoredEvent | None = None


def _format_problem(pdu: JsonDict, rv: RoomVersion) -> str | None:
    """Step 1: what makes ``pdu`` an invalid event, or None."""
    bare_create = rv.room_id_from_create_event and pdu.get("type") == "m.room.create"
    if not bare_create and not isinstance(pdu.get("room_id"), str):
        return "room_id is missing or not a string"
    for key, kind in (("sender", str), ("type", str), ("content", dict),
                      ("depth", int), ("prev_events", list), ("auth_events", list),
                      ("origin_server_ts", int), ("hashes", dict), ("signatures", dict)):
        if not isinstance(pdu.get(key), kind) or isinstance(pdu.get(key), bool):
            return f"{key} is missing or not a {kind.__name__}"
    for key in ("prev_events", "auth_events"):
        if not event_refs_well_formed(pdu[key], rv):
            return f"{key} does not have the format of room version {rv.identifier}"
    if "state_key" in pdu and not isinstance(pdu["state_key"], str):
        return "state_key is not a string"
    if json_size(pdu) > MAX_EVENT_SIZE:
        return "the event is larger than 65536 bytes"
    return None


class Ingest:
    def __init__(self, events: EventService, keys: KeyLookup) -> None:
        self.events = events
        self.keys = keys
        self._queues: dict[str, asyncio.Queue[tuple[JsonDict, RemoteEvents | None,
                                                    asyncio.Future[Outcome]]]] = {}
        self._workers: set[asyncio.Task[None]] = set()

    # --- the per-room worker ---------------------------------------------------------------

    async def receive(self, pdu: JsonDict, source: RemoteEvents | None = None) -> Outcome:
        """Queue ``pdu`` for its room's worker and wait for what became of it."""
        room_id = pdu.get("room_id")
        if not isinstance(room_id, str):
            raise MatrixError(400, Codes.BAD_JSON, "The event has no room_id")
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(room_id)
        if queue is None:
            queue = self._queues[room_id] = asyncio.Queue()
            task = asyncio.create_task(self._work(room_id, queue))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        queue.put_nowait((pdu, source, fut))
        return await fut

    async def _work(self, room_id: str, queue: asyncio.Queue[
            tuple[JsonDict, RemoteEvents | None, asyncio.Future[Outcome]]]) -> None:
        """Handle the room's events one at a time, in arrival order, until none is left."""
        while not queue.empty():
            pdu, source, fut = queue.get_nowait()
            try:
                fut.set_result(await self._handle(pdu, source))
            except Exception as exc:  # the sender learns why; the worker goes on
                fut.set_exception(exc)
        del self._queues[room_id]

    async def close(self) -> None:
        for task in list(self._workers):
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    # --- the checks ------------------------------------------------------------------------

    async def _handle(self, pdu: JsonDict, source: RemoteEvents | None,
                      budget: list[int] | None = None, room: str | None = None) -> Outcome:
        room_id = room or str(pdu["room_id"])
        rv = await self.events.room_version(room_id)
        pdu = await self.checked(pdu, rv)  # 1-3
        if pdu.get("room_id", room_id) != room_id:
            raise MatrixError(400, Codes.BAD_JSON, f"The event is not in {room_id}")
        event_id = pdu["event_id"]
        if (existing := await self.events.events.get_event(event_id)) is not None:
            return Outcome(event_id, stored=existing)
        prevs = prev_event_ids(pdu)
        known = await self.events.state.get_groups_after(prevs)
        if len(known) < len(prevs) and source is not None:
            await self._fetch_missing(room_id, pdu, source, budget or [MAX_MISSING])
            known = await self.events.state.get_groups_after(prevs)
        if not known:
            raise MatrixError(400, Codes.MISSING_PARAM,
                              f"None of the prev_events of {event_id} could be had")
        auth = await self._auth_events(room_id, rv, pdu, source)
        rejected = _auth_failure(pdu, auth, rv)  # 4
        before, _ = await self.events.persister.state_after_events(
            rv, [p for p in prevs if p in known])
        if rejected is None:  # 5
            rejected = _auth_failure(pdu, await self._state_pdus(pdu, before, rv), rv,
                                     from_state=True)
        async with self.events.room_lock(room_id):
            soft_failed = False
            if rejected is None:  # 6
                head = await self.events.persister.head(room_id)
                soft_failed = _auth_failure(pdu, await self._state_pdus(pdu, head.state, rv),
                                            rv, from_state=True) is not None
            [stored] = await self.events.persister.persist(
                room_id, rv, [EventContext(pdu, before, rejected=rejected,
                                           soft_failed=soft_failed)])
        if stored.stream_ordering > 0:
            self.events.notifier.notify(stored.stream_ordering)
        return Outcome(event_id, rejected, soft_failed, stored)

    async def checked(self, pdu: JsonDict, rv: RoomVersion) -> JsonDict:
        """Steps 1-3: the event with its id, redacted when its content hash is wrong."""
        problem = _format_problem(pdu, rv)  # 1
        if problem is not None:
            raise MatrixError(400, Codes.BAD_JSON, f"Invalid event: {problem}")
        if rv.event_id_in_pdu:  # v1/v2: the id is the origin's, covered by its signature
            pdu = {k: v for k, v in pdu.items() if k != "unsigned"}
            event_id = str(pdu.get("event_id", ""))
            if not event_id.startswith("$") or ":" not in event_id:
                raise MatrixError(400, Codes.BAD_JSON, "Invalid event: no valid event_id")
        else:
            pdu = {k: v for k, v in pdu.items() if k not in ("event_id", "unsigned")}
            event_id = compute_event_id(pdu, rv)
        for server in _signing_servers(pdu, rv):  # 2
            await self._check_signature(pdu, server, rv)
        if not check_content_hash(pdu):  # 3
            pdu = redact(pdu, rv)
        return {**pdu, "event_id": event_id}

    async def _check_signature(self, pdu: JsonDict, server: str, rv: RoomVersion) -> None:
        signatures = pdu["signatures"].get(server)
        if not isinstance(signatures, dict) or not signatures:
            raise MatrixError(403, Codes.FORBIDDEN, f"The event is not signed by {server}")
        for key_id in signatures:
            key = await self.keys(server, key_id)
            if key is not None:
                verify_event_signature(pdu, server, key_id, key, rv)
                return
        raise MatrixError(403, Codes.FORBIDDEN, f"No known key of {server} signed the event")

    async def _fetch_missing(self, room_id: str, pdu: JsonDict, source: RemoteEvents,
                             budget: list[int]) -> None:
        """Ask the origin for the events between our extremities and ``pdu``, and handle
        them oldest first (they may pull in more, within ``budget``)."""
        if budget[0] <= 0:
            return
        head = await self.events.persister.head(room_id)
        found = await source.missing_events(room_id, head.extremities, [pdu["event_id"]],
                                            min(budget[0], 10))
        budget[0] -= len(found)
        for missing in sorted(found, key=lambda p: int(p.get("depth", 0))):
            try:
                await self._handle(missing, source, budget, room_id)
            except MatrixError:
                continue  # an event we cannot take leaves a gap, not a failure of this one

    async def _auth_events(self, room_id: str, rv: RoomVersion, pdu: JsonDict,
                           source: RemoteEvents | None) -> dict[StateKey, JsonDict]:
        """The accepted events ``pdu`` cites as auth events, by (type, state_key); unknown
        ones are fetched from ``source`` and stored as outliers after their own checks."""
        ids = auth_event_ids(pdu)
        if rv.room_id_from_create_event:
            ids.append("$" + room_id[1:])
        have = await self.events.events.get_pdus(ids)
        missing = [i for i in ids if i not in have]
        if missing and source is not None:
            await self._store_outliers(room_id, rv, missing, source)
            have = await self.events.events.get_pdus(ids)
        rejected = await self.events.events.rejected_among(list(have))
        return {(p["type"], p.get("state_key", "")): p for i, p in have.items()
                if i not in rejected and "state_key" in p}

    async def _store_outliers(self, room_id: str, rv: RoomVersion, event_ids: Iterable[str],
                              source: RemoteEvents) -> None:
        pending: dict[str, JsonDict] = {}
        for event_id in event_ids:
            raw = await source.event(room_id, event_id)
            if raw is not None:
                checked = await self.checked(raw, rv)
                if checked["event_id"] == event_id:
                    pending[event_id] = checked
        if pending:
            await self.store_outliers(room_id, rv, list(pending.values()), {})

    async def store_outliers(self, room_id: str, rv: RoomVersion, pdus: Sequence[JsonDict],
                             extra: Mapping[str, JsonDict], *, new_room: bool = False,
                             last: EventContext | None = None) -> list[StoredEvent]:
        """Store checked ``pdus`` (auth chain and state, without timeline place) as outliers,
        each accepted or rejected against its own auth events (step 4), shallowest first;
        ``extra`` are stored events they may cite. ``last``: a non-outlier to store in the
        same transaction (the join event of a remote join)."""
        by_id = {p["event_id"]: p for p in pdus}
        contexts: list[EventContext] = []
        verdict: dict[str, bool] = {}
        for p in sorted(pdus, key=lambda p: (int(p["depth"]), p["event_id"])):
            cited = auth_event_ids(p)
            if rv.room_id_from_create_event and p["type"] != "m.room.create":
                cited.append("$" + room_id[1:])
            auth = {(a["type"], a.get("state_key", "")): a
                    for i in cited if (a := by_id.get(i) or extra.get(i)) is not None
                    and verdict.get(i, True) and "state_key" in a}
            reason = _auth_failure(p, auth, rv)
            verdict[p["event_id"]] = reason is None
            contexts.append(EventContext(p, None, rejected=reason, outlier=True))
        if last is not None:
            contexts.append(last)
        async with self.events.room_lock(room_id):
            return await self.events.persister.persist(room_id, rv, contexts,
                                                       new_room=new_room)

    async def store_remote_join(self, room_id: str, state: Sequence[JsonDict],
                                auth_chain: Sequence[JsonDict], join: JsonDict) -> StoredEvent:
        """Store a room that lives on another server from a join's answer: the state and
        the auth chain as outliers, then the join event (with the state before it), in one
        transaction."""
        create = next((p for p in state if p.get("type") == "m.room.create"), None)
        if create is None:
            raise MatrixError(400, Codes.BAD_JSON, "The room state has no m.room.create event")
        rv = get_room_version(str(create.get("content", {}).get("room_version", "1")))
        checked_state = [await self.checked(p, rv) for p in state]
        checked = {c["event_id"]: c for c in [*[await self.checked(p, rv) for p in auth_chain],
                                              *checked_state]}
        before: StateMap = {(p["type"], p["state_key"]): p["event_id"] for p in checked_state
                            if "state_key" in p}
        join = await self.checked(join, rv)
        reason = _auth_failure(join, {k: checked[v] for k, v in before.items()}, rv,
                               from_state=True)
        if reason is not None:
            raise MatrixError(403, Codes.FORBIDDEN, f"The join event is not allowed: {reason}")
        stored = await self.store_outliers(room_id, rv, list(checked.values()), {},
                                           new_room=True, last=EventContext(join, before))
        self.events.notifier.notify(stored[-1].stream_ordering)
        return stored[-1]

    async def _state_pdus(self, pdu: JsonDict, state: StateMap,
                          rv: RoomVersion) -> dict[StateKey, JsonDict]:
        keys = auth_types_for_event(pdu["type"], pdu["sender"], pdu.get("state_key"),
                                    pdu["content"], rv)
        wanted = {k: state[k] for k in {*keys, CREATE_KEY} if k in state}
        pdus = await self.events.events.get_pdus(wanted.values())
        return {k: pdus[v] for k, v in wanted.items() if v in pdus}


def _signing_servers(pdu: JsonDict, rv: RoomVersion) -> set[str]:
    """The servers whose signature an event needs: the sender's, the authorising server of a
    restricted join, and in v1/v2 the server named in the event id."""
    servers = {domain(str(pdu["sender"]))}
    if rv.event_id_in_pdu:
        servers.add(domain(str(pdu["event_id"])))
    via = pdu["content"].get("join_authorised_via_users_server")
    if pdu["type"] == "m.room.member" and isinstance(via, str):
        servers.add(domain(via))
    return servers


def _auth_failure(pdu: JsonDict, auth: Mapping[StateKey, JsonDict], rv: RoomVersion,
                  from_state: bool = False) -> str | None:
    try:
        check_auth_rules(pdu, auth, rv, auth_events_from_state=from_state)
    except AuthError as exc:
        return exc.msg
    except MatrixError as exc:
        return exc.msg
    return None
