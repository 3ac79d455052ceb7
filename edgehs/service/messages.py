"""Room history: /messages, /context and /relations pagination.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidmessages
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidcontexteventid
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidrelationseventid

History follows the room's topological order, the key (depth, stream position)
(``store/events.py``): backfilled events take their place by depth. The tokens returned are
topological (``t{depth}-{stream}``, :class:`TopoToken`). A token stands *between* events: key
``k`` lies after every event with key ``<= k`` and before the others. Paginating backwards from
``k`` returns events ``<= k`` newest first; forwards, events ``> k`` oldest first. Tokens are
data (keys of stored events), so they stay valid across restarts.

A /sync token (``s{p}...``, a /sync ``prev_batch`` or ``next_batch``) is accepted as ``from`` /
``to`` too, and bounds the stream instead: backwards from it go the events learned at or before
``p`` (so history backfilled later, at negative positions, is found before the /sync timeline),
forwards the events learned after it, still in topological order.
"""

from dataclasses import dataclass, field
from typing import Any

from edgehs.errors import Codes, MatrixError
from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.filters import EventFilter
from edgehs.service.notifier import Notifier
from edgehs.service.sync import SyncToken
from edgehs.service.sync_token import TopoToken
from edgehs.service.visibility import Visibility
from edgehs.store.events import (
    TOPO_BOTTOM,
    TOPO_TOP,
    EventStore,
    StoredEvent,
    TopoKey,
    just_before,
)
from edgehs.store.state import StateStore
from edgehs.types import JsonDict, StateMap

# Rows looked at per request before answering with a short (possibly empty) chunk and an
# `end` token: Python-side filters (wildcard types, contains_url) never scan a whole room.
MAX_SCAN = 2000
# "Homeservers SHOULD traverse at least 3 levels of relationships."
RELATIONS_RECURSION_DEPTH = 3


@dataclass(frozen=True)
class RoomEventFilter:
    """A RoomEventFilter: https://spec.matrix.org/v1.19/client-server-api/#filtering

    The type and sender lists are :class:`EventFilter`'s; ``contains_url`` and the room lists
    are the RoomEventFilter additions."""

    events: EventFilter = field(default_factory=EventFilter)
    contains_url: bool | None = None
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Any) -> "RoomEventFilter":
        events = EventFilter.parse(raw, "filter")
        section: JsonDict = raw or {}
        contains_url = section.get("contains_url")
        if contains_url is not None and not isinstance(contains_url, bool):
            raise MatrixError(400, Codes.BAD_JSON, "filter field contains_url must be a boolean")
        rooms, not_rooms = section.get("rooms"), section.get("not_rooms", [])
        for name, value in (("rooms", rooms), ("not_rooms", not_rooms)):
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise MatrixError(400, Codes.BAD_JSON, f"filter field {name} must be a list")
        return cls(events, contains_url, None if rooms is None else tuple(rooms),
                   tuple(not_rooms or ()))

    @property
    def lazy_load_members(self) -> bool:
        return self.events.lazy_load_members

    def room_allowed(self, room_id: str) -> bool:
        return room_id not in self.not_rooms and (self.rooms is None or room_id in self.rooms)

    def sql_not_types(self) -> tuple[str, ...] | None:
        nt = self.events.not_types
        return None if nt is None or any(t.endswith("*") for t in nt) else nt

    def allows(self, ev: StoredEvent) -> bool:
        pdu = ev.pdu
        f = self.events
        if not f.allows_type(str(pdu["type"])):
            return False
        if f.senders is not None and pdu["sender"] not in f.senders:
            return False
        if f.not_senders and pdu["sender"] in f.not_senders:
            return False
        if self.contains_url is not None:
            content = pdu.get("content")
            has_url = isinstance(content, dict) and isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True


@dataclass(frozen=True)
class Page:
    """Matching events in paging order, and the key to continue from (None: no more)."""

    events: list[StoredEvent]
    next_key: TopoKey | None


RoomToken = SyncToken | TopoToken


def token(key: TopoKey) -> str:
    return str(TopoToken(*key))


@dataclass(frozen=True)
class Bounds:
    """A stretch of a room: lower < (depth, stream) <= upper, and stream_after <
    stream_ordering <= stream_upto where given."""

    lower: TopoKey = TOPO_BOTTOM
    upper: TopoKey = TOPO_TOP
    stream_after: int | None = None
    stream_upto: int | None = None

    @classmethod
    def of(cls, from_token: RoomToken | None, to_token: RoomToken | None, backwards: bool,
           top: TopoKey) -> "Bounds":
        """The stretch a pagination walks from ``from_token`` towards ``to_token``, ending
        at ``top`` at the latest."""
        lower, upper = TOPO_BOTTOM, top
        stream_after: int | None = None
        stream_upto: int | None = None
        for tok, is_upper in ((from_token, backwards), (to_token, not backwards)):
            if isinstance(tok, TopoToken):
                if is_upper:
                    upper = min(upper, tok.key)
                else:
                    lower = tok.key
            elif isinstance(tok, SyncToken):
                if is_upper:
                    stream_upto = tok.position
                else:
                    stream_after = tok.position
        return cls(lower, upper, stream_after, stream_upto)

    def holds(self, ev: StoredEvent) -> bool:
        return (self.lower < ev.topo <= self.upper
                and (self.stream_after is None or ev.stream_ordering > self.stream_after)
                and (self.stream_upto is None or ev.stream_ordering <= self.stream_upto))


class MessagesService:
    def __init__(
        self, events: EventStore, state: StateStore, visibility: Visibility,
        formatter: ClientEventFormatter, notifier: Notifier,
    ) -> None:
        self.events = events
        self.state = state
        self.visibility = visibility
        self.formatter = formatter
        self.notifier = notifier

    def now(self) -> SyncToken:
        return SyncToken(self.notifier.position, self.notifier.typing_serial)

    async def newest_key(self, room_id: str) -> TopoKey:
        """The place of the topologically last event the notifier has announced."""
        return await self.events.topo_key_at(room_id, self.notifier.position) or TOPO_BOTTOM

    async def scan(self, room_id: str, bounds: Bounds, *, backwards: bool, limit: int,
                   flt: RoomEventFilter, user_id: str | None = None) -> Page:
        """Up to ``limit`` events within ``bounds`` that ``flt`` allows (and, given
        ``user_id``, that the user may see), newest first when ``backwards``; never a live
        event the notifier has not announced yet. Invisible stretches of the room are
        skipped; no ``next_key`` once the visible history is exhausted."""
        lower, upper = bounds.lower, bounds.upper
        if lower >= upper:
            return Page([], None)
        facts = None
        spans = [(lower, upper)]
        if user_id is not None:
            facts = await self.visibility.facts(room_id, user_id)
            spans = [(max(lo, lower), min(hi, upper)) for lo, hi in facts.topo_ranges()
                     if max(lo, lower) < min(hi, upper)]
        if backwards:
            spans.reverse()
        cache = {room_id: facts} if facts is not None else None
        announced = self.notifier.position
        stream_upto = (announced if bounds.stream_upto is None
                       else min(bounds.stream_upto, announced))
        found: list[StoredEvent] = []
        scanned = 0
        for span_lower, span_upper in spans:
            after, before = span_lower, span_upper
            while True:
                want = limit + 1 - len(found)
                batch = await self.events.get_room_events_topo(
                    room_id, after=after, upto=before, limit=want, backwards=backwards,
                    stream_after=bounds.stream_after, stream_upto=stream_upto,
                    types=flt.events.sql_types(), not_types=flt.sql_not_types(),
                    senders=flt.events.senders,
                )
                matching = [ev for ev in batch if flt.allows(ev)]
                if user_id is not None and cache is not None:
                    matching = await self.visibility.filter_events(user_id, matching, cache)
                for ev in matching:
                    if len(found) == limit:  # one more match exists: stop before it
                        if not found:
                            return Page(found, upper if backwards else lower)
                        last = found[-1].topo
                        return Page(found, just_before(last) if backwards else last)
                    found.append(ev)
                if len(batch) < want:
                    break
                scanned += len(batch)
                if backwards:
                    before = just_before(batch[-1].topo)
                else:
                    after = batch[-1].topo
                if scanned >= MAX_SCAN:
                    return Page(found, before if backwards else after)
        return Page(found, None)

    # --- /messages ---------------------------------------------------------------------------

    async def messages(
        self, room_id: str, user_id: str, *, from_token: RoomToken | None,
        to_token: RoomToken | None, backwards: bool, limit: int, flt: RoomEventFilter,
    ) -> JsonDict:
        """The /messages response body (``start`` is replaced by the caller when it has the
        client's own ``from`` string)."""
        _, until = await self.visibility.require_readable_bound(room_id, user_id)
        newest = await self.newest_key(room_id)
        bounds = Bounds.of(from_token, to_token, backwards, min(until, newest))
        page = Page([], None)
        if flt.room_allowed(room_id):
            page = await self.scan(room_id, bounds, backwards=backwards, limit=limit, flt=flt,
                                   user_id=user_id)
        body: JsonDict = {
            "chunk": await self.formatter.format(page.events, user_id),
            "start": token(bounds.upper if backwards else bounds.lower),
        }
        if page.next_key is not None:
            body["end"] = token(page.next_key)
        elif not backwards and to_token is None and until == TOPO_TOP:
            # Forwards to the live edge: the timeline goes on, so the client gets the token
            # to continue from when more events come (the spec omits `end` only at the start
            # of the timeline or where the user may see no more).
            body["end"] = token(max(bounds.upper, bounds.lower))
        if flt.lazy_load_members:
            body["state"] = await self._member_state(page.events, user_id)
        return body

    async def _member_state(self, chunk: list[StoredEvent], user_id: str) -> list[JsonDict]:
        """The member events of the chunk's senders, as of the newest chunk event."""
        if not chunk:
            return []
        newest = max(chunk, key=lambda e: e.topo)
        state = await self.state.get_state_after(newest.event_id) or {}
        senders = {str(e.pdu["sender"]) for e in chunk}
        ids = [state[("m.room.member", s)] for s in sorted(senders)
               if ("m.room.member", s) in state]
        events = await self.events.get_events(ids)
        return await self.formatter.format([events[i] for i in ids if i in events], user_id)

    # --- /context ----------------------------------------------------------------------------

    async def context(self, room_id: str, user_id: str, event_id: str, limit: int,
                      flt: RoomEventFilter) -> JsonDict:
        _, until = await self.visibility.require_readable_bound(room_id, user_id)
        target = await self.events.get_event(event_id)
        if (target is None or target.room_id != room_id or not target.in_timeline
                or target.topo > until or target.stream_ordering > self.notifier.position
                or not await self.visibility.is_visible(user_id, target)):
            raise MatrixError(404, Codes.NOT_FOUND, "Event not found")
        key = target.topo
        before_limit = limit // 2
        before = await self.scan(room_id, Bounds(upper=just_before(key)), backwards=True,
                                 limit=before_limit, flt=flt, user_id=user_id)
        after = await self.scan(room_id, Bounds(lower=key, upper=until), backwards=False,
                                limit=limit - before_limit, flt=flt, user_id=user_id)
        start = just_before(before.events[-1].topo if before.events else key)
        end = after.events[-1].topo if after.events else key
        last = after.events[-1] if after.events else target
        state = await self.state.get_state_after(last.event_id) or {}
        shown = [*before.events, target, *after.events]
        state_events = await self._context_state(state, shown, user_id, flt)
        fmt = self.formatter.format
        return {
            "start": token(start),
            "end": token(end),
            "events_before": await fmt(before.events, user_id),
            "event": (await fmt([target], user_id))[0],
            "events_after": await fmt(after.events, user_id),
            "state": await fmt(state_events, user_id),
        }

    async def _context_state(self, state: StateMap, shown: list[StoredEvent], user_id: str,
                             flt: RoomEventFilter) -> list[StoredEvent]:
        senders = {str(e.pdu["sender"]) for e in shown} | {user_id}
        ids = [
            event_id for (etype, skey), event_id in state.items()
            if not (flt.lazy_load_members and etype == "m.room.member" and skey not in senders)
        ]
        loaded = await self.events.get_events(ids)
        return [loaded[i] for i in ids if i in loaded and flt.allows(loaded[i])]

    # --- /relations --------------------------------------------------------------------------

    async def relations(
        self, room_id: str, user_id: str, event_id: str, *, rel_type: str | None,
        event_type: str | None, from_token: RoomToken | None, to_token: RoomToken | None,
        backwards: bool, limit: int, recurse: bool | None,
    ) -> JsonDict:
        """Child events of ``event_id`` the user may see, in topological order (newest first
        when ``backwards``). ``recurse`` None: the client did not ask, so ``recursion_depth``
        is left out."""
        _, until = await self.visibility.require_readable_bound(room_id, user_id)
        parent = await self.events.get_event(event_id)
        if (parent is None or parent.room_id != room_id or not parent.in_timeline
                or parent.topo > until or not await self.visibility.is_visible(user_id, parent)):
            raise MatrixError(404, Codes.NOT_FOUND, "Event not found")
        children, depth = await self._children(event_id, rel_type, event_type, bool(recurse))
        children = await self.visibility.filter_events(
            user_id, [e for e in children if e.room_id == room_id and e.in_timeline
                      and e.stream_ordering <= self.notifier.position])
        bounds = Bounds.of(from_token, to_token, backwards, until)
        chosen = sorted((e for e in children if e.redacted_by is None and bounds.holds(e)),
                        key=lambda e: e.topo, reverse=backwards)
        page = chosen[:limit]
        body: JsonDict = {"chunk": await self.formatter.format(page, user_id)}
        if len(chosen) > limit:
            if not page:
                next_key = bounds.upper if backwards else bounds.lower
            else:
                next_key = just_before(page[-1].topo) if backwards else page[-1].topo
            body["next_batch"] = token(next_key)
        if from_token is not None:
            body["prev_batch"] = str(from_token)
        if recurse is not None:
            body["recursion_depth"] = depth
        return body

    async def _children(self, event_id: str, rel_type: str | None, event_type: str | None,
                        recurse: bool) -> tuple[list[StoredEvent], int]:
        """Direct children (filtered in SQL), or with ``recurse`` every descendant up to
        :data:`RELATIONS_RECURSION_DEPTH` levels (filtered here); and the depth walked."""
        if not recurse:
            ids = await self.events.get_relations(event_id, rel_type, event_type)
            return list((await self.events.get_events(ids)).values()), 1
        seen: set[str] = {event_id}
        level, depth = [event_id], 0
        found: list[str] = []
        while level and depth < RELATIONS_RECURSION_DEPTH:
            depth += 1
            nxt: list[str] = []
            for parent in level:
                for child in await self.events.get_relations(parent, None, None):
                    if child not in seen:
                        seen.add(child)
                        nxt.append(child)
            found += nxt
            level = nxt
        loaded = (await self.events.get_events(found)).values()
        return [e for e in loaded if _matches(e, rel_type, event_type)], depth


def _matches(ev: StoredEvent, rel_type: str | None, event_type: str | None) -> bool:
    if event_type is not None and ev.pdu["type"] != event_type:
        return False
    if rel_type is None:
        return True
    content = ev.pdu.get("content")
    relates = content.get("m.relates_to") if isinstance(content, dict) else None
    return isinstance(relates, dict) and relates.get("rel_type") == rel_type
