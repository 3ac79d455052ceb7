"""User profiles: display name, avatar and the extended profile fields.

https://spec.matrix.org/v1.19/client-server-api/#profiles

``displayname`` and ``avatar_url`` are kept on the user's row; every other field (``m.tz`` and
custom namespaced keys) in ``profile_fields``. A change of the display name or avatar is
propagated as a new ``m.room.member`` join event into every room the user is joined to
(https://spec.matrix.org/v1.19/client-server-api/#events-on-change-of-profile-information).
"""

import asyncio
import logging
import re
from typing import Any

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.canonical_json import json_size
from edgehs.service.events import EventService
from edgehs.service.rooms import RoomService
from edgehs.store.account_data import ProfileFieldStore
from edgehs.store.events import EventStore
from edgehs.store.rooms import MemberStore
from edgehs.store.users import UserStore
from edgehs.types import JsonDict

log = logging.getLogger(__name__)

# The keyName pattern of the spec's profile endpoints.
KEY_RE = re.compile(r"^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$")
MAX_KEY_BYTES = 255
MAX_PROFILE_BYTES = 65536  # "the total profile MUST be under 64 KiB"
# Both end up in every m.room.member event of the user, which must stay under 64 KiB.
MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000
MXC_RE = re.compile(r"^mxc://[^/\s]+/[A-Za-z0-9_\-]+$")
MEMBER_FIELDS = ("displayname", "avatar_url")


def check_key(key: str) -> None:
    """400 for a key the spec does not allow as a profile field name."""
    if len(key.encode()) > MAX_KEY_BYTES:
        raise MatrixError(400, Codes.KEY_TOO_LARGE, "Profile keys are at most 255 bytes")
    if not KEY_RE.match(key):
        raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid profile key {key!r}")


def check_value(key: str, value: Any) -> Any:
    """The value to store for ``key`` (None clears displayname/avatar_url), or 400."""
    if key in ("displayname", "avatar_url", "m.tz") and not isinstance(value, str):
        raise MatrixError(400, Codes.BAD_JSON, f"{key} must be a string")
    if key == "displayname":
        if len(value) > MAX_DISPLAYNAME_LENGTH:
            raise MatrixError(400, Codes.INVALID_PARAM,
                              f"displayname is longer than {MAX_DISPLAYNAME_LENGTH} characters")
        return value or None
    if key == "avatar_url":
        if value and (len(value) > MAX_AVATAR_URL_LENGTH or not MXC_RE.match(value)):
            raise MatrixError(400, Codes.INVALID_PARAM, "avatar_url must be an mxc:// URI")
        return value or None
    return value


class ProfileService:
    def __init__(
        self, server_name: str, users: UserStore, fields: ProfileFieldStore,
        members: MemberStore, event_store: EventStore, events: EventService, rooms: RoomService,
    ) -> None:
        self.server_name = server_name
        self.users = users
        self.fields = fields
        self.members = members
        self.event_store = event_store
        self.events = events
        self.rooms = rooms
        self._locks: dict[str, asyncio.Lock] = {}

    def _is_local(self, user_id: str) -> bool:
        return user_id.startswith("@") and user_id.endswith(":" + self.server_name)

    async def get_profile(self, user_id: str) -> JsonDict:
        """Every field of a local user's profile; 404 for unknown users."""
        base = await self.users.get_profile(user_id) if self._is_local(user_id) else None
        if base is None and self._is_local(user_id):
            # An application service may register a user of its namespace when asked.
            await self.rooms.ask_appservices_user(user_id)
            base = await self.users.get_profile(user_id)
        if base is None:
            # Remote profiles would need a federation query, which is not wired yet.
            raise MatrixError(404, Codes.NOT_FOUND, f"Profile of {user_id} not found")
        profile: JsonDict = await self.fields.get_all(user_id)
        for key, value in zip(MEMBER_FIELDS, base, strict=True):
            if value is not None:
                profile[key] = value
        return profile

    async def get_field(self, user_id: str, key: str) -> Any:
        profile = await self.get_profile(user_id)
        if key not in profile:
            raise MatrixError(404, Codes.NOT_FOUND, f"{user_id} has no profile field {key}")
        return profile[key]

    def _check_own(self, requester: str, user_id: str) -> None:
        if requester != user_id:
            raise MatrixError(403, Codes.FORBIDDEN, "You may only change your own profile")

    async def set_field(self, requester: str, user_id: str, key: str, value: Any) -> None:
        """PUT a profile field: validate, check the 64 KiB limit, store, propagate."""
        self._check_own(requester, user_id)
        check_key(key)
        value = check_value(key, value)
        async with self._locks.setdefault(user_id, asyncio.Lock()):
            profile = await self.get_profile(user_id)
            updated = dict(profile)
            if value is None and key in MEMBER_FIELDS:
                updated.pop(key, None)
            else:
                updated[key] = value
            if json_size(updated) >= MAX_PROFILE_BYTES:
                raise MatrixError(400, Codes.PROFILE_TOO_LARGE, "The profile would be over 64 KiB")
            if key not in MEMBER_FIELDS:
                await self.fields.set(user_id, key, value)
            elif profile.get(key) != value:
                await self.users.set_profile_field(user_id, key, value)
                await self._propagate(user_id)

    async def delete_field(self, requester: str, user_id: str, key: str) -> None:
        """DELETE a profile field (a no-op when it is not set)."""
        self._check_own(requester, user_id)
        check_key(key)
        async with self._locks.setdefault(user_id, asyncio.Lock()):
            profile = await self.get_profile(user_id)
            if key not in profile:
                return
            if key not in MEMBER_FIELDS:
                await self.fields.delete(user_id, key)
            else:
                await self.users.set_profile_field(user_id, key, None)
                await self._propagate(user_id)

    async def _propagate(self, user_id: str) -> None:
        """Send the new display name / avatar as a join event into every joined room."""
        content = await self.rooms.member_content(user_id, "join")
        rooms = await self.members.get_rooms_for_user(user_id, ("join",))
        for room_id, (_membership, event_id, _pos) in sorted(rooms.items()):
            current = await self.event_store.get_event(event_id)
            if current is not None and current.pdu["content"] == content:
                continue
            try:
                await self.events.send(room_id, user_id, "m.room.member", content, user_id)
            except MatrixError as exc:  # one room refusing must not stop the others
                log.warning("profile change of %s not sent to %s: %s", user_id, room_id, exc)
