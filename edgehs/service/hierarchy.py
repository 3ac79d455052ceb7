"""Spaces: the room hierarchy below a space.

https://spec.matrix.org/v1.19/client-server-api/#spaces
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidhierarchy

The walk is depth first from the root, over the ``m.space.child`` state events (with a valid
``via``) of each room, children in the spec's order. Only rooms this server holds are walked
(no federation): an unknown child is left out. A room is listed when the user may see it (see
:meth:`HierarchyService.accessible`); the children of a room the user may not see are not
walked. Pagination recomputes the walk: ``from`` tokens are ``{offset}_{suggested}_{depth}``,
so that a token used with other ``suggested_only`` or ``max_depth`` values is refused.
"""

from dataclasses import dataclass

from edgehs.errors import Codes, MatrixError
from edgehs.service.directory import DirectoryService
from edgehs.service.events import EventService
from edgehs.store.events import EventStore
from edgehs.store.rooms import MemberStore, RoomStore
from edgehs.store.state import StateStore
from edgehs.types import JsonDict

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DEFAULT_MAX_DEPTH = 50
# Rooms one walk visits at most (the whole answer is recomputed for each page).
MAX_WALK = 1000
MAX_ORDER_LENGTH = 50


@dataclass(frozen=True)
class HierarchyQuery:
    suggested_only: bool = False
    limit: int = DEFAULT_LIMIT
    max_depth: int = DEFAULT_MAX_DEPTH
    from_token: str | None = None


def _valid_order(content: JsonDict) -> str | None:
    order = content.get("order")
    if (isinstance(order, str) and 0 < len(order) <= MAX_ORDER_LENGTH
            and all(0x20 <= ord(c) <= 0x7E for c in order)):
        return order
    return None


def _child_sort_key(event: JsonDict) -> tuple[int, str, int, str]:
    """https://spec.matrix.org/v1.19/client-server-api/#ordering-of-children-within-a-space:
    valid ``order`` first (lexicographically), then the event's origin_server_ts, then the
    room id."""
    order = _valid_order(event["content"])
    return (0 if order is not None else 1, order or "", int(event["origin_server_ts"]),
            str(event["state_key"]))


class HierarchyService:
    def __init__(self, events: EventService, event_store: EventStore, state: StateStore,
                 rooms: RoomStore, members: MemberStore, directory: DirectoryService) -> None:
        self.events = events
        self.event_store = event_store
        self.state = state
        self.rooms = rooms
        self.members = members
        self.directory = directory

    async def _state_content(self, room_id: str, etype: str, key: str = "") -> JsonDict:
        ev = await self.events.current_state_event(room_id, (etype, key))
        content = ev.get("content") if ev else None
        return content if isinstance(content, dict) else {}

    async def children(self, room_id: str, suggested_only: bool) -> list[JsonDict]:
        """The room's valid ``m.space.child`` events (PDUs), in the spec's order."""
        ids = await self.state.get_current_state_ids(room_id)
        wanted = [e for (t, k), e in ids.items() if t == "m.space.child" and k.startswith("!")]
        loaded = await self.event_store.get_events(wanted)
        out = []
        for ev in loaded.values():
            content = ev.pdu.get("content")
            if not isinstance(content, dict):
                continue
            via = content.get("via")
            if not (isinstance(via, list) and via and all(isinstance(v, str) for v in via)):
                continue  # no (valid) via: not part of the space
            if suggested_only and content.get("suggested") is not True:
                continue
            out.append(ev.pdu)
        return sorted(out, key=_child_sort_key)

    async def accessible(self, room_id: str, user_id: str) -> bool:
        """Whether the hierarchy may show the room to the user: they are joined or invited,
        the join rule is public (or knock, or restricted with the user in an allowed room), or
        the history is world_readable."""
        membership = await self.members.get_membership(room_id, user_id)
        if membership is not None and membership[0] in ("join", "invite"):
            return True
        if membership is not None and membership[0] == "ban":
            return False
        rv = await self.events.room_version(room_id)
        join_rules = await self._state_content(room_id, "m.room.join_rules")
        rule = join_rules.get("join_rule")
        if rule == "public" or (rule == "knock" and rv.knock_join_rule) or (
                rule == "knock_restricted" and rv.knock_restricted_join_rule):
            return True
        if (rule == "restricted" and rv.restricted_join_rule) or rule == "knock_restricted":
            for allowed in _allowed_room_ids(join_rules):
                joined = await self.members.get_membership(allowed, user_id)
                if joined is not None and joined[0] == "join":
                    return True
        history = await self._state_content(room_id, "m.room.history_visibility")
        return history.get("history_visibility") == "world_readable"

    async def room_entry(self, room_id: str, suggested_only: bool) -> JsonDict:
        """A SpaceHierarchyRoomsChunk: the room summary and its ``children_state``."""
        entry, _ = await self.directory.room_summary(room_id)
        version = await self.rooms.get_room_version_id(room_id)
        if version is not None:
            entry["room_version"] = version
        encryption = await self._state_content(room_id, "m.room.encryption")
        if encryption.get("algorithm") == "m.megolm.v1.aes-sha2":
            entry["encryption"] = "m.megolm.v1.aes-sha2"
        if entry.get("join_rule") in ("restricted", "knock_restricted"):
            allowed = _allowed_room_ids(await self._state_content(room_id, "m.room.join_rules"))
            if allowed:
                entry["allowed_room_ids"] = allowed
        entry["children_state"] = [
            {"type": c["type"], "state_key": c["state_key"], "content": c["content"],
             "sender": c["sender"], "origin_server_ts": c["origin_server_ts"]}
            for c in await self.children(room_id, suggested_only)
        ]
        return entry

    async def hierarchy(self, room_id: str, user_id: str, query: HierarchyQuery) -> JsonDict:
        """GET /rooms/{roomId}/hierarchy."""
        if query.limit < 1:
            raise MatrixError(400, Codes.INVALID_PARAM, "limit must be greater than zero")
        if query.max_depth < 0:
            raise MatrixError(400, Codes.INVALID_PARAM, "max_depth must not be negative")
        offset = _parse_token(query)
        if (await self.rooms.get_room_version_id(room_id) is None
                or not await self.accessible(room_id, user_id)):
            raise MatrixError(403, Codes.FORBIDDEN, "You are not allowed to view this room")
        limit = min(query.limit, MAX_LIMIT)
        # Depth-first walk; a stack of (room, depth), children pushed in reverse order.
        stack: list[tuple[str, int]] = [(room_id, 0)]
        seen: set[str] = set()
        listed: list[str] = []
        entries: list[JsonDict] = []
        while stack and len(seen) < MAX_WALK and len(listed) < offset + limit + 1:
            current, depth = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if current != room_id and (
                    await self.rooms.get_room_version_id(current) is None
                    or not await self.accessible(current, user_id)):
                continue
            listed.append(current)
            if len(listed) > offset and len(entries) < limit:
                entries.append(await self.room_entry(current, query.suggested_only))
            if depth < query.max_depth:
                kids = await self.children(current, query.suggested_only)
                stack += [(k["state_key"], depth + 1) for k in reversed(kids)
                          if k["state_key"] not in seen]
        body: JsonDict = {"rooms": entries}
        if len(listed) > offset + limit:
            body["next_batch"] = (f"{offset + limit}_{int(query.suggested_only)}_"
                                  f"{query.max_depth}")
        return body


def _allowed_room_ids(join_rules: JsonDict) -> list[str]:
    allow = join_rules.get("allow")
    return [a["room_id"] for a in allow if isinstance(a, dict)
            and a.get("type") == "m.room_membership" and isinstance(a.get("room_id"), str)
            ] if isinstance(allow, list) else []


def _parse_token(query: HierarchyQuery) -> int:
    """The offset a ``from`` token stands for; 400 M_INVALID_PARAM for an unknown token or
    one made with other ``suggested_only`` / ``max_depth`` values."""
    if query.from_token is None:
        return 0
    parts = query.from_token.split("_")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise MatrixError(400, Codes.INVALID_PARAM,
                          f"Unknown pagination token {query.from_token!r}")
    offset, suggested, depth = (int(p) for p in parts)
    if suggested != int(query.suggested_only) or depth != query.max_depth:
        raise MatrixError(400, Codes.INVALID_PARAM,
                          "suggested_only and max_depth cannot change on paginated requests")
    return offset
