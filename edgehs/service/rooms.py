"""Room creation and membership changes.

https://spec.matrix.org/v1.19/client-server-api/#creation
https://spec.matrix.org/v1.19/client-server-api/#room-membership
"""

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from edgehs.service.appservice.queries import AppServiceQueries
from edgehs.service.events import Check, EventService
from edgehs.service.guests import GuestService
from edgehs.store.events import EventStore
from edgehs.store.rooms import MemberStore, RoomStore, insert_alias, set_room_visibility
from edgehs.store.users import UserStore
from edgehs.types import JsonDict, StateMap

PRESETS: dict[str, dict[str, str]] = {
    "private_chat": {"join_rule": "invite", "history": "shared", "guest": "can_join"},
    "trusted_private_chat": {"join_rule": "invite", "history": "shared", "guest": "can_join"},
    "public_chat": {"join_rule": "public", "history": "shared", "guest": "forbidden"},
}

# Member event keys a client never sets: the server adds them after its own checks (a restricted
# join's authorising user, a third-party invite's signed block).
SERVER_SET_MEMBER_KEYS = frozenset({"join_authorised_via_users_server", "third_party_invite",
                                    "third_party_signed"})

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
        # Asks application services about unknown aliases and users (set by homeserver.py).
        self.as_queries: AppServiceQueries | None = None
        # Guest accounts' rules about rooms (set by homeserver.py).
        self.guests: GuestService | None = None
        # (room_id, user_id) after a local user newly joined a room (set by homeserver.py).
        self.join_hooks: list[Callable[[str, str], Awaitable[None]]] = []

    def room_versions_capability(self) -> JsonDict:
        """The ``m.room_versions`` capability: the version of new rooms and every supported one.

        https://spec.matrix.org/v1.19/client-server-api/#mroom_versions-capability"""
        return {"default": self.default_room_version,
                "available": {v: "stable" for v in KNOWN_ROOM_VERSIONS}}

    async def create_room(self, creator: str, body: JsonDict,
                          appservice_id: str | None = None) -> tuple[str, str | None]:
        """Create a room as described by a /createRoom body: (room_id, alias or None).
        Everything (events, alias, directory entry) is stored in one transaction, or nothing.
        ``room_alias_name`` in an application service's exclusive namespace is refused (400
        M_EXCLUSIVE) unless the request comes from that service (``appservice_id``).

        https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3createroom"""
        rv = get_room_version(str(body.get("room_version") or self.default_room_version))
        visibility = body.get("visibility") or "private"
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
            if self.as_queries is not None:
                self.as_queries.registry.check_alias_claim(alias, creator, appservice_id)
            if await self.rooms.get_alias(alias) is not None:
                raise MatrixError(400, Codes.ROOM_IN_USE, f"Room alias {alias} is already in use")
        invites = [str(u) for u in body.get("invite") or []]
        for user_id in invites:
            validate_user_id(user_id)

        creation = dict(body.get("creation_content") or {})
        creation["room_version"] = rv.identifier
        if not rv.implicit_room_creator:
            creation["creator"] = creator
        # The order of https://spec.matrix.org/v1.19/client-server-api/#creation steps 2-9.
        events: list[tuple[str, str, JsonDict]] = [
            ("m.room.member", creator, await self.member_content(creator, "join")),
        ]
        power = self._power_levels(creator, invites, preset_name, rv.creators_have_infinite_power)
        power.update(copy.deepcopy(body.get("power_level_content_override") or {}))
        events.append(("m.room.power_levels", "", power))
        if alias is not None:
            events.append(("m.room.canonical_alias", "", {"alias": alias}))
        initial = {(e["type"], e.get("state_key", "")): e["content"]
                   for e in body.get("initial_state") or []}
        for etype, key, content in (
            ("m.room.join_rules", "", {"join_rule": preset["join_rule"]}),
            ("m.room.history_visibility", "", {"history_visibility": preset["history"]}),
            ("m.room.guest_access", "", {"guest_access": preset["guest"]}),
        ):
            if (etype, key) not in initial:
                events.append((etype, key, content))
        events += [(etype, key, content) for (etype, key), content in initial.items()]
        if body.get("name") is not None:
            events.append(("m.room.name", "", {"name": body["name"]}))
        if body.get("topic") is not None:
            events.append(("m.room.topic", "", {"topic": body["topic"]}))
        for user_id in invites:
            extra: JsonDict = {"is_direct": True} if body.get("is_direct") else {}
            await self.ask_appservices_user(user_id)
            profile = await self.users.get_profile(user_id)
            if profile is not None and profile[0]:
                extra["displayname"] = profile[0]
            events.append(("m.room.member", user_id, {"membership": "invite", **extra}))

        def directory_rows(room_id: str) -> Callable[[aiosqlite.Connection], Awaitable[None]]:
            async def run(conn: aiosqlite.Connection) -> None:
                if alias is not None and not await insert_alias(conn, alias, room_id, creator):
                    raise MatrixError(400, Codes.ROOM_IN_USE, f"Room alias {alias} is in use")
                if visibility == "public":
                    await set_room_visibility(conn, room_id, True)
            return run

        room_id = await self.events.create_room(creator, creation, rv, events, directory_rows)
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
        """A member event's content: ``extra`` (a request's own keys, without those only the
        server may set), then the profile's displayname and avatar_url where ``extra`` gives
        none for a join or a knock (a knock shows the admins who is at the door)."""
        content: JsonDict = {k: v for k, v in extra.items() if k not in SERVER_SET_MEMBER_KEYS}
        content["membership"] = membership
        if membership in ("join", "knock"):
            profile = await self.users.get_profile(user_id)
            for key, value in zip(("displayname", "avatar_url"), profile or (), strict=False):
                if value is not None and key not in content:
                    content[key] = value
        return content

    async def resolve_room(self, room_id_or_alias: str) -> str:
        """A room id from an id or a local alias (M_NOT_FOUND otherwise)."""
        if room_id_or_alias.startswith("#"):
            found = await self.rooms.get_alias(room_id_or_alias)
            if found is None and await self._ask_appservices_alias(room_id_or_alias):
                found = await self.rooms.get_alias(room_id_or_alias)
            if found is None:
                raise MatrixError(404, Codes.NOT_FOUND, f"Room alias {room_id_or_alias} not found")
            return found[0]
        if not room_id_or_alias.startswith("!"):
            raise MatrixError(400, Codes.INVALID_PARAM, "Expected a room id or alias")
        if await self.rooms.get_room_version_id(room_id_or_alias) is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Unknown room {room_id_or_alias}")
        return room_id_or_alias

    async def _ask_appservices_alias(self, alias: str) -> bool:
        """An unknown local alias in an application service's namespace: True if a service
        says it has just created it. https://spec.matrix.org/v1.19/application-service-api/#querying"""
        return (self.as_queries is not None and alias.endswith(":" + self.server_name)
                and await self.as_queries.query_alias(alias))

    async def ask_appservices_user(self, user_id: str) -> None:
        """An unknown local user in an application service's namespace: give the service the
        chance to register it (GET /_matrix/app/v1/users/{userId})."""
        if (self.as_queries is not None and user_id.endswith(":" + self.server_name)
                and self.as_queries.registry.user_owners(user_id)
                and await self.users.get_user(user_id) is None):
            await self.as_queries.query_user(user_id)

    async def join(self, room_id: str, user_id: str, reason: str | None = None,
                   extra: JsonDict | None = None, *, is_guest: bool = False) -> str | None:
        """Join ``room_id``: the member event id, or None when already joined and ``extra``
        (custom keys of the member event, e.g. the rest of a /join body) asks for nothing new.
        ``is_guest``: the user is a guest, who may join only rooms that let guests in
        (https://spec.matrix.org/v1.19/client-server-api/#guest-access).

        https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3joinroomidoralias"""
        current = await self.members.get_membership(room_id, user_id)
        if current is not None and current[0] == "join" and not extra:
            return None
        if is_guest:
            if self.guests is None:
                raise MatrixError(403, Codes.GUEST_ACCESS_FORBIDDEN, "Guests may not join rooms")
            await self.guests.check_join(room_id)
        content = await self.member_content(
            user_id, "join", **{**(extra or {}), **({"reason": reason} if reason else {})})
        before: list[str | None] = []  # the membership the join replaces, read in the lock

        async def note_before(state: StateMap, events: EventStore) -> None:
            before.append(await membership_in(state, events, user_id))

        stored = await self.events.send(room_id, user_id, "m.room.member", content, user_id,
                                        check=note_before)
        if before[-1:] != ["join"]:
            await self.newly_joined(room_id, user_id)
        return stored.event_id

    async def newly_joined(self, room_id: str, user_id: str) -> None:
        """Run the join hooks (e.g. the copy of push rules into an upgraded room)."""
        for hook in self.join_hooks:
            await hook(room_id, user_id)

    async def set_member_state(self, room_id: str, sender: str, target: str,
                               content: JsonDict) -> str:
        """PUT /rooms/{roomId}/state/m.room.member/{userId}: the membership change the content
        names, made as the matching /join, /leave, /invite, /kick or /ban would make it, the
        content's other keys kept (a per-room displayname). The auth rules decide who may.

        https://spec.matrix.org/v1.19/client-server-api/#mroommember"""
        membership = content.get("membership")
        if not isinstance(membership, str):
            raise MatrixError(400, Codes.BAD_JSON, "content.membership must be a string")
        extra = {k: v for k, v in content.items() if k != "membership"}
        if membership == "join" and target == sender:
            current = await self.members.get_membership(room_id, sender)
            if current is None or current[0] != "join":
                joined = await self.join(room_id, sender, extra=extra)
                assert joined is not None
                return joined
            # Already joined: the content replaces the member event as given (a per-room
            # displayname may be removed), but for the keys only the server sets.
        return await self.change_membership(room_id, sender, target, membership, extra=extra)

    async def knock(self, room_id: str, user_id: str, reason: str | None = None) -> str:
        """Ask to join: a ``knock`` membership event through the write path. The auth rules
        (v12 rule 5.7) refuse it (403 M_FORBIDDEN) unless the join rule is ``knock`` or
        ``knock_restricted`` and the user is not banned, invited or joined.

        https://spec.matrix.org/v1.19/client-server-api/#knocking-on-rooms"""
        extra = {"reason": reason} if reason else {}
        content = await self.member_content(user_id, "knock", **extra)
        await self.events.send(room_id, user_id, "m.room.member", content, user_id)
        return room_id

    async def membership_action(self, action: str, room_id: str, sender: str, target: str,
                                reason: str | None = None) -> str:
        """POST /rooms/{roomId}/{action} for invite, leave, kick, ban and unban: the member
        event, sent when the target's membership allows the action (``PRECONDITIONS``, checked
        in the room lock). https://spec.matrix.org/v1.19/client-server-api/#room-membership"""
        membership = {"kick": "leave", "unban": "leave"}.get(action, action)
        if action in ("kick", "unban") and await self.rooms.get_room_version_id(room_id) is None:
            # Nobody to kick or unban in an unknown room: the precondition's 403, the one
            # refusal the spec documents for these endpoints.
            _, refusal = PRECONDITIONS[action]
            raise MatrixError(403, Codes.FORBIDDEN, refusal.format(target=target, current=None))
        return await self.change_membership(room_id, sender, target, membership, reason,
                                            action=action)

    async def change_membership(
        self, room_id: str, sender: str, target: str, membership: str,
        reason: str | None = None, extra: JsonDict | None = None, *, action: str | None = None,
    ) -> str:
        """invite / leave / ban / kick (= leave of another user) / unban (= leave). The
        precondition of ``action`` (of an invite, always) is checked in the room lock."""
        validate_user_id(target)
        await self.events.room_version(room_id)  # 404 for unknown rooms
        content: JsonDict = {k: v for k, v in (extra or {}).items()
                             if k not in SERVER_SET_MEMBER_KEYS}
        content["membership"] = membership
        if reason:
            content["reason"] = reason
        if membership == "invite":
            action = "invite"
            await self.ask_appservices_user(target)
            profile = await self.users.get_profile(target)
            if profile is not None and profile[0] and "displayname" not in content:
                content["displayname"] = profile[0]
        check = precondition(action, target) if action in PRECONDITIONS else None
        stored = await self.events.send(room_id, sender, "m.room.member", content, target,
                                        check=check)
        return stored.event_id

    async def forget(self, room_id: str, user_id: str) -> None:
        """POST /rooms/{roomId}/forget: only a room the user has left (or was banned from);
        checked and written in the room lock, so a join at the same time is not forgotten.
        https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidforget"""
        async with self.events.room_lock(room_id):
            current = await self.members.get_membership(room_id, user_id)
            if current is None:
                raise MatrixError(404, Codes.NOT_FOUND, "You have never been in this room")
            if current[0] in ("join", "invite", "knock"):
                raise MatrixError(400, Codes.UNKNOWN, "Leave the room before forgetting it")
            await self.members.forget(room_id, user_id)

    async def joined_rooms(self, user_id: str) -> list[str]:
        """GET /joined_rooms, sorted."""
        return sorted(await self.members.get_rooms_for_user(user_id))


# What a membership endpoint asks of the target's membership before it: (the memberships that
# allow it, the refusal). None: no member event. A ban is left to the auth rules.
PRECONDITIONS: dict[str, tuple[frozenset[str | None], str]] = {
    "invite": (frozenset({None, "invite", "leave", "knock"}), "{target} is already {current} here"),
    "leave": (frozenset({"join", "invite", "knock"}), "You are not in this room"),
    "kick": (frozenset({"join", "invite", "knock"}), "{target} is not in the room"),
    "unban": (frozenset({"ban"}), "{target} is not banned"),
}


def precondition(action: str, target: str) -> Check:
    """The check of ``PRECONDITIONS[action]`` for ``EventService.send``: 403 M_FORBIDDEN
    unless the target's membership in the state the event builds on allows the action."""
    allowed, refusal = PRECONDITIONS[action]

    async def check(state: StateMap, events: EventStore) -> None:
        current = await membership_in(state, events, target)
        if current not in allowed:
            raise MatrixError(403, Codes.FORBIDDEN,
                              refusal.format(target=target, current=current))
    return check


async def membership_in(state: StateMap, events: EventStore, user_id: str) -> str | None:
    """``user_id``'s membership in ``state`` (None: no member event)."""
    event_id = state.get(("m.room.member", user_id))
    if event_id is None:
        return None
    pdu = (await events.get_pdus([event_id])).get(event_id)
    membership = None if pdu is None else pdu["content"].get("membership")
    return membership if isinstance(membership, str) else None


def validate_user_id(user_id: str) -> None:
    if not (isinstance(user_id, str) and user_id.startswith("@") and ":" in user_id):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{user_id!r} is not a user id")


def validate_alias(alias: str, server_name: str) -> None:
    if not alias.startswith("#") or ":" not in alias or len(alias) > 255 or " " in alias:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{alias!r} is not a valid room alias")
    if alias.split(":", 1)[1] != server_name:
        raise MatrixError(400, Codes.INVALID_PARAM, "Aliases must be on this server")
