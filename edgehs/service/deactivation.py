"""Account deactivation, with or without erasure.

https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountdeactivate
"""

import logging

from edgehs.errors import MatrixError
from edgehs.service.device_management import DeviceService
from edgehs.service.profile import ProfileService
from edgehs.service.rooms import RoomService

log = logging.getLogger(__name__)


class DeactivationService:
    def __init__(self, rooms: RoomService, profile: ProfileService,
                 devices: DeviceService) -> None:
        self.rooms = rooms
        self.profile = profile
        self.devices = devices

    async def deactivate(self, user_id: str, erase: bool) -> None:
        """As Synapse does: with ``erase`` the profile is cleared first (so the leave events
        carry no name); every joined room is left and every invite and knock rejected through
        the event write path; then the account is marked deactivated (and erased), which
        deletes devices and tokens (their device keys, one-time keys, to-device inboxes and
        pushers go with them) and, by migration 0010's trigger, every pusher, key backup,
        cross-signing key, signature, account data and push rule of the user.

        Erasure: users who could not see the account's events before it are served redacted
        copies of them from then on; those who could still see them as they were."""
        if erase:
            for key in ("displayname", "avatar_url"):
                await self.profile.users.set_profile_field(user_id, key, None)
            for key in await self.profile.fields.get_all(user_id):
                await self.profile.fields.delete(user_id, key)
        rooms = await self.rooms.members.get_rooms_for_user(user_id, ("join", "invite", "knock"))
        for room_id in sorted(rooms):
            try:
                await self.rooms.change_membership(room_id, user_id, user_id, "leave")
            except MatrixError as exc:  # one room refusing must not keep the account alive
                log.warning("deactivation of %s: could not leave %s: %s", user_id, room_id,
                            exc.msg)
        await self.devices.deactivate(user_id, erase)
