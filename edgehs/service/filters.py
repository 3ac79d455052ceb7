"""Event filters for /sync and /messages.

https://spec.matrix.org/v1.19/client-server-api/#filtering
"""

from dataclasses import dataclass
from typing import Any

from edgehs.errors import Codes, MatrixError
from edgehs.store.account_data import FilterStore
from edgehs.types import JsonDict, StateMap

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMELINE_LIMIT = 1000


def _str_list(section: JsonDict, key: str, prefix: str = "") -> tuple[str, ...] | None:
    """A list of strings; with ``prefix`` each must start with it (the schema's ``^@`` user
    id and ``^!`` room id patterns)."""
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MatrixError(400, Codes.BAD_JSON, f"filter field {key} must be a list of strings")
    if prefix and not all(v.startswith(prefix) for v in value):
        raise MatrixError(400, Codes.BAD_JSON,
                          f"filter field {key} must list identifiers starting with {prefix!r}")
    return tuple(value)


def _bool(section: JsonDict, key: str, name: str) -> bool:
    value = section.get(key, False)
    if not isinstance(value, bool):
        raise MatrixError(400, Codes.BAD_JSON, f"{name}.{key} must be a boolean")
    return value


def _section(obj: Any, name: str) -> JsonDict:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"filter field {name} must be an object")
    return obj


def type_matches(event_type: str, patterns: tuple[str, ...]) -> bool:
    """Filter type patterns may end in '*' as a wildcard."""
    return any(
        event_type.startswith(p[:-1]) if p.endswith("*") else event_type == p for p in patterns
    )


@dataclass(frozen=True)
class EventFilter:
    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] | None = None
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] | None = None
    # RoomEventFilter fields (https://spec.matrix.org/v1.19/client-server-api/#lazy-loading-room-members)
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    # RoomEventFilter flag; on room.timeline it asks /sync for per-thread unread counts.
    unread_thread_notifications: bool = False

    @classmethod
    def parse(cls, raw: Any, name: str, room: bool = False) -> "EventFilter":
        """An EventFilter; with ``room`` a RoomEventFilter, whose extra fields are checked
        against the schema too (``rooms``/``not_rooms`` lists of room ids, the flags
        strictly boolean)."""
        section = _section(raw, name)
        if room:
            _str_list(section, "rooms", "!")
            _str_list(section, "not_rooms", "!")
            if section.get("contains_url") is not None:
                _bool(section, "contains_url", name)
        limit = section.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 0):
            raise MatrixError(400, Codes.BAD_JSON, f"{name}.limit must be a positive integer")
        return cls(
            limit=None if limit is None else min(limit, MAX_TIMELINE_LIMIT),
            types=_str_list(section, "types"),
            not_types=_str_list(section, "not_types"),
            senders=_str_list(section, "senders", "@"),
            not_senders=_str_list(section, "not_senders", "@"),
            lazy_load_members=_bool(section, "lazy_load_members", name),
            include_redundant_members=_bool(section, "include_redundant_members", name),
            unread_thread_notifications=_bool(section, "unread_thread_notifications", name),
        )

    def allows_type(self, event_type: str) -> bool:
        if self.not_types and type_matches(event_type, self.not_types):
            return False
        return self.types is None or type_matches(event_type, self.types)

    def sql_types(self) -> tuple[str, ...] | None:
        """Exact types for an SQL IN clause (None when wildcards make SQL unusable)."""
        if self.types is None or any(t.endswith("*") for t in self.types):
            return None
        return self.types


@dataclass(frozen=True)
class SyncFilter:
    timeline: EventFilter
    state: EventFilter
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    account_data: EventFilter = EventFilter()
    ephemeral: EventFilter = EventFilter()
    # "federation": events as the PDUs the server holds, not in the client format.
    federation_format: bool = False

    @classmethod
    def parse(cls, raw: Any) -> "SyncFilter":
        """The Filter schema (filter.yaml's definitions/sync_filter.yaml): anything that does
        not match it is 400 M_BAD_JSON."""
        top = _section(raw, "filter")
        room = _section(top.get("room"), "room")
        event_format = top.get("event_format", "client")
        if event_format not in ("client", "federation"):
            raise MatrixError(400, Codes.BAD_JSON, "event_format must be client or federation")
        _str_list(top, "event_fields")
        _bool(room, "include_leave", "room")
        EventFilter.parse(top.get("presence"), "presence")
        EventFilter.parse(room.get("account_data"), "room.account_data", room=True)
        return cls(
            timeline=EventFilter.parse(room.get("timeline"), "room.timeline", room=True),
            state=EventFilter.parse(room.get("state"), "room.state", room=True),
            rooms=_str_list(room, "rooms", "!"),
            not_rooms=_str_list(room, "not_rooms", "!") or (),
            include_leave=_bool(room, "include_leave", "room"),
            account_data=EventFilter.parse(top.get("account_data"), "account_data"),
            ephemeral=EventFilter.parse(room.get("ephemeral"), "room.ephemeral", room=True),
            federation_format=event_format == "federation",
        )

    @property
    def timeline_limit(self) -> int:
        limit = self.timeline.limit
        return DEFAULT_TIMELINE_LIMIT if limit is None else limit

    @property
    def unread_thread_notifications(self) -> bool:
        """https://spec.matrix.org/v1.19/client-server-api/#receiving-notifications"""
        return self.timeline.unread_thread_notifications

    @property
    def timeline_types(self) -> tuple[str, ...] | None:
        return self.timeline.sql_types()

    @property
    def timeline_not_types(self) -> tuple[str, ...] | None:
        nt = self.timeline.not_types
        return None if nt is None or any(t.endswith("*") for t in nt) else nt

    @property
    def timeline_senders(self) -> tuple[str, ...] | None:
        return self.timeline.senders

    def room_allowed(self, room_id: str) -> bool:
        return room_id not in self.not_rooms and (self.rooms is None or room_id in self.rooms)

    def account_data_allowed(self, data_type: str) -> bool:
        return self.account_data.allows_type(data_type)

    def filter_state(self, state: StateMap, timeline_senders: set[str], user_id: str) -> StateMap:
        """Apply the state filter; with lazy_load_members only the members who sent timeline
        events (and the user) are kept."""
        out = {}
        lazy = self.state.lazy_load_members
        for (etype, skey), event_id in state.items():
            if not self.state.allows_type(etype):
                continue
            if lazy and etype == "m.room.member" and skey not in timeline_senders | {user_id}:
                continue
            out[(etype, skey)] = event_id
        return out


def is_filter_id(raw: str) -> bool:
    """Filter ids are small non-negative integers (SQLite integers are at most 2**63 - 1)."""
    return raw.isdigit() and len(raw) <= 18


class FilterService:
    """Stored filters: POST and GET /user/{userId}/filter, and /sync's ``filter=<id>``.
    https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3useruseridfilter"""

    def __init__(self, store: FilterStore) -> None:
        self.store = store

    async def add(self, user_id: str, definition: JsonDict) -> str:
        """Store a filter, refused (400) now if malformed rather than at /sync time."""
        SyncFilter.parse(definition)
        return str(await self.store.add(user_id, definition))

    async def get(self, user_id: str, filter_id: str) -> JsonDict | None:
        """The user's filter of that id; None for an unknown one or a malformed id."""
        return await self.store.get(user_id, int(filter_id)) if is_filter_id(filter_id) else None
