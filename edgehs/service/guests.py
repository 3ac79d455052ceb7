"""Guest accounts: registration, upgrade, and ``m.room.guest_access``.

https://spec.matrix.org/v1.19/client-server-api/#guest-access

A guest is an account without a password, created by ``POST /register?kind=guest`` when the
``allow_guest_access`` option is on. Which endpoints a guest may call is the API layer's list
(``api/guest_access.py``); the rules about rooms live here:

1. a guest may join a room only while its ``m.room.guest_access`` is ``can_join``;
2. when that stops being so, the server sets the room's guest members to ``leave``
   (each guest's own leave event, as Synapse does);
3. a guest upgrades to a full account by registering with its own access token as
   ``guest_access_token`` and its own localpart as ``username``; another user's account
   cannot be taken that way.
"""

import logging

from edgehs.errors import Codes, MatrixError
from edgehs.service.events import EventService
from edgehs.service.users import UserService
from edgehs.store.events import StoredEvent
from edgehs.store.rooms import MemberStore
from edgehs.store.users import UserStore

log = logging.getLogger(__name__)

GUEST_ACCESS = "m.room.guest_access"
CAN_JOIN = "can_join"


class GuestService:
    def __init__(self, allowed: bool, users: UserService, user_store: UserStore,
                 events: EventService, members: MemberStore) -> None:
        self.allowed = allowed
        self.users = users
        self.user_store = user_store
        self.events = events
        self.members = members

    async def register(self) -> str:
        """A new guest account (its user id); 403 M_GUEST_ACCESS_FORBIDDEN when the server
        does not allow guests."""
        if not self.allowed:
            raise MatrixError(403, Codes.GUEST_ACCESS_FORBIDDEN,
                              "Guest access is disabled on this server")
        return await self.users.register(None, None, is_guest=True)

    async def upgrade_target(self, localpart: str, guest_token: str) -> str:
        """The user id a registration with ``guest_access_token`` upgrades: the guest's own,
        which must be the one ``localpart`` names (403 M_FORBIDDEN otherwise)."""
        info = await self.users.validate_token(guest_token)
        user_id = self.users.user_id(localpart)
        if not info.is_guest or info.user_id != user_id:
            raise MatrixError(403, Codes.FORBIDDEN,
                              "Cannot register a taken user id without that guest's "
                              "access token")
        return user_id

    async def can_join(self, room_id: str) -> bool:
        pdu = await self.events.current_state_event(room_id, (GUEST_ACCESS, ""))
        return pdu is not None and pdu.get("content", {}).get("guest_access") == CAN_JOIN

    async def check_join(self, room_id: str) -> None:
        """Rule 1: 403 M_GUEST_ACCESS_FORBIDDEN unless the room lets guests join."""
        await self.events.room_version(room_id)  # 404 for unknown rooms
        if not await self.can_join(room_id):
            raise MatrixError(403, Codes.GUEST_ACCESS_FORBIDDEN,
                              "Guests may not join this room")

    async def after_send(self, stored: StoredEvent) -> None:
        """Rule 2, run after each local event: a guest_access change away from ``can_join``
        sets every guest member of the room to ``leave``."""
        pdu = stored.pdu
        if pdu.get("type") != GUEST_ACCESS or pdu.get("state_key") != "":
            return
        if pdu.get("content", {}).get("guest_access") == CAN_JOIN:
            return
        joined = sorted(await self.members.get_joined(stored.room_id))
        for user_id in sorted(await self.user_store.guests_among(joined)):
            try:
                await self.events.send(stored.room_id, user_id, "m.room.member",
                                       {"membership": "leave"}, user_id)
            except MatrixError as exc:  # e.g. a concurrent leave: nothing left to do
                log.info("could not remove guest %s from %s: %s", user_id, stored.room_id, exc)
