"""The one persist step: every event, local or remote, ends here.

Local sends (``service/events.py``), remote events (``service/ingest.py``), backfill and room
creation hand :meth:`Persister.persist` a batch of one room's events, each with what was decided
about it (:class:`EventContext`): the state before it, accepted / rejected (with the reason) /
soft-failed, outlier or not, backfilled or live. The caller holds the room lock; the batch is
written in ONE transaction:

1. positions: accepted live events take the next stream position (what /sync shows); outliers,
   rejected, soft-failed and backfilled events take one from the backfill counter (negative), so
   that they never look new to /sync;
2. state groups: the state before an event shares a prev event's group when it is the same, the
   state after an accepted state event is a new delta group;
3. the event rows, DAG edges, relations and redactions (``store.event_writes.insert_event``);
4. forward extremities follow the DAG: an accepted live event's prev_events leave the set, and
   the event joins it unless a stored event already points at it;
5. current state: the one extremity's state after, or the state resolution of the extremities'
   states when they disagree (recorded as the newest live event's ``room_state_after`` while
   the room has forks, so that /sync knows to send what the resolution changed);
6. current state and the membership index are updated from the full state delta;
7. outbox rows and other services' rows (push notifications, search) for accepted live events.

The caller announces the new position (the notifier) after the commit.
"""

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.events import prev_event_ids, redaction_target
from edgehs.protocol.room_versions import RoomVersion
from edgehs.protocol.state_res import resolve_state
from edgehs.service.redactions import redaction_power
from edgehs.store.db import Database
from edgehs.store.event_writes import insert_event, update_forward_extremities
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.outbox import enqueue_event
from edgehs.store.rooms import MemberStore, insert_room
from edgehs.store.state import StateStore
from edgehs.store.streams import StreamIdGenerator
from edgehs.types import JsonDict, StateMap

# (pdu, room_id) -> outbox destinations that must receive the event.
Fanout = Callable[[JsonDict, str], Awaitable[list[str]]]


class EventRows(Protocol):
    """Rows another service writes with each event of a batch (push notifications)."""

    @property
    def destinations(self) -> frozenset[str]: ...  # outbox destinations to wake after commit

    async def write(self, conn: aiosqlite.Connection, event_id: str, pos: int) -> None: ...


# (room_id, [(pdu, state before, state after)]) -> rows to write with those events, or None.
EventRowsHook = Callable[[str, Sequence[tuple[JsonDict, StateMap, StateMap]]],
                         Awaitable[EventRows | None]]


@dataclass(frozen=True)
class EventContext:
    """An event and what was decided about it before it is persisted."""

    pdu: JsonDict
    state_before: StateMap | None  # None only for outliers
    rejected: str | None = None  # the reason, when the event failed the auth checks
    soft_failed: bool = False
    outlier: bool = False
    backfilled: bool = False
    txn_id: str | None = None
    device_id: str | None = None
    # Built by this server just now: no stored event can point at it yet.
    fresh: bool = False

    @property
    def live(self) -> bool:
        """Accepted and new: it goes to timelines, /sync, push, appservices and search."""
        return not (self.outlier or self.backfilled or self.soft_failed
                    or self.rejected is not None)

    @property
    def state_after(self) -> StateMap | None:
        before = self.state_before
        if before is None or self.rejected is not None or "state_key" not in self.pdu:
            return before
        return {**before, (self.pdu["type"], self.pdu["state_key"]): self.pdu["event_id"]}


@dataclass
class RoomHead:
    """What the next local event of a room builds on: the forward extremities (deepest first),
    the greatest depth among them and the room's current state with its group."""

    extremities: list[str]
    depth: int
    state_group: int
    state: StateMap
    depths: dict[str, int] = field(default_factory=dict)  # extremity -> its depth


@dataclass
class _Group:
    """A state group to write in the transaction: a delta over ``parent`` when it has one."""

    state: StateMap
    parent: "int | _Group | None" = None
    parent_state: StateMap = field(default_factory=dict)
    id: int | None = None

    async def resolve(self, conn: aiosqlite.Connection, room_id: str, store: StateStore) -> int:
        if self.id is None:
            parent = self.parent
            if isinstance(parent, _Group):
                parent = await parent.resolve(conn, room_id, store)
            self.id = await store.add_group(conn, room_id, parent, self.parent_state, self.state)
        return self.id


GroupRef = int | _Group


async def _group_id(ref: GroupRef | None, conn: aiosqlite.Connection, room_id: str,
                    store: StateStore) -> int | None:
    if isinstance(ref, _Group):
        return await ref.resolve(conn, room_id, store)
    return ref


@dataclass
class _Plan:
    """What the transaction writes, computed (with reads only) before it starts."""

    before: list[GroupRef | None]
    after: list[GroupRef | None]
    extremities: set[str]
    removed: set[str]
    added: set[str]
    current: StateMap | None  # None: current state does not change
    current_group: GroupRef | None
    memberships: dict[str, tuple[str, str]]
    depths: dict[str, int]  # extremity -> its depth


class Persister:
    def __init__(self, db: Database, events: EventStore, state: StateStore,
                 members: MemberStore, streams: StreamIdGenerator) -> None:
        self.db = db
        self.events = events
        self.state = state
        self.members = members
        self.streams = streams
        self._heads: dict[str, RoomHead] = {}
        # Who else must receive each live event (appservices now, federation later): each
        # returns outbox destinations, queued in the event's own transaction.
        self.fanouts: list[Fanout] = []
        self.outbox_wake: Callable[[Iterable[str]], None] | None = None
        # Rows computed before the transaction and written with each live event (push rules).
        self.event_rows: list[EventRowsHook] = []

    # --- reads -----------------------------------------------------------------------------

    async def head(self, room_id: str) -> RoomHead:
        """The room's forward extremities and current state (cached; the writer keeps it)."""
        head = self._heads.get(room_id)
        if head is not None:
            return head
        extremities = await self.events.get_forward_extremities(room_id)
        pdus = await self.events.get_pdus(extremities)
        group = await self.events.room_state_group(room_id)
        if not pdus or group is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Unknown room {room_id}")
        ordered = sorted(pdus, key=lambda e: (-int(pdus[e]["depth"]), e))
        head = RoomHead(ordered, max(int(p["depth"]) for p in pdus.values()), group,
                        await self.state.get_state_group(group),
                        {e: int(p["depth"]) for e, p in pdus.items()})
        self._heads[room_id] = head
        return head

    def forget_head(self, room_id: str) -> None:
        self._heads.pop(room_id, None)

    async def state_after_events(
        self, rv: RoomVersion, event_ids: Sequence[str],
        known: Mapping[str, tuple[GroupRef, StateMap]] | None = None,
        batch: Mapping[str, JsonDict] | None = None,
    ) -> tuple[StateMap, GroupRef | None]:
        """The state after a set of stored events (an event's prev_events, or the forward
        extremities): the one state they share, or the state resolution of theirs. Returns the
        state and a group that holds it when one does."""
        states = await self._states_after(event_ids, known or {})
        if not states:
            raise MatrixError(400, Codes.MISSING_PARAM,
                              "None of the prev_events is known with its state")
        distinct = {frozenset(s.items()): (ref, s) for ref, s in states}
        if len(distinct) == 1:
            ref, state = next(iter(distinct.values()))
            return dict(state), ref
        resolved = await self.resolve(rv, [s for _, s in distinct.values()], batch)
        for ref, state in distinct.values():
            if state == resolved:
                return resolved, ref
        return resolved, None

    async def resolve(self, rv: RoomVersion, states: Sequence[StateMap],
                      batch: Mapping[str, JsonDict] | None = None) -> StateMap:
        """State resolution of ``states`` (the algorithm of ``rv``); ``batch``: PDUs not
        stored yet."""
        extra = batch or {}

        async def fetch(ids: Collection[str]) -> Mapping[str, JsonDict]:
            found = {i: extra[i] for i in ids if i in extra}
            found.update(await self.events.get_pdus(i for i in ids if i not in extra))
            return found

        return await resolve_state(rv, states, fetch)

    async def _states_after(
        self, event_ids: Sequence[str], known: Mapping[str, tuple[GroupRef, StateMap]],
    ) -> list[tuple[GroupRef, StateMap]]:
        out: list[tuple[GroupRef, StateMap]] = []
        stored = await self.state.get_groups_after([e for e in event_ids if e not in known])
        for event_id in event_ids:
            if event_id in known:
                out.append(known[event_id])
            elif event_id in stored:
                group = stored[event_id]
                out.append((group, await self.state.get_state_group(group)))
        return out

    # --- the step --------------------------------------------------------------------------

    async def persist(
        self, room_id: str, rv: RoomVersion, contexts: Sequence[EventContext], *,
        new_room: bool = False,
        extra: Callable[[aiosqlite.Connection], Awaitable[None]] | None = None,
    ) -> list[StoredEvent]:
        """Store ``contexts`` (in order) in one transaction; the caller holds the room lock.
        ``new_room``: the batch creates the room (a local create event, or the outliers and
        join event of a remote join); ``extra`` writes more rows in the same transaction."""
        head = None if new_room else await self.head(room_id)
        plan = await self._plan(room_id, rv, head, contexts)
        live = [c for c in contexts if c.live]
        live_triples = [(c.pdu, c.state_before or {}, c.state_after or {}) for c in live]
        deliveries = {c.pdu["event_id"]: [d for fanout in self.fanouts
                                          for d in await fanout(c.pdu, room_id)] for c in live}
        extra_rows = [rows for hook in self.event_rows
                      if live_triples and (rows := await hook(room_id, live_triples)) is not None]
        by_power = {c.pdu["event_id"]: await redaction_power(self.events, c.pdu["sender"],
                                                             c.state_before or {})
                    for c in contexts if c.rejected is None and redaction_target(c.pdu)}

        async def run(conn: aiosqlite.Connection) -> tuple[list[int], int | None]:
            if new_room:
                create = next(c.pdu for c in contexts if c.pdu["type"] == "m.room.create")
                await insert_room(conn, room_id, rv.identifier, create["sender"],
                                  create["origin_server_ts"])
            # 1.
            positions = [self.streams.next() if c.live else self.streams.next_backfill()
                         for c in contexts]
            current_id = await _group_id(plan.current_group, conn, room_id, self.state)
            last_live = max((i for i, c in enumerate(contexts) if c.live), default=None)
            for i, ctx in enumerate(contexts):
                event_id = ctx.pdu["event_id"]
                # 2.
                before = await _group_id(plan.before[i], conn, room_id, self.state)
                after = await _group_id(plan.after[i], conn, room_id, self.state)
                # 3.
                await insert_event(
                    conn, ctx.pdu, positions[i], room_id, state_before=before,
                    state_after=after, outlier=ctx.outlier, rejected_reason=ctx.rejected,
                    txn_id=ctx.txn_id, device_id=ctx.device_id,
                    redaction_by_power=by_power.get(event_id, False),
                    soft_failed=ctx.soft_failed,
                    room_state_after=current_id if i == last_live and (
                        current_id != after or len(plan.extremities) > 1) else None)
                # 7.
                if destinations := deliveries.get(event_id):
                    await enqueue_event(conn, destinations, event_id)
                if ctx.live:
                    for rows in extra_rows:
                        await rows.write(conn, event_id, positions[i])
            # 4.
            await update_forward_extremities(conn, room_id, plan.removed, plan.added)
            # 5, 6.
            if plan.current is not None and plan.current != (head.state if head else {}):
                own = {c.pdu["event_id"]: p for c, p in zip(contexts, positions, strict=True)
                       if c.live}
                await self.state.set_current_state(
                    conn, room_id, head.state if head else {}, plan.current, plan.memberships,
                    max(own.values(), default=self.streams.current), own)
            if extra is not None:
                await extra(conn)
            return positions, current_id

        try:
            positions, current_id = await self.db.write(run)
        except Exception:
            self.forget_head(room_id)
            raise
        woken = {d for ds in deliveries.values() for d in ds} | {
            d for rows in extra_rows for d in rows.destinations}
        if woken and self.outbox_wake is not None:
            self.outbox_wake(woken)
        self._after_commit(room_id, head, plan, current_id, contexts)
        return [StoredEvent(c.pdu, pos, room_id, None, c.txn_id, c.device_id, c.outlier,
                            c.rejected, c.soft_failed)
                for c, pos in zip(contexts, positions, strict=True)]

    def _after_commit(self, room_id: str, head: RoomHead | None, plan: _Plan,
                      current_id: int | None, contexts: Sequence[EventContext]) -> None:
        for ctx in contexts:
            if "state_key" in ctx.pdu:
                self.events.remember_pdu(ctx.pdu)
        for event_id, (user_id, membership) in plan.memberships.items():
            self.members.note_membership(room_id, user_id, membership, event_id)
        if plan.current is not None and current_id is not None:
            self._heads[room_id] = RoomHead(
                sorted(plan.extremities, key=lambda e: (-plan.depths[e], e)),
                max(plan.depths.values()), current_id, plan.current, plan.depths)
        elif head is not None and plan.added | plan.removed:
            self.forget_head(room_id)

    async def _plan(self, room_id: str, rv: RoomVersion, head: RoomHead | None,
                    contexts: Sequence[EventContext]) -> _Plan:
        """Steps 2, 4, 5 and 6 computed with reads only."""
        batch = {c.pdu["event_id"]: c.pdu for c in contexts}
        known: dict[str, tuple[GroupRef, StateMap]] = {}
        befores: list[GroupRef | None] = []
        afters: list[GroupRef | None] = []
        for ctx in contexts:
            if ctx.state_before is None:  # an outlier
                befores.append(None)
                afters.append(None)
                continue
            if head is not None and ctx.state_before is head.state:
                before: GroupRef = head.state_group  # built on the room's head: its group
            else:
                before = await self._group_for(ctx.state_before, prev_event_ids(ctx.pdu), known)
            after_state = ctx.state_after or {}
            after: GroupRef = before
            if after_state != ctx.state_before:
                after = _Group(after_state, before, ctx.state_before)
            befores.append(before)
            afters.append(after)
            known[ctx.pdu["event_id"]] = (after, after_state)
        # 4.
        extremities = set(head.extremities) if head else set()
        growing = [c for c in contexts if c.live]
        removed = {p for c in growing for p in prev_event_ids(c.pdu)} & extremities
        referenced = await self.events.referenced_by_stored(
            [c.pdu["event_id"] for c in growing if not c.fresh])
        referenced |= {p for c in growing for p in prev_event_ids(c.pdu)}
        added = {c.pdu["event_id"] for c in growing} - referenced
        extremities = (extremities - removed) | added
        removed -= added
        known_depths = head.depths if head else {}
        depths = {e: int(batch[e]["depth"]) if e in batch else known_depths.get(e, -1)
                  for e in extremities}
        unknown = [e for e, d in depths.items() if d < 0]
        depths.update({e: int(p["depth"])
                       for e, p in (await self.events.get_pdus(unknown)).items()})
        plan = _Plan(befores, afters, extremities, removed, added, None, None, {}, depths)
        if not growing:
            return plan
        # 5.
        ordered = sorted(extremities)
        plan.current, ref = await self.state_after_events(rv, ordered, known, batch)
        last = next(i for i in range(len(contexts) - 1, -1, -1) if contexts[i].live)
        plan.current_group = ref if ref is not None else _Group(
            plan.current, afters[last], contexts[last].state_after or {})
        # 6.
        old = head.state if head else {}
        changed = [e for k, e in plan.current.items()
                   if k[0] == "m.room.member" and old.get(k) != e]
        pdus = {e: batch[e] for e in changed if e in batch}
        pdus.update(await self.events.get_pdus(e for e in changed if e not in batch))
        plan.memberships = {e: (p["state_key"], p["content"]["membership"])
                            for e, p in pdus.items()}
        return plan

    async def _group_for(self, state: StateMap, prevs: Sequence[str],
                         known: Mapping[str, tuple[GroupRef, StateMap]]) -> GroupRef:
        """A group holding ``state``: a prev event's state-after group when it is the same,
        else a new delta group over the first prev's (or a snapshot, for a first event)."""
        candidates = await self._states_after(prevs, known)
        for ref, prev_state in candidates:
            if prev_state == state:
                return ref
        if candidates:
            ref, prev_state = candidates[0]
            return _Group(state, ref, prev_state)
        return _Group(state)
