"""Authorization rule 10 (v6-v11: rule 9; v1-v5: rule 10): ``m.room.power_levels`` events.

https://spec.matrix.org/v1.19/rooms/v12/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v11/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v10/#authorization-rules

Numbers are v12's (see ``auth_context`` for the renumbering of older versions).
"""

from typing import Any

from edgehs.protocol.auth_context import AuthContext, is_power_level_value, is_valid_user_id
from edgehs.protocol.power_levels import as_int, creators

NAMED_LEVELS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)
LEVEL_MAPS = ("events", "notifications")


def _level_maps(ctx: AuthContext) -> tuple[str, ...]:
    """The level maps rules 10.2, 10.7 and 10.8 look at: ``notifications`` only from v6
    (``rv.limit_notifications_power_levels``)."""
    return LEVEL_MAPS if ctx.rv.limit_notifications_power_levels else ("events",)


def check_power_levels_event(ctx: AuthContext) -> None:
    """Rule 10: ``m.room.power_levels``.

    1. Any of ``users_default``, ``events_default``, ``state_default``, ``ban``, ``redact``,
       ``kick``, ``invite`` present and not an integer: reject.
    2. ``events`` or ``notifications`` present and not an object of integers: reject.
    3. ``users`` is not an object of valid user ids to integers: reject.
    4. (v12) ``users`` contains a room creator (the create event's ``sender`` or an
       ``additional_creators`` entry): reject.
    5. No previous ``m.room.power_levels`` event: allow.
    6. For each named level from 10.1 that was added, changed or removed: reject if the current
       value or the new value is higher than the ``sender``'s level.
    7. For each ``events`` / ``notifications`` entry changed or removed: reject if the current
       value is greater than the ``sender``'s level.
    8. For each ``events`` / ``notifications`` entry added or changed: reject if the new value
       is greater than the ``sender``'s level.
    9. For each ``users`` entry changed or removed, other than the ``sender``'s own: reject if
       the current value is greater than or equal to the ``sender``'s level.
    10. For each ``users`` entry added or changed: reject if the new value is greater than the
        ``sender``'s level.
    11. Otherwise allow.

    Rules 10.1 and 10.2 came with v10 (``rv.enforce_int_power_levels``); older versions accept
    integer strings, which :func:`is_power_level_value` allows for them. Before v6
    (``rv.limit_notifications_power_levels``) rules 10.7 and 10.8 look at ``events`` only.
    """
    rv, new = ctx.rv, ctx.content
    # 10.1
    for name in NAMED_LEVELS:
        if name in new and not is_power_level_value(new[name], rv):
            raise ctx.fail("10.1", f"{name} is not an integer")
    # 10.2
    for map_name in _level_maps(ctx):
        if map_name in new and not _is_level_map(new[map_name], ctx):
            raise ctx.fail("10.2", f"{map_name} is not an object with integer values")
    # 10.3
    users = new.get("users", {})
    if not _is_level_map(users, ctx) or not all(is_valid_user_id(user) for user in users):
        raise ctx.fail("10.3", "users is not an object of user ids to integers")
    # 10.4
    if rv.creators_have_infinite_power:
        listed = creators(ctx.create_event, rv) & set(users)
        if listed:
            raise ctx.fail("10.4", f"room creators cannot be in users: {sorted(listed)}")
    # 10.5
    old = ctx.power_levels
    if old is None:
        return
    sender_level = ctx.power(ctx.sender)
    # 10.6
    for name in NAMED_LEVELS:
        old_value, new_value = _level(old, name), _level(new, name)
        if old_value == new_value:
            continue
        if old_value is not None and old_value > sender_level:  # 10.6.1
            raise ctx.fail("10.6.1", f"current {name} {old_value} is above the sender's level")
        if new_value is not None and new_value > sender_level:  # 10.6.2
            raise ctx.fail("10.6.2", f"new {name} {new_value} is above the sender's level")
    for map_name in _level_maps(ctx):
        old_map, new_map = _level_map(old, map_name), _level_map(new, map_name)
        for key in old_map.keys() | new_map.keys():
            old_value, new_value = old_map.get(key), new_map.get(key)
            if old_value == new_value:
                continue
            # 10.7.1
            if old_value is not None and old_value > sender_level:
                raise ctx.fail("10.7.1", f"current {map_name}[{key!r}] is above the sender's level")
            # 10.8.1
            if new_value is not None and new_value > sender_level:
                raise ctx.fail("10.8.1", f"new {map_name}[{key!r}] is above the sender's level")
    old_users, new_users = _level_map(old, "users"), _level_map(new, "users")
    for user in old_users.keys() | new_users.keys():
        old_value, new_value = old_users.get(user), new_users.get(user)
        if old_value == new_value:
            continue
        # 10.9.1
        if user != ctx.sender and old_value is not None and old_value >= sender_level:
            raise ctx.fail("10.9.1", f"cannot change the level of {user}, at or above the sender's")
        # 10.10.1
        if new_value is not None and new_value > sender_level:
            raise ctx.fail("10.10.1", f"cannot raise {user} above the sender's level")
    # 10.11: allow


def _is_level_map(value: Any, ctx: AuthContext) -> bool:
    return isinstance(value, dict) and all(
        is_power_level_value(level, ctx.rv) for level in value.values()
    )


def _level(content: dict[str, Any], name: str) -> int | None:
    """A named level as written in ``content`` (``None`` when absent: no default applies)."""
    if name not in content:
        return None
    return as_int(content[name], 0)


def _level_map(content: dict[str, Any], name: str) -> dict[str, int]:
    value = content.get(name)
    if not isinstance(value, dict):
        return {}
    return {key: as_int(level, 0) for key, level in value.items()}
