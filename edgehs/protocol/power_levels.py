"""Power levels: who may do what, with the spec's defaults filled in.

https://spec.matrix.org/v1.19/client-server-api/#mroompower_levels
https://spec.matrix.org/v1.19/rooms/v12/#authorization-rules (room creators, v12)

Used by the authorization rules (``event_auth``), state resolution (``state_res``) and the
service layer, so that "what is Bob's level" has exactly one answer. Every function is pure and
takes event *content* dicts (or ``None`` when the room has no ``m.room.power_levels`` event);
values are read leniently here, the auth rules are where malformed power levels are rejected.
"""

from collections.abc import Mapping
from typing import Any

from edgehs.protocol.room_versions import RoomVersion
from edgehs.types import JsonDict, StateKey

POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
CREATE_KEY: StateKey = ("m.room.create", "")

# Defaults from the m.room.power_levels schema; they hold whether or not the room has a power
# levels event, except for `state_default` and the creator's level (see below).
DEFAULT_INVITE_LEVEL = 0
DEFAULT_KICK_LEVEL = 50
DEFAULT_BAN_LEVEL = 50
DEFAULT_REDACT_LEVEL = 50
DEFAULT_USERS_DEFAULT = 0
DEFAULT_EVENTS_DEFAULT = 0
# `state_default` is 50 when a power levels event exists but omits it, 0 when there is none.
DEFAULT_STATE_DEFAULT = 50
DEFAULT_STATE_DEFAULT_WITHOUT_POWER_LEVELS = 0
# Without a power levels event the room creator(s) have 100 and everyone else 0 (pre-v12;
# in v12 creators are infinite anyway).
CREATOR_LEVEL_WITHOUT_POWER_LEVELS = 100
# v12: "The power level of room creators is infinitely high."
INFINITE_POWER = float("inf")

NAMED_LEVEL_DEFAULTS: dict[str, int] = {
    "invite": DEFAULT_INVITE_LEVEL,
    "kick": DEFAULT_KICK_LEVEL,
    "ban": DEFAULT_BAN_LEVEL,
    "redact": DEFAULT_REDACT_LEVEL,
}


def as_int(value: Any, default: int) -> int:
    """``value`` as a power level, or ``default`` when it is missing or not a level.

    Accepts integers and, for the sake of events from older room versions, integer strings
    ("stringy power levels"); booleans are not levels. v10+ rejects non-integers in the auth
    rules, so for accepted events the lenient path never matters.
    """
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in ("+", "-") else text
        if digits.isdigit():
            return int(text)
    return default


def get_power_levels_content(auth_events: Mapping[StateKey, JsonDict]) -> JsonDict | None:
    """The ``content`` of the ``m.room.power_levels`` event in ``auth_events``, if any."""
    event = auth_events.get(POWER_LEVELS_KEY)
    if event is None:
        return None
    content = event.get("content")
    return content if isinstance(content, dict) else {}


def creators(create_event: JsonDict, rv: RoomVersion) -> set[str]:
    """The room creator(s).

    - v10: ``content.creator`` of the create event.
    - v11: the create event's ``sender`` (``rv.implicit_room_creator``).
    - v12: the ``sender`` plus ``content.additional_creators`` (``rv.creators_have_infinite_power``;
      https://spec.matrix.org/v1.19/rooms/v12/#authorization-rules).
    """
    content = create_event.get("content")
    if not isinstance(content, dict):
        content = {}
    found: set[str] = set()
    if rv.implicit_room_creator:
        sender = create_event.get("sender")
        if isinstance(sender, str):
            found.add(sender)
    else:
        creator = content.get("creator")
        if isinstance(creator, str):
            found.add(creator)
    if rv.creators_have_infinite_power:
        additional = content.get("additional_creators")
        if isinstance(additional, list):
            found.update(user for user in additional if isinstance(user, str))
    return found


def user_power_level(
    user_id: str,
    power_levels: JsonDict | None,
    create_event: JsonDict,
    rv: RoomVersion,
) -> int | float:
    """The power level of ``user_id``: ``users[user_id]``, else ``users_default``.

    v12 creators are ``float("inf")``. Without a power levels event the creator(s) have 100 and
    everyone else 0.
    """
    room_creators = creators(create_event, rv)
    if rv.creators_have_infinite_power and user_id in room_creators:
        return INFINITE_POWER
    if power_levels is None:
        return CREATOR_LEVEL_WITHOUT_POWER_LEVELS if user_id in room_creators else 0
    users_default = as_int(power_levels.get("users_default"), DEFAULT_USERS_DEFAULT)
    users = power_levels.get("users")
    if isinstance(users, dict) and user_id in users:
        return as_int(users[user_id], users_default)
    return users_default


def event_power_level(event_type: str, state_key: str | None, power_levels: JsonDict | None) -> int:
    """The level needed to send an event of ``event_type`` (state if ``state_key`` is not None).

    ``events[event_type]`` if present, else ``state_default`` for state events and
    ``events_default`` for the rest, with the spec's defaults.
    """
    if power_levels is None:
        if state_key is not None:
            return DEFAULT_STATE_DEFAULT_WITHOUT_POWER_LEVELS
        return DEFAULT_EVENTS_DEFAULT
    if state_key is not None:
        default = as_int(power_levels.get("state_default"), DEFAULT_STATE_DEFAULT)
    else:
        default = as_int(power_levels.get("events_default"), DEFAULT_EVENTS_DEFAULT)
    events = power_levels.get("events")
    if isinstance(events, dict) and event_type in events:
        return as_int(events[event_type], default)
    return default


def named_power_level(name: str, power_levels: JsonDict | None) -> int:
    """One of the named levels ``invite``, ``kick``, ``ban``, ``redact``, with its default."""
    default = NAMED_LEVEL_DEFAULTS[name]
    if power_levels is None:
        return default
    return as_int(power_levels.get(name), default)


def has_redact_power(
    user_id: str, power_levels: JsonDict | None, create_event: JsonDict, rv: RoomVersion
) -> bool:
    """Whether ``user_id`` may redact other users' events: their level is at least ``redact``.

    https://spec.matrix.org/v1.19/rooms/v11/#handling-redactions
    """
    return user_power_level(user_id, power_levels, create_event, rv) >= named_power_level(
        "redact", power_levels)


def notification_power_level(key: str, power_levels: JsonDict | None) -> int:
    """The level needed to trigger a notification of ``key`` (only ``room`` is specified, 50)."""
    if power_levels is None:
        return 50
    notifications = power_levels.get("notifications")
    if isinstance(notifications, dict):
        return as_int(notifications.get(key), 50)
    return 50


# The power levels content keys holding one level, and those holding a map of levels.
_NAMED_LEVEL_KEYS = ("users_default", "events_default", "state_default", "ban", "redact", "kick",
                     "invite")
_LEVEL_MAP_KEYS = ("users", "events", "notifications")


def with_integer_levels(content: JsonDict) -> JsonDict:
    """A copy of power levels ``content`` with integer strings (allowed before room version
    10) turned into integers, as v10+ rooms require (``rv.enforce_int_power_levels``): used
    when a room is upgraded. Other values are left for the authorization rules to judge."""
    out = dict(content)
    for key in _NAMED_LEVEL_KEYS:
        if key in out:
            out[key] = _integer_string_as_int(out[key])
    for key in _LEVEL_MAP_KEYS:
        levels = out.get(key)
        if isinstance(levels, dict):
            out[key] = {name: _integer_string_as_int(level) for name, level in levels.items()}
    return out


def _integer_string_as_int(level: Any) -> Any:
    """An integer string (``"50"``, ``" -1"``) as its integer; any other value unchanged."""
    if isinstance(level, str):
        text = level.strip()
        digits = text[1:] if text[:1] in ("+", "-") else text
        if digits.isdigit():
            return int(text)
    return level
