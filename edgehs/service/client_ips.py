"""Where each device was last seen: the time, address and User-Agent of its requests, for
``GET /devices`` (``last_seen_ts``, ``last_seen_ip``) and ``GET /admin/whois``.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3devices
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3adminwhoisuserid

Every authenticated request is noted, but a device's row is written only when its address or
User-Agent changes or :data:`WRITE_INTERVAL_MS` after its last write, so a busy client costs
one small write a minute, not one per request.
"""

import time
from dataclasses import dataclass

from edgehs.errors import Codes, MatrixError
from edgehs.store.users import UserStore
from edgehs.types import JsonDict

WRITE_INTERVAL_MS = 60_000


@dataclass(frozen=True)
class _Seen:
    ip: str | None
    user_agent: str | None
    ts: int


class ClientIps:
    def __init__(self, users: UserStore) -> None:
        self.users = users
        # (user_id, device_id) -> what was last written for the device.
        self._written: dict[tuple[str, str], _Seen] = {}

    async def seen(self, user_id: str, device_id: str, ip: str | None,
                   user_agent: str | None) -> None:
        """Note a request of the device."""
        now = int(time.time() * 1000)
        key = (user_id, device_id)
        last = self._written.get(key)
        if (last is not None and (last.ip, last.user_agent) == (ip, user_agent)
                and now - last.ts < WRITE_INTERVAL_MS):
            return
        self._written[key] = _Seen(ip, user_agent, now)
        await self.users.set_device_seen(user_id, device_id, now, ip, user_agent)

    async def whois(self, requester: str, user_id: str) -> JsonDict:
        """The whois answer about local ``user_id``, for the user themself or a server admin
        (403 M_FORBIDDEN otherwise, before the user is looked up; 404 M_NOT_FOUND for an
        unknown user). One session per device (a device has one live access token), with its
        last connection when the device has been seen."""
        if requester != user_id:
            asking = await self.users.get_user(requester)
            if asking is None or not asking.get("admin"):
                raise MatrixError(403, Codes.FORBIDDEN,
                                  "Only server admins may look up other users")
            if await self.users.get_user(user_id) is None:
                raise MatrixError(404, Codes.NOT_FOUND, f"Unknown user {user_id}")
        devices: JsonDict = {}
        for row in await self.users.get_device_connections(user_id):
            connection = {key: row[column] for key, column in (
                ("ip", "last_seen_ip"), ("last_seen", "last_seen_ts"),
                ("user_agent", "last_seen_user_agent")) if row[column] is not None}
            devices[str(row["device_id"])] = {
                "sessions": [{"connections": [connection] if connection else []}],
            }
        return {"user_id": user_id, "devices": devices}
