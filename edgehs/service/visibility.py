"""Who may read what in a room: ``m.room.history_visibility``, applied per event.

https://spec.matrix.org/v1.19/client-server-api/#room-history-visibility

The room-level gate (:meth:`Visibility.require_readable`): a current member, anyone when the
room is world_readable now, or a former member (whose reads stop at their leave). Then each
event is judged on the room state *at that event* (its state group before it), following the
spec's server behaviour:

1. history_visibility ``world_readable``: allow;
2. the user's membership was ``join``: allow;
3. ``shared`` (also: no or unknown value) and the user joined at any point after the event
   (a current member counts): allow;
4. membership ``invite`` and ``invited``: allow;
5. otherwise deny.

A history_visibility event is judged with the value before *or* after it; the user's own member
event with their membership before *or* after it.

Cost: one indexed query a room for the room's history_visibility events and the user's member
events (stream order). A current member of a room that was never ``invited``/``joined`` sees
everything: no further query. Otherwise the events' state groups are read (one query), and each
new (group, user) pair costs one recursive query a batch; pairs are cached (groups never change).
The stream-order facts also give the ranges of the room where anything may be visible, so that
pagination skips, and stops at, invisible history (:meth:`ranges`); the per-event judgement
stays the state-group one.
"""

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

from edgehs.errors import Codes, MatrixError
from edgehs.store.events import (
    TOPO_BOTTOM,
    TOPO_TOP,
    EventStore,
    StoredEvent,
    TopoKey,
    just_before,
)
from edgehs.store.rooms import MemberStore
from edgehs.store.state import StateStore
from edgehs.store.visibility import VisibilityStore

HV_TYPE = "m.room.history_visibility"
KNOWN = ("world_readable", "shared", "invited", "joined")
EVERYTHING = 2**62
GROUP_CACHE_SIZE = 8192
# Events fetched per round while looking for visible ones (Visibility.timeline).
ROUND = 100


def _hv(value: str | None) -> str:
    """Absent or not understood: shared."""
    return value if value in KNOWN else "shared"


def allowed(hv: str | None, membership: str | None, joined_after: bool) -> bool:
    """The spec's rules 1-5 for one (history_visibility, membership) pair."""
    visibility = _hv(hv)
    return (visibility == "world_readable" or membership == "join"
            or (visibility == "shared" and joined_after)
            or (visibility == "invited" and membership == "invite"))


# (stream_ordering, depth, type, history_visibility or membership) of one change event.
Change = tuple[int, int, str, str | None]


K = TypeVar("K", int, TopoKey)


def _ranges(changes: list[tuple[K, str, str | None]], bottom: K, top: K,
            before: Callable[[K], K], joined_after: Callable[[K], bool]
            ) -> list[tuple[K, K]]:
    """Ranges (after, upto] of keys where some event may be visible, oldest first, from the
    change events in key order."""
    hv: str | None = None
    membership: str | None = None
    starts: list[tuple[K, str | None, str | None]] = [(bottom, None, None)]
    for key, etype, value in changes:
        if etype == HV_TYPE:
            hv = value
        else:
            membership = value
        starts.append((key, hv, membership))
    out: list[tuple[K, K]] = []
    for i, (start, seg_hv, seg_member) in enumerate(starts):
        if not allowed(seg_hv, seg_member, joined_after(start)):
            continue
        # The next change event too: it may be visible by its before-state.
        end = starts[i + 1][0] if i + 1 < len(starts) else top
        lo = before(start) if i > 0 else bottom
        if out and out[-1][1] >= lo:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((lo, end))
    return out


@dataclass(frozen=True)
class RoomFacts:
    """One user's view of one room, from its history_visibility events and the user's member
    events (stream order)."""

    changes: list[Change]
    joined: bool  # currently joined

    @cached_property
    def last_join(self) -> int:
        """The stream position of the user's latest join (-1: never)."""
        return max((pos for pos, _, t, v in self.changes if t != HV_TYPE and v == "join"),
                   default=-1)

    @cached_property
    def last_join_topo(self) -> TopoKey | None:
        """The topologically last join of the user (None: never)."""
        return max(((d, pos) for pos, d, t, v in self.changes
                    if t != HV_TYPE and v == "join"), default=None)

    @property
    def restrictive(self) -> bool:
        """Whether any event may be hidden from a current member."""
        return any(t == HV_TYPE and _hv(v) in ("invited", "joined")
                   for _, _, t, v in self.changes)

    def joined_after(self, position: int) -> bool:
        """Whether the user is a member now, or joined at a stream position after this."""
        return self.joined or self.last_join > position

    def joined_after_topo(self, key: TopoKey) -> bool:
        """Whether the user is a member now, or joined at a place in the room after ``key``
        (the spec's "joined after the event": a place on the DAG, not an arrival time)."""
        return self.joined or (self.last_join_topo is not None and self.last_join_topo > key)

    def ranges(self) -> list[tuple[int, int]]:
        """Stream ranges (after, upto] where some event may be visible, oldest first."""
        return _ranges([(pos, t, v) for pos, _, t, v in self.changes], -EVERYTHING,
                       EVERYTHING, lambda p: p - 1, self.joined_after)

    def topo_ranges(self) -> list[tuple[TopoKey, TopoKey]]:
        """Topological ranges (after, upto] where some event may be visible, oldest first
        (what /messages pages through)."""
        ordered = sorted(((d, pos), t, v) for pos, d, t, v in self.changes)
        return _ranges(ordered, TOPO_BOTTOM, TOPO_TOP, just_before, self.joined_after_topo)


class Visibility:
    def __init__(self, members: MemberStore, events: EventStore, state: StateStore,
                 store: VisibilityStore) -> None:
        self.members = members
        self.events = events
        self.state = state
        self.store = store
        # (state group, user) -> (history_visibility, membership); groups are immutable.
        self._groups: OrderedDict[tuple[int, str], tuple[str | None, str | None]] = (
            OrderedDict())

    # --- the room-level gate ---------------------------------------------------------------

    async def readable_until(self, room_id: str, user_id: str) -> int | None:
        """The last stream position the user may read in the room (None: no access).
        A huge number stands for "everything, including the future". Single events are
        then judged by :meth:`filter_events`."""
        bound = await self.readable_bound(room_id, user_id)
        return None if bound is None else bound[0]

    async def readable_bound(self, room_id: str, user_id: str
                             ) -> tuple[int, TopoKey] | None:
        """:meth:`readable_until`, with the topological key of that last readable place
        (the former member's leave event; :data:`TOPO_TOP` for everything)."""
        membership = await self.members.get_membership(room_id, user_id)
        if membership is not None and membership[0] == "join":
            return EVERYTHING, TOPO_TOP
        if await self._world_readable(room_id):
            return EVERYTHING, TOPO_TOP
        if membership is not None and membership[0] in ("leave", "ban"):
            ev = await self.events.get_event(membership[1])
            if ev is not None and await self._was_member_before(ev.event_id, user_id):
                return ev.stream_ordering, ev.topo
        return None

    async def _was_member_before(self, event_id: str, user_id: str) -> bool:
        before = await self.state.get_state_before(event_id)
        member_id = (before or {}).get(("m.room.member", user_id))
        if member_id is None:
            return False
        prev = await self.events.get_event(member_id)
        return prev is not None and prev.pdu["content"].get("membership") == "join"

    async def _world_readable(self, room_id: str) -> bool:
        ev_id = await self.state.get_current_state_event_id(room_id, (HV_TYPE, ""))
        if ev_id is None:
            return False
        ev = await self.events.get_event(ev_id)
        return ev is not None and ev.pdu["content"].get("history_visibility") == "world_readable"

    async def require_readable(self, room_id: str, user_id: str) -> int:
        return (await self.require_readable_bound(room_id, user_id))[0]

    async def require_readable_bound(self, room_id: str, user_id: str) -> tuple[int, TopoKey]:
        bound = await self.readable_bound(room_id, user_id)
        if bound is None:
            raise MatrixError(403, Codes.FORBIDDEN, "You are not a member of this room")
        return bound

    async def require_joined(self, room_id: str, user_id: str) -> None:
        membership = await self.members.get_membership(room_id, user_id)
        if membership is None or membership[0] != "join":
            raise MatrixError(403, Codes.FORBIDDEN, f"{user_id} is not in room {room_id}")

    # --- per event -----------------------------------------------------------------------------

    async def facts(self, room_id: str, user_id: str) -> RoomFacts:
        changes = await self.store.room_timeline_facts(room_id, user_id)
        member = [v for _, _, t, v in changes if t != HV_TYPE]
        return RoomFacts(changes, bool(member) and member[-1] == "join")

    async def ranges(self, room_id: str, user_id: str) -> list[tuple[int, int]]:
        return (await self.facts(room_id, user_id)).ranges()

    async def is_visible(self, user_id: str, event: StoredEvent) -> bool:
        return bool(await self.filter_events(user_id, [event]))

    async def filter_events(self, user_id: str, events: list[StoredEvent],
                            facts: dict[str, RoomFacts] | None = None) -> list[StoredEvent]:
        """The events the user may see, in the given order. ``facts`` caches
        :meth:`facts` by room across calls of one request. Outliers (whose state is not
        known, so who may see them cannot be judged) and rejected events are never
        visible."""
        events = [e for e in events if e.in_timeline]
        if not events:
            return []
        known = facts if facts is not None else {}
        for room_id in {e.room_id for e in events} - known.keys():
            known[room_id] = await self.facts(room_id, user_id)
        judged = [e for e in events
                  if not (known[e.room_id].joined and not known[e.room_id].restrictive)]
        if not judged:
            return events
        hidden: set[str] = set()
        for ev, hvs, mems in await self._event_facts(user_id, judged):
            joined_after = known[ev.room_id].joined_after_topo(ev.topo)
            if not any(allowed(h, m, joined_after) for h in hvs for m in mems):
                hidden.add(ev.event_id)
        return [e for e in events if e.event_id not in hidden]

    async def seen_before(self, user_id: str, events: list[StoredEvent], position: int
                          ) -> set[str]:
        """The ids of the ``events`` the user could see as a member by stream ``position``
        (an erasure: https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountdeactivate).
        Rules 2-5 above, with "joined after the event" limited to joins before ``position``;
        world_readable counts as shared, since reading a public room is not having been in it."""
        changes = {room_id: await self.store.room_timeline_facts(room_id, user_id)
                   for room_id in {e.room_id for e in events}}
        seen: set[str] = set()
        for ev, hvs, mems in await self._event_facts(user_id, events):
            joined_between = any(
                t != HV_TYPE and v == "join" and ev.stream_ordering < pos < position
                for pos, _, t, v in changes[ev.room_id])
            if any(allowed("shared" if h == "world_readable" else h, m, joined_between)
                   for h in hvs for m in mems):
                seen.add(ev.event_id)
        return seen

    async def _event_facts(self, user_id: str, events: list[StoredEvent]
                           ) -> list[tuple[StoredEvent, list[str | None], list[str | None]]]:
        """Each event with the history_visibility values and the user's memberships it is
        judged by: those of the state before it, and after it for a history_visibility event
        and the user's own member event."""
        groups = await self.store.event_groups([e.event_id for e in events])
        wanted = {g for pair in groups.values() for g in pair if g is not None}
        group_facts = await self._group_facts(wanted, user_id)
        out = []
        for ev in events:
            before, after = groups.get(ev.event_id, (None, None))
            hv_b, mem_b = group_facts.get(before, (None, None)) if before is not None else (
                None, None)
            hvs, mems = [hv_b], [mem_b]
            if after is not None and after != before and "state_key" in ev.pdu:
                hv_a, mem_a = group_facts.get(after, (None, None))
                if ev.pdu["type"] == HV_TYPE:
                    hvs.append(hv_a)
                elif ev.pdu["type"] == "m.room.member" and ev.pdu["state_key"] == user_id:
                    mems.append(mem_a)
            out.append((ev, hvs, mems))
        return out

    async def _group_facts(self, groups: set[int], user_id: str
                           ) -> dict[int, tuple[str | None, str | None]]:
        out: dict[int, tuple[str | None, str | None]] = {}
        missing: list[int] = []
        for g in groups:
            hit = self._groups.get((g, user_id))
            if hit is None:
                missing.append(g)
            else:
                out[g] = hit
        if missing:
            for g, value in (await self.store.group_facts(missing, user_id)).items():
                out[g] = value
                self._groups[(g, user_id)] = value
                self._groups.move_to_end((g, user_id))
            while len(self._groups) > GROUP_CACHE_SIZE:
                self._groups.popitem(last=False)
        return out

    async def timeline(self, room_id: str, user_id: str, *, after: int | None, before: int,
                       limit: int, types: Sequence[str] | None = None,
                       not_types: Sequence[str] | None = None,
                       senders: Sequence[str] | None = None,
                       with_current_state: bool = False) -> list[StoredEvent]:
        """Up to ``limit`` visible events with after < stream_ordering <= before, newest
        first (the /sync timeline query, with history visibility applied). With
        ``with_current_state`` the room's current state events of that span are included
        even where history is hidden from the user (a member who left and came back sees
        who joined meanwhile), as Synapse does for /sync; this costs one more query only
        when the span is not all visible."""
        facts = await self.facts(room_id, user_id)
        cache = {room_id: facts}
        found: list[StoredEvent] = []
        for lo, hi in reversed(facts.ranges()):
            upper = min(hi, before)
            lower = max(lo, after if after is not None else -1)
            while upper > lower and len(found) < limit:
                want = max(limit - len(found), ROUND) if facts.restrictive else limit - len(found)
                batch = await self.events.get_room_events(
                    room_id, after=lower, before=upper, limit=want, backwards=True,
                    types=types, not_types=not_types, senders=senders)
                found += await self.filter_events(user_id, batch, cache)
                if len(batch) < want:
                    break
                upper = batch[-1].stream_ordering - 1
            if len(found) >= limit:
                break
        found = found[:limit]
        if with_current_state and facts.restrictive:
            lower = after if after is not None else -1
            if len(found) >= limit:
                lower = max(lower, found[-1].stream_ordering - 1)
            if not any(lo <= lower and hi >= before for lo, hi in facts.ranges()):
                have = {e.event_id for e in found}
                extra = [e for e in await self.events.current_state_between(
                    room_id, lower, before, types=types, not_types=not_types, senders=senders)
                    if e.event_id not in have]
                found = sorted([*found, *extra], key=lambda e: -e.stream_ordering)[:limit]
        return found
