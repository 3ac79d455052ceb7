"""Room upgrades: POST /rooms/{roomId}/upgrade.

https://spec.matrix.org/v1.19/client-server-api/#room-upgrades
https://spec.matrix.org/v1.19/client-server-api/#server-behaviour-19

The steps of the spec's server behaviour:

1. check that the user may send ``m.room.tombstone`` in the old room (403 M_FORBIDDEN);
2. create the replacement room, its create event with ``predecessor`` (and the old room's
   ``type``; v12: the user and ``additional_creators`` are the creators, with infinite power and
   so never in the power levels' ``users``);
3. copy the transferable state (server ACL, encryption, name, avatar, topic, guest access,
   history visibility, join rules, power levels; the canonical alias, the space children of a
   space, and bans, as Synapse does); the user's level is raised in a first power levels event
   while the state is sent (older target versions), the copied one comes last;
4. move the local aliases and the published directory entry, in the new room's own transaction;
5. send the tombstone in the old room;
6. restrict the old room: ``events_default`` and ``invite`` raised to the greater of 50 and
   ``users_default + 1``; its canonical alias is cleared.

Everything goes through the write path (``EventService``); steps 5-6 happen after the new room
exists, in separate events, as on every server: a failure there leaves a usable new room.
"""

import asyncio
import contextlib
import copy
from collections.abc import Awaitable, Callable

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.auth_context import is_valid_user_id
from edgehs.protocol.power_levels import (
    as_int,
    creators,
    event_power_level,
    user_power_level,
    with_integer_levels,
)
from edgehs.protocol.room_versions import RoomVersion, get_room_version
from edgehs.service.events import EventService
from edgehs.service.rooms import RoomService
from edgehs.store.events import EventStore
from edgehs.store.room_upgrades import move_room_listing
from edgehs.store.rooms import MemberStore
from edgehs.store.state import StateStore
from edgehs.types import JsonDict

# Copied in this order (the spec's recommended list, then what Synapse also copies).
TRANSFERABLE = ("m.room.join_rules", "m.room.name", "m.room.topic", "m.room.history_visibility",
                "m.room.guest_access", "m.room.avatar", "m.room.encryption",
                "m.room.server_acl", "m.room.canonical_alias")
POWER_LEVELS = "m.room.power_levels"
RESTRICTED_LEVEL = 50
MAX_LEVEL = 100


class UpgradeService:
    def __init__(self, events: EventService, event_store: EventStore, state: StateStore,
                 members: MemberStore, rooms: RoomService) -> None:
        self.events = events
        self.event_store = event_store
        self.state = state
        self.members = members
        self.rooms = rooms
        self._locks: dict[str, asyncio.Lock] = {}

    async def upgrade(self, user_id: str, room_id: str, new_version: str,
                      additional_creators: list[str] | None = None) -> str:
        """Upgrade ``room_id`` to ``new_version``; returns the replacement room's id."""
        new_rv = get_room_version(new_version)  # 400 M_UNSUPPORTED_ROOM_VERSION
        for creator in additional_creators or []:
            if not is_valid_user_id(creator):
                raise MatrixError(400, Codes.INVALID_PARAM,
                                  f"additional_creators: {creator!r} is not a user id")
        membership = await self.members.get_membership(room_id, user_id)
        if membership is None or membership[0] != "join":
            raise MatrixError(403, Codes.FORBIDDEN, "You are not in this room")
        async with self._locks.setdefault(room_id, asyncio.Lock()):
            return await self._upgrade(user_id, room_id, new_rv, additional_creators or [])

    async def _upgrade(self, user_id: str, room_id: str, new_rv: RoomVersion,
                       additional_creators: list[str]) -> str:
        old_rv = await self.events.room_version(room_id)
        ids = await self.state.get_current_state_ids(room_id)
        loaded = await self.event_store.get_events(ids.values())
        state = {k: loaded[e].pdu for k, e in ids.items() if e in loaded}
        create = state[("m.room.create", "")]
        power = state.get((POWER_LEVELS, ""), {}).get("content")
        # 1. the power to send a tombstone
        if user_power_level(user_id, power, create, old_rv) < event_power_level(
                "m.room.tombstone", "", power):
            raise MatrixError(403, Codes.FORBIDDEN,
                              "You need the power to send m.room.tombstone to upgrade the room")
        # 2. the create event
        latest = await self.event_store.get_forward_extremities(room_id)
        predecessor: JsonDict = {"room_id": room_id}
        if latest:
            predecessor["event_id"] = latest[0]
        creation: JsonDict = {"room_version": new_rv.identifier, "predecessor": predecessor}
        if isinstance(create["content"].get("type"), str):
            creation["type"] = create["content"]["type"]
        if not new_rv.implicit_room_creator:
            creation["creator"] = user_id
        extra_creators = sorted(set(additional_creators) - {user_id})
        if new_rv.creators_have_infinite_power and extra_creators:
            creation["additional_creators"] = extra_creators
        # 3. the state: power levels, the transferable events, space children, bans
        final_power = self._new_power_levels(power, user_id, create, old_rv, new_rv,
                                             {user_id, *extra_creators})
        initial: list[tuple[str, str, JsonDict]] = [
            ("m.room.member", user_id, await self.rooms.member_content(user_id, "join")),
        ]
        boosted = self._boosted(final_power, user_id, new_rv)
        initial.append((POWER_LEVELS, "", boosted or final_power))
        for etype in TRANSFERABLE:
            event = state.get((etype, ""))
            if event is not None and event.get("content"):
                initial.append((etype, "", copy.deepcopy(event["content"])))
        for (etype, key), event in sorted(state.items()):
            content = event.get("content") or {}
            if etype == "m.space.child" and content.get("via"):
                initial.append((etype, key, copy.deepcopy(content)))
            elif etype == "m.room.member" and content.get("membership") == "ban":
                initial.append((etype, key, {"membership": "ban"}))
        if boosted is not None:
            initial.append((POWER_LEVELS, "", final_power))

        def listing(new_room: str) -> Callable[[aiosqlite.Connection], Awaitable[None]]:
            async def run(conn: aiosqlite.Connection) -> None:
                # 4. aliases and the directory entry, with the new room's events
                await move_room_listing(conn, room_id, new_room)
            return run

        new_room = await self.events.create_room(user_id, creation, new_rv, initial, listing)
        # 5. the tombstone
        await self.events.send(room_id, user_id, "m.room.tombstone", {
            "body": "This room has been replaced", "replacement_room": new_room}, "")
        # 6. restrict the old room (best effort: the user may lack the power to change it)
        await self._restrict_old_room(room_id, user_id, power,
                                      state.get(("m.room.canonical_alias", "")))
        await self.rooms.newly_joined(new_room, user_id)  # joined through the creation
        return new_room

    def _new_power_levels(self, power: JsonDict | None, user_id: str, create: JsonDict,
                          old_rv: RoomVersion, new_rv: RoomVersion,
                          new_creators: set[str]) -> JsonDict:
        """The old room's power levels for the new room: the new v12 creators leave ``users``;
        the old room's (infinitely powerful) v12 creators who are not creators of the new room
        keep 100. Integer strings (before v10) become integers for a v10+ room."""
        content: JsonDict = copy.deepcopy(power) if isinstance(power, dict) else {}
        users = content.get("users")
        users = dict(users) if isinstance(users, dict) else {}
        if old_rv.creators_have_infinite_power:
            for creator in creators(create, old_rv):
                users[creator] = MAX_LEVEL
        if new_rv.creators_have_infinite_power:
            users = {u: v for u, v in users.items() if u not in new_creators}
        content["users"] = users
        if new_rv.enforce_int_power_levels and not old_rv.enforce_int_power_levels:
            content = with_integer_levels(content)
        return content

    def _boosted(self, final: JsonDict, user_id: str, new_rv: RoomVersion) -> JsonDict | None:
        """A first power levels event in which the user can send every copied event (None when
        they already can, or are a creator with infinite power)."""
        if new_rv.creators_have_infinite_power:
            return None
        needed = max([MAX_LEVEL, as_int(final.get("state_default"), 50),
                      as_int(final.get("ban"), 50),
                      *[as_int(v, 0) for v in (final.get("events") or {}).values()]])
        users = final.get("users") or {}
        if as_int(users.get(user_id), as_int(final.get("users_default"), 0)) >= needed:
            return None
        return {**final, "users": {**users, user_id: needed}}

    async def _restrict_old_room(self, room_id: str, user_id: str, power: JsonDict | None,
                                 canonical_alias: JsonDict | None) -> None:
        content: JsonDict = copy.deepcopy(power) if isinstance(power, dict) else {}
        floor = max(RESTRICTED_LEVEL, as_int(content.get("users_default"), 0) + 1)
        changed = False
        for key, default in (("events_default", 0), ("invite", 0)):
            if as_int(content.get(key), default) < floor:
                content[key] = floor
                changed = True
        with contextlib.suppress(MatrixError):
            if changed:
                await self.events.send(room_id, user_id, POWER_LEVELS, content, "")
        if canonical_alias is not None and canonical_alias.get("content"):
            with contextlib.suppress(MatrixError):
                await self.events.send(room_id, user_id, "m.room.canonical_alias", {}, "")
