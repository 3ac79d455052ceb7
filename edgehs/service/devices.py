"""Plain-HTTP devices: a user, a room and a long-lived token for a microcontroller.

``edgehs device add NAME`` provisions through :func:`provision_device`: in the running server
(``POST /_edgehs/admin/v1/devices``, see ``api/admin.py``), or directly on the database when
edgehs is stopped. The device posts with one curl line in the 2015 style
(``POST /_matrix/client/api/v1/rooms/{roomId}/send/{eventType}?access_token=``); by default its
token may only be used in its own room (``access_tokens.room_id``, enforced for every
route that names a room by ``api.auth.requester``).
"""

import json
import shlex
from dataclasses import asdict, dataclass, fields
from urllib.parse import quote

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.room_versions import get_room_version
from edgehs.service.rooms import RoomService, validate_alias
from edgehs.service.users import UserService
from edgehs.types import JsonDict

# One fixed device id per device user: provisioning again replaces its token (the old one is
# deleted in the same transaction, see DeviceService.add).
DEVICE_ID = "EDGEHS_DEVICE"
OWNER_POWER = 50
SENSOR_EVENT_TYPE = "org.edgehs.sensor"
# Event content is canonical JSON, which has no floats: readings go as strings (or integers).
SENSOR_CONTENT: JsonDict = {"value": "21.5", "unit": "C"}
TEXT_CONTENT: JsonDict = {"msgtype": "m.text", "body": "hello"}


class ProvisionError(MatrixError):
    """Provisioning cannot go on; the message says what to do instead."""

    def __init__(self, msg: str, status: int = 400, errcode: Codes = Codes.INVALID_PARAM
                 ) -> None:
        super().__init__(status, errcode, msg)


@dataclass(frozen=True)
class ProvisionedDevice:
    """What was provisioned; also the admin endpoint's JSON answer (same keys)."""

    user_id: str
    room_id: str
    room_alias: str
    access_token: str
    device_id: str
    room_limited: bool
    created_user: bool
    created_room: bool
    invited_owner: str | None

    def to_json(self) -> JsonDict:
        return asdict(self)

    @classmethod
    def from_json(cls, body: JsonDict) -> "ProvisionedDevice":
        """The admin endpoint's answer; ValueError if it is not one."""
        try:
            device = cls(**{f.name: body[f.name] for f in fields(cls)})
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a provisioned device: {exc}") from exc
        for key in ("user_id", "room_id", "room_alias", "access_token", "device_id"):
            if not isinstance(getattr(device, key), str):
                raise ValueError(f"not a provisioned device: {key} is not a string")
        return device


def device_localpart(name: str) -> str:
    return f"device_{name}"


def room_alias(name: str, room: str | None, server_name: str) -> str:
    """``#NAME:server`` by default; ``--room`` is a localpart or a full local alias."""
    alias = room if room is not None and room.startswith("#") else f"#{room or name}:{server_name}"
    validate_alias(alias, server_name)
    return alias


async def provision_device(
    users: UserService, rooms: RoomService, name: str, *, room: str | None = None,
    owner: str | None = None, any_room: bool = False,
) -> ProvisionedDevice:
    """Create (or reuse) ``@device_NAME``, its room and a new token, revoking the old one.

    Room events are written (room creation, join, invite), so this runs in the process that
    owns the stream positions: the running server, or the command line while edgehs is
    stopped. The old token is deleted with the new one's insertion and dropped from this
    process's token cache (``DeviceService.add``): refused from then on."""
    server_name = users.server_name
    localpart = users.validate_localpart(device_localpart(name))
    user_id = users.user_id(localpart)
    alias = room_alias(name, room, server_name)
    owner_id = await _owner(users, owner)

    created_user = False
    if await users.users.get_user(user_id) is None:
        await users.register(localpart, None)
        created_user = True

    invited = None
    found = await rooms.rooms.get_alias(alias)
    if found is None:
        room_id = await _create_room(rooms, user_id, name, alias, owner_id)
        invited = owner_id
    else:
        room_id = found[0]
        membership = await rooms.members.get_membership(room_id, user_id)
        if membership is None or membership[0] != "join":
            try:
                await rooms.join(room_id, user_id)
            except MatrixError as exc:
                raise ProvisionError(
                    f"{user_id} cannot join {alias} ({exc.msg}); invite it from a client "
                    f"and run this again", 403, Codes.FORBIDDEN) from exc
        if owner_id is not None and await _not_in_room(rooms, room_id, owner_id):
            try:
                await rooms.change_membership(room_id, user_id, owner_id, "invite")
            except MatrixError as exc:
                raise ProvisionError(f"{user_id} cannot invite {owner_id} into {alias}: "
                                     f"{exc.msg}", 403, Codes.FORBIDDEN) from exc
            invited = owner_id

    token, device_id = await users.login(
        user_id, DEVICE_ID, f"edgehs device {name}", room_id=None if any_room else room_id,
    )
    return ProvisionedDevice(user_id, room_id, alias, token, device_id, not any_room,
                             created_user, found is None, invited)


async def _owner(users: UserService, owner: str | None) -> str | None:
    if owner is None:
        return None
    owner_id = owner if owner.startswith("@") else users.user_id(owner)
    if not users.is_local(owner_id) or await users.users.get_user(owner_id) is None:
        raise ProvisionError(f"owner {owner}: no local user {owner_id}")
    return owner_id


async def _not_in_room(rooms: RoomService, room_id: str, user_id: str) -> bool:
    membership = await rooms.members.get_membership(room_id, user_id)
    return membership is None or membership[0] not in ("join", "invite")


async def _create_room(rooms: RoomService, device: str, name: str, alias: str,
                       owner: str | None) -> str:
    """A private room created by the device user; the owner is invited with power 50."""
    rv = get_room_version(rooms.default_room_version)
    users: dict[str, int] = {} if rv.creators_have_infinite_power else {device: 100}
    body: JsonDict = {
        "room_alias_name": alias[1:].split(":", 1)[0],
        "name": name,
        "topic": f"Readings of the device {name}",
        "preset": "private_chat",
    }
    if owner is not None:
        users[owner] = OWNER_POWER
        body["invite"] = [owner]
    if users:
        # createRoom's override replaces the whole "users" map of the default power levels.
        body["power_level_content_override"] = {"users": users}
    room_id, _ = await rooms.create_room(device, body)
    return room_id


def curl_lines(base_url: str, room_id: str, token: str) -> list[str]:
    """The two curl lines a device posts with: a text message and a custom sensor event.

    The room id is percent-encoded: its ``!`` would trigger history expansion inside double
    quotes in an interactive shell."""
    base = base_url.rstrip("/")
    lines = []
    for event_type, content in (("m.room.message", TEXT_CONTENT),
                                (SENSOR_EVENT_TYPE, SENSOR_CONTENT)):
        url = (f"{base}/_matrix/client/api/v1/rooms/{quote(room_id, safe='')}/send/"
               f"{event_type}?access_token={token}")
        body = shlex.quote(json.dumps(content, separators=(",", ":")))
        lines.append(f'curl -XPOST -d {body} "{url}"')
    return lines
