"""Room creation and membership changes.

https://spec.matrix.org/v1.19/client-server-api/#creation
https://spec.matrix.org/v1.19/client-server-api/#room-membership
"""

import copy
from typing import Any

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.room_versions import get_room_version
from edgehs.service.events import EventService
from edgehs.store.rooms import MemberStore, RoomStore
from edgehs.store.users import UserStore
from edgehs.types import JsonDict

PRESETS: dict[str, dict[str, str]] = {
    "private_chat": {"join_rule": "invite", "history": "shared", "guest": "can_join"},
    "trusted_private_chat": {"join_rule": "invite", "history": "shared", "guest": "can_join"},
    "public_chat": {"join_rule": "public", "history": "shared", "guest": "forbidden"},
}

DEFAULT_EVENT_LEVELS = {
    "m.room.name": 50,
    "m.room.power_levels": 100,
    "m.room.history_visibility": 100,
    "m.room.canonical_alias": 50,
    "m.room.avatar": 50,
    "m.room.tombstone": 100,
    "m.room.server_acl": 100,
    "m.room.encryption": 100,
}


class RoomService:
    def __init__(
        self, server_name: str, events: EventService, rooms: RoomStore, members: MemberStore,
        users: UserStore, default_room_version: str,
    ) -> None:
        self.server_name = server_name
        self.events = events
        self.rooms = rooms
        self.members = members
        self.users = users
        self.default_room_version = default_room_version

    async def create_room(self, creator: str, body: JsonDict) -> tuple[str, str | None]:
        """Create a room as described by a /createRoom body: (room_id, alias or None)."""
        rv = get_room_version(str(body.get("room_version", self.default_room_version)))
        visibility = body.get("visibility", "private")
        preset_name = body.get("preset") or (
            "public_chat" if visibility == "public" else "private_chat"
        )
        if preset_name not in PRESETS:
            raise MatrixError(400, Codes.BAD_JSON, f"Unknown preset {preset_name!r}")
        preset = PRESETS[preset_name]
        alias = None
        if body.get("room_alias_name") is not None:
            alias = f"#{body['room_alias_name']}:{self.server_name}"
            validate_alias(alias, self.server_name)
            if await self.rooms.get_alias(alias) is not None:
                raise MatrixError(400, Codes.ROOM_IN_USE, f"Room alias {alias} is already in use")
        invites = [str(u) for u in body.get("invite", [])]
        for user_id in invites:
            validate_user_id(user_id)

        creation = dict(body.get("creation_content") or {})
        creation["room_version"] = rv.identifier
        if not rv.implicit_room_creator:
            creation["creator"] = creator
        room_id = await self.events.create_room_event(creator, creation, rv)
        send = self.events.send

        await send(room_id, creator, "m.room.member", await self.member_content(creator, "join"),
                   creator)
        power = self._power_levels(creator, invites, preset_name, rv.creators_have_infinite_power)
        override = body.get("power_level_content_override")
        if override:
            power.update(copy.deepcopy(override))
        await send(room_id, creator, "m.room.power_levels", power, "")
        if alias is not None:
            await send(room_id, creator, "m.room.canonical_alias", {"alias": alias}, "")
        initial = {(e["type"], e.get("state_key", "")): e["content"]
                   for e in body.get("initial_state", [])}
        for etype, key, content in (
            ("m.room.join_rules", "", {"join_rule": preset["join_rule"]}),
            ("m.room.history_visibility", "", {"history_visibility": preset["history"]}),
            ("m.room.guest_access", "", {"guest_access": preset["guest"]}),
        ):
            if (etype, key) not in initial:
                await send(room_id, creator, etype, content, key)
        for (etype, key), content in initial.items():
            await send(room_id, creator, etype, content, key)
        if body.get("name") is not None:
            await send(room_id, creator, "m.room.name", {"name": body["name"]}, "")
        if body.get("topic") is not None:
            await send(room_id, creator, "m.room.topic", {"topic": body["topic"]}, "")
        if alias is not None:
            await self.rooms.create_alias(alias, room_id, creator)
        if visibility == "public":
            await self.rooms.set_visibility(room_id, True)
        for user_id in invites:
            extra = {"is_direct": True} if body.get("is_direct") else {}
            await self.change_membership(room_id, creator, user_id, "invite", extra=extra)
        return room_id, alias

    def _power_levels(
        self, creator: str, invites: list[str], preset: str, creators_infinite: bool
    ) -> JsonDict:
        users: dict[str, int] = {} if creators_infinite else {creator: 100}
        if preset == "trusted_private_chat":
            users.update({u: 100 for u in invites})
        return {
            "users": users,
            "users_default": 0,
            "events": dict(DEFAULT_EVENT_LEVELS),
            "events_default": 0,
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": 50 if preset == "public_chat" else 0,
            "notifications": {"room": 50},
        }

    async def member_content(self, user_id: str, membership: str, **extra: Any) -> JsonDict:
        content: JsonDict = {"membership": membership, **extra}
        if membership == "join":
            profile = await self.users.get_profile(user_id)
            if profile is not None:
                if profile[0] is not None:
                    content["displayname"] = profile[0]
                if profile[1] is not None:
                    content["avatar_url"] = profile[1]
        return content

    async def resolve_room(self, room_id_or_alias: str) -> str:
        """A room id from an id or a local alias (M_NOT_FOUND otherwise)."""
        if room_id_or_alias.startswith("#"):
            found = await self.rooms.get_alias(room_id_or_alias)
            if found is None:
                raise MatrixError(404, Codes.NOT_FOUND, f"Room alias {room_id_or_alias} not found")
            return found[0]
        if not room_id_or_alias.startswith("!"):
            raise MatrixError(400, Codes.INVALID_PARAM, "Expected a room id or alias")
        if await self.rooms.get_room_version_id(room_id_or_alias) is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Unknown room {room_id_or_alias}")
        return room_id_or_alias

    async def join(self, room_id: str, user_id: str, reason: str | None = None) -> str:
        extra = {"reason": reason} if reason else {}
        content = await self.member_content(user_id, "join", **extra)
        await self.events.send(room_id, user_id, "m.room.member", content, user_id)
        return room_id

    async def change_membership(
        self, room_id: str, sender: str, target: str, membership: str,
        reason: str | None = None, extra: JsonDict | None = None,
    ) -> str:
        """invite / leave / ban / kick (= leave of another user) / unban (= leave)."""
        validate_user_id(target)
        await self.events.room_version(room_id)  # 404 for unknown rooms
        content: JsonDict = {"membership": membership, **(extra or {})}
        if reason:
            content["reason"] = reason
        if membership == "invite":
            current = await self.members.get_membership(room_id, target)
            if current is not None and current[0] in ("join", "ban"):
                raise MatrixError(403, Codes.FORBIDDEN, f"{target} is already {current[0]} here")
            profile = await self.users.get_profile(target)
            if profile is not None and profile[0]:
                content["displayname"] = profile[0]
        stored = await self.events.send(room_id, sender, "m.room.member", content, target)
        return stored.event_id


def validate_user_id(user_id: str) -> None:
    if not (isinstance(user_id, str) and user_id.startswith("@") and ":" in user_id):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{user_id!r} is not a user id")


def validate_alias(alias: str, server_name: str) -> None:
    if not alias.startswith("#") or ":" not in alias or len(alias) > 255 or " " in alias:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{alias!r} is not a valid room alias")
    if alias.split(":", 1)[1] != server_name:
        raise MatrixError(400, Codes.INVALID_PARAM, "Aliases must be on this server")
