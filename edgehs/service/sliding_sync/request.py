"""The request body of simplified sliding sync (MSC4186), parsed and checked.

https://github.com/matrix-org/matrix-spec-proposals/pull/4186

A request names ``lists`` (a sorted window over the user's rooms: ``ranges``,
``timeline_limit``, ``required_state``, ``filters``) and ``room_subscriptions`` (rooms the
client wants whatever their place in a list), plus ``extensions``. Nothing is sticky: clients
send every parameter with every request. Malformed input is 400 M_INVALID_PARAM (wrong types or
values) or M_BAD_JSON (a section that is not an object).
"""

from dataclasses import dataclass, field
from typing import Any

from edgehs.errors import Codes, MatrixError
from edgehs.types import JsonDict

MAX_TIMELINE_LIMIT = 1000
MAX_LISTS = 100
MAX_RANGE_END = 1_000_000
WILDCARD = "*"
LAZY = "$LAZY"
ME = "$ME"


@dataclass(frozen=True)
class RequiredState:
    """``required_state``: (type, state_key) pairs; ``*`` matches anything, ``$ME`` is the
    requester and ``["m.room.member", "$LAZY"]`` the senders of the timeline events."""

    pairs: tuple[tuple[str, str], ...] = ()

    @property
    def lazy_members(self) -> bool:
        return ("m.room.member", LAZY) in self.pairs

    def merge(self, other: "RequiredState") -> "RequiredState":
        return RequiredState(tuple(dict.fromkeys(self.pairs + other.pairs)))

    def wants(self, key: tuple[str, str], user_id: str, lazy_users: set[str]) -> bool:
        etype, skey = key
        for want_type, want_key in self.pairs:
            if want_type not in (etype, WILDCARD):
                continue
            if want_key in (WILDCARD, skey):
                return True
            if want_key == ME and skey == user_id:
                return True
            if want_key == LAZY and etype == "m.room.member" and skey in lazy_users:
                return True
        return False


@dataclass(frozen=True)
class RoomConfig:
    """What the client wants of one room: the merge of every list and subscription naming it."""

    timeline_limit: int
    required_state: RequiredState

    def merge(self, other: "RoomConfig") -> "RoomConfig":
        return RoomConfig(max(self.timeline_limit, other.timeline_limit),
                          self.required_state.merge(other.required_state))


@dataclass(frozen=True)
class ListFilters:
    is_dm: bool | None = None
    is_invite: bool | None = None
    is_encrypted: bool | None = None
    is_tombstoned: bool | None = None
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] = ()
    spaces: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListConfig:
    ranges: tuple[tuple[int, int], ...]
    room: RoomConfig
    filters: ListFilters


@dataclass(frozen=True)
class ExtensionConfig:
    enabled: bool = False
    lists: tuple[str, ...] | None = None  # None: every list (``*``)
    rooms: tuple[str, ...] | None = None  # None: every room (``*``)
    since: str | None = None  # to_device
    limit: int = 100  # to_device

    def covers(self, room_id: str, in_lists: set[str], subscribed: bool) -> bool:
        """Whether this extension reports on a room that is in ``in_lists`` (list names)
        and/or ``subscribed`` (a room subscription); ``*`` or no value means every one."""
        by_list = bool(in_lists) if self.lists is None else bool(in_lists & set(self.lists))
        by_room = subscribed if self.rooms is None else room_id in self.rooms
        return by_list or by_room


@dataclass(frozen=True)
class SlidingSyncRequest:
    conn_id: str = ""
    lists: dict[str, ListConfig] = field(default_factory=dict)
    subscriptions: dict[str, RoomConfig] = field(default_factory=dict)
    extensions: dict[str, ExtensionConfig] = field(default_factory=dict)
    txn_id: str | None = None
    unsubscribe: tuple[str, ...] = ()  # ``unsubscribe_rooms`` (matrix-js-sdk)

    def extension(self, name: str) -> ExtensionConfig:
        return self.extensions.get(name, ExtensionConfig())


def _bad(msg: str) -> MatrixError:
    return MatrixError(400, Codes.INVALID_PARAM, msg)


def _obj(value: Any, where: str) -> JsonDict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{where} must be an object")
    return value


def _int(value: Any, where: str, default: int, maximum: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(f"{where} must be a non-negative integer")
    return min(value, maximum)


def _opt_bool(value: Any, where: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise _bad(f"{where} must be true or false")
    return value


def _strings(value: Any, where: str, nullable: bool = False) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, str) or (nullable and v is None) for v in value
    ):
        raise _bad(f"{where} must be a list of strings")
    return tuple(value)


def _required_state(value: Any, where: str) -> RequiredState:
    if value is None:
        return RequiredState()
    if not isinstance(value, list):
        raise _bad(f"{where}.required_state must be a list of [type, state_key] pairs")
    pairs = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2
                or not all(isinstance(x, str) for x in item)):
            raise _bad(f"{where}.required_state entries must be [type, state_key] pairs")
        pairs.append((item[0], item[1]))
    return RequiredState(tuple(dict.fromkeys(pairs)))


def _room_config(raw: JsonDict, where: str) -> RoomConfig:
    limit = _int(raw.get("timeline_limit"), f"{where}.timeline_limit", 0, MAX_TIMELINE_LIMIT)
    return RoomConfig(limit, _required_state(raw.get("required_state"), where))


def _ranges(value: Any, where: str) -> tuple[tuple[int, int], ...]:
    if value is None:
        return ((0, MAX_RANGE_END),)  # no ranges: the whole list (as Synapse does)
    if not isinstance(value, list):
        raise _bad(f"{where}.ranges must be a list of [start, end] pairs")
    out = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                           for x in item) or item[0] > item[1]):
            raise _bad(f"{where}.ranges entries must be [start, end] with 0 <= start <= end")
        out.append((int(item[0]), min(int(item[1]), MAX_RANGE_END)))
    return tuple(out)


def _filters(raw: JsonDict, where: str) -> ListFilters:
    w = f"{where}.filters"
    not_room_types = _strings(raw.get("not_room_types"), f"{w}.not_room_types", True) or ()
    return ListFilters(
        is_dm=_opt_bool(raw.get("is_dm"), f"{w}.is_dm"),
        is_invite=_opt_bool(raw.get("is_invite"), f"{w}.is_invite"),
        is_encrypted=_opt_bool(raw.get("is_encrypted"), f"{w}.is_encrypted"),
        is_tombstoned=_opt_bool(raw.get("is_tombstoned"), f"{w}.is_tombstoned"),
        room_types=_strings(raw.get("room_types"), f"{w}.room_types", True),
        not_room_types=not_room_types,
        spaces=_strings(raw.get("spaces"), f"{w}.spaces"),
        tags=_strings(raw.get("tags"), f"{w}.tags"),
        not_tags=_strings(raw.get("not_tags"), f"{w}.not_tags") or (),
    )


def _extension(name: str, raw: Any) -> ExtensionConfig:
    body = _obj(raw, f"extensions.{name}")
    where = f"extensions.{name}"
    since = body.get("since")
    if since is not None and not isinstance(since, str):
        raise _bad(f"{where}.since must be a string")
    lists = _strings(body.get("lists"), f"{where}.lists")
    rooms = _strings(body.get("rooms"), f"{where}.rooms")
    return ExtensionConfig(
        enabled=bool(_opt_bool(body.get("enabled"), f"{where}.enabled")),
        lists=None if lists is None or WILDCARD in lists else lists,
        rooms=None if rooms is None or WILDCARD in rooms else rooms,
        since=since,
        limit=max(1, _int(body.get("limit"), f"{where}.limit", 100, 1000)),
    )


def parse_request(body: JsonDict) -> SlidingSyncRequest:
    """The request body as a :class:`SlidingSyncRequest`, or a 400 MatrixError."""
    conn_id = body.get("conn_id")
    if conn_id is not None and not isinstance(conn_id, str):
        raise _bad("conn_id must be a string")
    raw_lists = _obj(body.get("lists"), "lists")
    if len(raw_lists) > MAX_LISTS:
        raise _bad(f"At most {MAX_LISTS} lists")
    lists = {}
    for name, raw in raw_lists.items():
        where = f"lists.{name}"
        item = _obj(raw, where)
        lists[name] = ListConfig(_ranges(item.get("ranges"), where), _room_config(item, where),
                                 _filters(_obj(item.get("filters"), f"{where}.filters"), where))
    subscriptions = {}
    for room_id, raw in _obj(body.get("room_subscriptions"), "room_subscriptions").items():
        if not room_id.startswith("!"):
            raise _bad(f"room_subscriptions key {room_id!r} is not a room id")
        subscriptions[room_id] = _room_config(_obj(raw, f"room_subscriptions.{room_id}"),
                                              f"room_subscriptions.{room_id}")
    extensions = {name: _extension(name, raw)
                  for name, raw in _obj(body.get("extensions"), "extensions").items()}
    txn_id = body.get("txn_id")
    unsubscribe = _strings(body.get("unsubscribe_rooms"), "unsubscribe_rooms") or ()
    return SlidingSyncRequest(conn_id or "", lists, subscriptions, extensions,
                              txn_id if isinstance(txn_id, str) else None, unsubscribe)
