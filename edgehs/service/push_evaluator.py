"""Push rules on the write path: who is notified of each new event.

https://spec.matrix.org/v1.19/client-server-api/#server-behaviour-7

"When receiving a new event homeservers process push rules for each of the local users in the
room (excluding the sender)". :meth:`PushEvaluator.prepare` runs before the event's transaction,
for every event of the batch, against the room state *before* the event (so the events of a
``createRoom`` batch see each other): the local joined members other than the sender, plus the
local invitee of an invite (``.m.rule.invite_for_me``). Each notifying outcome becomes a
``push_notifications`` row and an outbox row per pusher of that user, both written in the event's
own transaction by :meth:`PushRows.write`, so the counts change in the same /sync as the event
and no push is lost to a power cut.

Costs per event: the members' parsed m.room.member events are cached by event id; rulesets and
pushers are cached by their services; the rest is in-memory rule matching.
"""

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiosqlite

from edgehs.protocol.power_levels import user_power_level
from edgehs.protocol.push_eval import PushContext, evaluate
from edgehs.protocol.room_versions import get_room_version
from edgehs.service.push import PushService
from edgehs.service.push_gateway import PusherService, destination
from edgehs.store.events import EventStore
from edgehs.store.outbox import enqueue_payload
from edgehs.store.push import NewNotification, insert_notifications
from edgehs.types import JsonDict, StateMap

log = logging.getLogger(__name__)

MAIN_THREAD = "main"
MAX_CACHED_MEMBERS = 50000
# member event id -> (user_id, membership, display name)
MemberInfo = tuple[str, str, str | None]


@dataclass
class PushRows:
    """The rows to write with each event of a batch (``EventService.event_rows``)."""

    notifications: dict[str, list[NewNotification]] = field(default_factory=dict)
    deliveries: dict[str, list[tuple[str, JsonDict]]] = field(default_factory=dict)

    @property
    def destinations(self) -> frozenset[str]:
        return frozenset(d for items in self.deliveries.values() for d, _ in items)

    async def write(self, conn: aiosqlite.Connection, event_id: str, pos: int) -> None:
        rows = self.notifications.get(event_id)
        if rows:
            await insert_notifications(conn, pos, rows)
        for target, payload in self.deliveries.get(event_id, ()):
            await enqueue_payload(conn, target, "push", payload)


def _thread_of(pdu: JsonDict) -> str:
    content = pdu.get("content")
    rel = content.get("m.relates_to") if isinstance(content, dict) else None
    if isinstance(rel, dict) and rel.get("rel_type") == "m.thread" and isinstance(
            rel.get("event_id"), str):
        return str(rel["event_id"])
    return MAIN_THREAD


def _member_info(pdu: JsonDict) -> MemberInfo:
    content = pdu.get("content")
    content = content if isinstance(content, dict) else {}
    name = content.get("displayname")
    return (str(pdu.get("state_key")), str(content.get("membership")),
            name if isinstance(name, str) else None)


class PushEvaluator:
    def __init__(self, server_name: str, events: EventStore, push: PushService,
                 pushers: PusherService, clock: Callable[[], float] = time.time) -> None:
        self.suffix = ":" + server_name
        self.events = events
        self.push = push
        self.pushers = pushers
        self.clock = clock
        self._members: dict[str, MemberInfo] = {}

    async def prepare(self, room_id: str,
                      pending: Sequence[tuple[JsonDict, StateMap, StateMap]]) -> PushRows | None:
        """The notification and delivery rows of a batch of new events. A failure here is
        logged and costs the notifications, never the events."""
        try:
            return await self._prepare(room_id, pending)
        except Exception:
            log.exception("push rule evaluation failed in %s", room_id)
            return None

    async def _prepare(self, room_id: str,
                       pending: Sequence[tuple[JsonDict, StateMap, StateMap]]) -> PushRows | None:
        known = {pdu["event_id"]: pdu for pdu, _, _ in pending}
        out = PushRows()
        for pdu, before, _ in pending:
            members = await self._members_of(before, known)
            sender = pdu["sender"]
            targets = [u for u, (m, _) in members.items()
                       if m == "join" and u != sender and u.endswith(self.suffix)]
            invitee = pdu.get("state_key")
            if (pdu["type"] == "m.room.member" and isinstance(invitee, str)
                    and invitee != sender and invitee.endswith(self.suffix)
                    and _member_info(pdu)[1] == "invite" and invitee not in targets):
                targets.append(invitee)
            if not targets:
                continue
            await self._evaluate(room_id, pdu, before, known, members, targets, out)
        return out if out.notifications else None

    async def _evaluate(self, room_id: str, pdu: JsonDict, before: StateMap,
                        known: Mapping[str, JsonDict],
                        members: Mapping[str, tuple[str, str | None]], targets: list[str],
                        out: PushRows) -> None:
        event = pdu if "room_id" in pdu else {**pdu, "room_id": room_id}
        power_levels, sender_level = await self._power(before, known, pdu["sender"])
        count = sum(1 for m, _ in members.values() if m == "join")
        ts = int(self.clock() * 1000)
        event_id = pdu["event_id"]
        for user_id in targets:
            ctx = PushContext(user_id, members.get(user_id, ("", None))[1], count, sender_level,
                              power_levels)
            result = evaluate(await self.push.ruleset(user_id), event, ctx)
            if result is None or not result.notify:
                continue
            out.notifications.setdefault(event_id, []).append(NewNotification(
                user_id, room_id, event_id, _thread_of(pdu), list(result.actions),
                result.highlight, ts,
            ))
            payload: JsonDict = {"event_id": event_id, "room_id": room_id, "user_id": user_id,
                                 "actions": result.actions}
            for pusher_id in await self.pushers.pusher_ids(user_id):
                out.deliveries.setdefault(event_id, []).append((destination(pusher_id), payload))

    async def _pdus(self, ids: list[str], known: Mapping[str, JsonDict]) -> dict[str, JsonDict]:
        found = {i: known[i] for i in ids if i in known}
        missing = [i for i in ids if i not in known]
        if missing:
            found.update(await self.events.get_pdus(missing))
        return found

    async def _members_of(self, state: StateMap, known: Mapping[str, JsonDict]
                          ) -> dict[str, tuple[str, str | None]]:
        """user_id -> (membership, display name) from the member events of ``state``."""
        ids = {key[1]: event_id for key, event_id in state.items() if key[0] == "m.room.member"}
        missing = [i for i in ids.values() if i not in self._members]
        if missing:
            if len(self._members) > MAX_CACHED_MEMBERS:
                self._members.clear()
                missing = list(ids.values())
            for event_id, member in (await self._pdus(missing, known)).items():
                self._members[event_id] = _member_info(member)
        out = {}
        for user_id, event_id in ids.items():
            info = self._members.get(event_id)
            if info is not None:
                out[user_id] = (info[1], info[2])
        return out

    async def _power(self, state: StateMap, known: Mapping[str, JsonDict], sender: str
                     ) -> tuple[JsonDict | None, int | float]:
        """The power levels content and the sender's level, from the state before the event."""
        create_id = state.get(("m.room.create", ""))
        power_id = state.get(("m.room.power_levels", ""))
        pdus = await self._pdus([i for i in (create_id, power_id) if i is not None], known)
        create = pdus.get(create_id) if create_id else None
        power = pdus.get(power_id) if power_id else None
        content = power.get("content") if power else None
        levels = content if isinstance(content, dict) else None
        if create is None:
            return levels, 0
        create_content = create.get("content")
        version = create_content.get("room_version", "1") if isinstance(
            create_content, dict) else "1"
        rv = get_room_version(str(version))
        return levels, user_power_level(sender, levels, create, rv)
