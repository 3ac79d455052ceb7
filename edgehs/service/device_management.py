"""Device management: a user's devices, created by logins, renamed and deleted.

https://spec.matrix.org/v1.19/client-server-api/#device-management

Every change of a user's device list (a new device, a new display name, a deleted device,
a deactivated account) writes a ``device_list_changes`` row at a position of the shared stream
in the same transaction as the change: everyone sharing a room with the user, the user
included, then sees them in /sync's ``device_lists.changed`` and in ``GET /keys/changes``
(https://spec.matrix.org/v1.19/client-server-api/#tracking-the-device-list-for-a-user).
"""

import time

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.service.events import EventService
from edgehs.store.keys import add_device_list_change
from edgehs.store.users import (
    UserStore,
    deactivate_user,
    mark_erased,
    put_device,
    remove_devices,
    rename_device,
)
from edgehs.types import JsonDict


class DeviceService:
    def __init__(self, users: UserStore, events: EventService) -> None:
        self.users = users
        self.events = events  # run_write: a write at a position of the shared stream

    async def _changed_if(self, user_id: str, written: bool, conn: aiosqlite.Connection,
                          position: int) -> None:
        if written:
            await add_device_list_change(conn, user_id, position)

    async def add(self, user_id: str, device_id: str, display_name: str | None, token: str,
                  room_id: str | None = None, ip: str | None = None) -> None:
        """A login: create (or reuse) the device and store its new access token."""
        ts = int(time.time() * 1000)

        async def write(conn: aiosqlite.Connection, position: int) -> None:
            changed = await put_device(conn, user_id, device_id, display_name, token, ts,
                                       room_id, ip)
            await self._changed_if(user_id, changed, conn, position)

        await self.events.run_write(write)
        self.users.forget_tokens(user_id, {device_id})

    async def all(self, user_id: str) -> list[JsonDict]:
        """GET /devices: https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3devices"""
        return [_device_json(d) for d in await self.users.get_devices(user_id)]

    async def ids(self, user_id: str) -> list[str]:
        """The ids of the user's devices, sorted."""
        return sorted(await self.users.device_ids(user_id))

    async def exists(self, user_id: str, device_id: str) -> bool:
        return await self.users.get_device(user_id, device_id) is not None

    async def get(self, user_id: str, device_id: str) -> JsonDict:
        device = await self.users.get_device(user_id, device_id)
        if device is None:
            raise MatrixError(404, Codes.NOT_FOUND, "No such device")
        return _device_json(device)

    async def rename(self, user_id: str, device_id: str, name: str | None) -> None:
        """PUT /devices/{deviceId}: 404 for an unknown device; the display name is public
        (``unsigned.device_display_name`` of /keys/query), so a new one is a device list
        change. https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3devicesdeviceid"""
        await self.get(user_id, device_id)
        if name is None:
            return

        async def write(conn: aiosqlite.Connection, position: int) -> None:
            changed = await rename_device(conn, user_id, device_id, name)
            await self._changed_if(user_id, changed, conn, position)

        await self.events.run_write(write)

    async def delete(self, user_id: str, device_ids: list[str] | None) -> None:
        """Delete the devices (all of the user's when None) with their tokens and keys."""
        if device_ids is not None and not device_ids:
            return

        async def write(conn: aiosqlite.Connection, position: int) -> None:
            deleted = await remove_devices(conn, user_id, device_ids)
            await self._changed_if(user_id, deleted, conn, position)

        await self.events.run_write(write)
        self.users.forget_tokens(user_id, None if device_ids is None else set(device_ids))

    async def log_out(self, user_id: str, device_id: str | None, *, appservice: bool) -> None:
        """POST /logout: the device of the token, its keys, pushers and inbox with it. An
        application service's ``as_token`` (without an asserted device) is not a session:
        nothing ends. https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3logout"""
        if appservice and device_id is None:
            return
        await self.delete(user_id, None if device_id is None else [device_id])

    async def delete_others(self, user_id: str, keep: str | None) -> None:
        """Log out every device but ``keep`` (after a password change)."""
        await self.delete(user_id, [d for d in await self.users.device_ids(user_id) if d != keep])

    async def deactivate(self, user_id: str, erase: bool = False) -> None:
        """Mark the account deactivated; its devices, tokens and keys are deleted. With
        ``erase`` the account is marked erased at this position of the stream: its events are
        served redacted to those who could not see them before (``Visibility.seen_before``)."""
        async def write(conn: aiosqlite.Connection, position: int) -> None:
            deleted = await deactivate_user(conn, user_id)
            await self._changed_if(user_id, deleted, conn, position)
            if erase:
                await mark_erased(conn, user_id, position)

        position = await self.events.run_write(write)
        self.users.forget_tokens(user_id, None)
        if erase:
            self.users.note_erased(user_id, position)


def _device_json(device: dict[str, object]) -> JsonDict:
    return {k: v for k, v in device.items() if v is not None}
