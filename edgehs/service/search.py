"""Server-side search: full-text search over the room events a user may see.

https://spec.matrix.org/v1.19/client-server-api/#server-side-search

Only rooms the user is or was in are searched (joined, left, banned; forgotten rooms are left
out), each up to the last position the user may read (``Visibility.readable_until``: all of it
while joined, up to their leave event after leaving), and each result judged by the room's
history visibility at that event (``Visibility.filter_events``; ``count`` counts the index
matches before that judgement, an approximation as the spec allows). ``next_batch`` is
``r{position}`` for ``recent`` (continue with older events) and ``k{offset}`` for ``rank``.
"""

from dataclasses import dataclass

from edgehs.errors import Codes, MatrixError
from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.messages import Bounds, MessagesService, RoomEventFilter, token
from edgehs.service.search_query import SearchRequest, fts_query
from edgehs.service.visibility import RoomFacts, Visibility
from edgehs.store.events import TOPO_BOTTOM, EventStore, StoredEvent, just_before
from edgehs.store.rooms import MemberStore
from edgehs.store.search import Match, SearchQuery, SearchStore
from edgehs.store.state import StateStore
from edgehs.types import JsonDict

# Index rows looked at per request before answering with what was found and a next_batch:
# Python-side filters (wildcard types, contains_url) never scan the whole index.
MAX_SCAN = 1000
EVERYTHING = 2**62


@dataclass
class _Cursor:
    recent: bool
    before: int | None = None
    offset: int = 0

    @classmethod
    def parse(cls, token: str | None, recent: bool) -> "_Cursor":
        if not token:
            return cls(recent)
        kind, value = token[:1], token[1:]
        if kind != ("r" if recent else "k") or not value.isdigit():
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid next_batch token {token!r}")
        return cls(recent, int(value), 0) if recent else cls(recent, None, int(value))

    def advance(self, match: Match) -> None:
        if self.recent:
            self.before = match.stream_ordering
        else:
            self.offset += 1

    def __str__(self) -> str:
        return f"r{self.before}" if self.recent else f"k{self.offset}"


class SearchService:
    def __init__(self, store: SearchStore, events: EventStore, state: StateStore,
                 members: MemberStore, visibility: Visibility, messages: MessagesService,
                 formatter: ClientEventFormatter) -> None:
        self.store = store
        self.events = events
        self.state = state
        self.members = members
        self.visibility = visibility
        self.messages = messages
        self.formatter = formatter

    async def readable_rooms(self, user_id: str, flt: RoomEventFilter) -> dict[str, int]:
        """room_id -> the last stream position the user may read, for the rooms they are or
        were in that the filter allows."""
        rooms = await self.members.get_rooms_for_user(user_id, ("join", "leave", "ban"))
        now = self.messages.notifier.position
        allowed = {}
        for room_id in sorted(rooms):
            if not flt.room_allowed(room_id):
                continue
            until = await self.visibility.readable_until(room_id, user_id)
            if until is not None:
                allowed[room_id] = min(until, now)
        return allowed

    async def search(self, user_id: str, req: SearchRequest, next_batch: str | None) -> JsonDict:
        """The /search response body."""
        cursor = _Cursor.parse(next_batch, req.recent)
        match, highlights = fts_query(req.term)
        allowed = await self.readable_rooms(user_id, req.flt)
        f = req.flt.events
        query = SearchQuery(match, sorted(allowed.items()), req.keys, f.sql_types(),
                            req.flt.sql_not_types(), f.senders, f.not_senders)
        found, more = await self._page(query, cursor, req, user_id)
        formatted = await self.formatter.format([ev for _, ev in found], user_id)
        results: list[JsonDict] = []
        for (m, ev), client in zip(found, formatted, strict=True):
            result: JsonDict = {"rank": m.rank, "result": client}
            if req.context is not None:
                result["context"] = await self._context(ev, user_id, allowed[ev.room_id], req)
            results.append(result)
        body: JsonDict = {
            "results": results, "count": await self.store.count(query), "highlights": highlights,
        }
        if more:
            body["next_batch"] = str(cursor)
        if req.group_by:
            body["groups"] = _groups([ev for _, ev in found], req.group_by)
        if req.include_state:
            body["state"] = {room_id: await self._room_state(room_id, user_id)
                             for room_id in dict.fromkeys(ev.room_id for _, ev in found)}
        return {"search_categories": {"room_events": body}}

    async def _page(self, query: SearchQuery, cursor: _Cursor, req: SearchRequest,
                    user_id: str) -> tuple[list[tuple[Match, StoredEvent]], bool]:
        """Up to ``limit`` matches the whole filter allows, advancing ``cursor`` past each
        row looked at; and whether more rows remain."""
        limit = req.limit
        found: list[tuple[Match, StoredEvent]] = []
        scanned = 0
        facts: dict[str, RoomFacts] = {}  # history visibility, per room, for this request
        while True:
            want = limit + 1 - len(found)
            batch = await self.store.search(query, recent=cursor.recent, before=cursor.before,
                                            offset=cursor.offset, limit=want)
            loaded = await self.events.get_events(m.event_id for m in batch)
            visible = await self.visibility.filter_events(user_id, list(loaded.values()), facts)
            loaded = {e.event_id: e for e in visible}
            for m in batch:
                if len(found) == limit:
                    return found, True
                cursor.advance(m)
                ev = loaded.get(m.event_id)
                if ev is not None and ev.redacted_by is None and req.flt.allows(ev):
                    found.append((m, ev))
            scanned += len(batch)
            if len(batch) < want:
                return found, False
            if scanned >= MAX_SCAN:
                return found, True

    async def _context(self, ev: StoredEvent, user_id: str, until: int, req: SearchRequest
                       ) -> JsonDict:
        """The events around a result, as the user may see them (and who sent them)."""
        assert req.context is not None
        before_limit, after_limit = req.context
        key, room_id, everything = ev.topo, ev.room_id, RoomEventFilter()
        # ``until`` is a stream position (now, or the user's leave): its place in the room.
        until_key = await self.messages.events.topo_key_at(room_id, until) or TOPO_BOTTOM
        before = await self.messages.scan(room_id, Bounds(upper=just_before(key)),
                                          backwards=True, limit=before_limit, flt=everything,
                                          user_id=user_id)
        after = await self.messages.scan(room_id, Bounds(lower=key, upper=until_key),
                                         backwards=False, limit=after_limit, flt=everything,
                                         user_id=user_id)
        start = just_before(before.events[-1].topo if before.events else key)
        end = after.events[-1].topo if after.events else key
        out: JsonDict = {
            "start": token(start),
            "end": token(end),
            "events_before": await self.formatter.format(before.events, user_id),
            "events_after": await self.formatter.format(after.events, user_id),
        }
        if req.include_profile:
            senders = {str(e.pdu["sender"]) for e in (*before.events, ev, *after.events)}
            out["profile_info"] = await self._profiles(ev.event_id, senders)
        return out

    async def _profiles(self, event_id: str, senders: set[str]) -> JsonDict:
        """The senders' display names and avatars as of the result event (historic)."""
        state = await self.state.get_state_after(event_id) or {}
        ids = {s: state[("m.room.member", s)] for s in senders if ("m.room.member", s) in state}
        members = await self.events.get_events(ids.values())
        profiles: JsonDict = {}
        for sender in sorted(senders):
            member = members.get(ids.get(sender, ""))
            content = member.pdu.get("content") if member and not member.redacted_by else None
            content = content if isinstance(content, dict) else {}
            profiles[sender] = {k: content[k] for k in ("displayname", "avatar_url")
                                if isinstance(content.get(k), str)}
        return profiles

    async def _room_state(self, room_id: str, user_id: str) -> list[JsonDict]:
        """The room's current state for a member; for a former member, the state when they
        left."""
        membership = await self.members.get_membership(room_id, user_id)
        until = await self.visibility.readable_until(room_id, user_id)
        if membership is None or (until is not None and until >= EVERYTHING):
            state = await self.state.get_current_state_ids(room_id)
        else:
            state = await self.state.get_state_after(membership[1]) or {}
        loaded = await self.events.get_events(state.values())
        return await self.formatter.format([loaded[i] for i in state.values() if i in loaded],
                                           user_id, bundle=False)


def _groups(found: list[StoredEvent], group_by: tuple[str, ...]) -> JsonDict:
    """``groups``: for each requested key, the result event ids per room or sender, with the
    groups' ``order`` as they first appear in the results."""
    groups: JsonDict = {}
    for key in group_by:
        by_value: dict[str, JsonDict] = {}
        for ev in found:
            value = ev.room_id if key == "room_id" else str(ev.pdu["sender"])
            group = by_value.setdefault(value, {"order": len(by_value) + 1, "results": []})
            group["results"].append(ev.event_id)
        groups[key] = by_value
    return groups
