"""Room creation and membership.

https://spec.matrix.org/v1.19/client-server-api/#creation
https://spec.matrix.org/v1.19/client-server-api/#room-membership
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import Handler, hs
from edgehs.api.params import field, json_body, require
from edgehs.errors import Codes, MatrixError
from edgehs.types import JsonDict

INVITE_3PID_FIELDS = ("id_server", "id_access_token", "medium", "address")


def _check_create_body(body: JsonDict) -> None:
    """The types of every field of the /createRoom request schema, the fields edgehs does
    not act on included (400 M_BAD_JSON; M_INVALID_PARAM for a value outside an enum).
    https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3createroom"""
    for key, kind in (("name", str), ("topic", str), ("room_alias_name", str), ("preset", str),
                      ("room_version", str), ("visibility", str), ("invite", list),
                      ("invite_3pid", list), ("initial_state", list), ("is_direct", bool),
                      ("creation_content", dict), ("power_level_content_override", dict)):
        field(body, key, kind)
    if body.get("visibility", "private") not in ("public", "private"):
        raise MatrixError(400, Codes.INVALID_PARAM, "visibility must be public or private")
    for item in body.get("initial_state") or []:
        if not (isinstance(item, dict) and isinstance(item.get("type"), str)
                and isinstance(item.get("content"), dict)
                and isinstance(item.get("state_key", ""), str)):
            raise MatrixError(400, Codes.BAD_JSON,
                              "initial_state entries need type, content and a string state_key")
        if item["type"] == "m.room.create":
            raise MatrixError(400, Codes.BAD_JSON, "initial_state cannot contain m.room.create")
    if not all(isinstance(u, str) for u in body.get("invite") or []):
        raise MatrixError(400, Codes.BAD_JSON, "invite must be a list of user ids")
    _check_creation_content(body.get("creation_content") or {})
    invite_3pid = body.get("invite_3pid") or []
    for item in invite_3pid:
        if not (isinstance(item, dict)
                and all(isinstance(item.get(k), str) for k in INVITE_3PID_FIELDS)):
            raise MatrixError(400, Codes.BAD_JSON, "invite_3pid entries need string "
                              + ", ".join(INVITE_3PID_FIELDS))
    if invite_3pid:
        # Inviting by third-party id needs an identity server lookup, which edgehs does not
        # do; refusing beats creating the room without the invites the client asked for.
        raise MatrixError(403, Codes.FORBIDDEN,
                          "Third-party invites are not supported by this server")


def _check_creation_content(content: JsonDict) -> None:
    """The fields of ``m.room.create`` content a client may set, by the event schema
    (``creator`` and ``room_version`` are the server's; the user ids of
    ``additional_creators`` are checked by the room version's auth rules).
    https://spec.matrix.org/v1.19/client-server-api/#mroomcreate"""
    field(content, "type", str)
    field(content, "m.federate", bool)
    predecessor = field(content, "predecessor", dict)
    if predecessor is not None and not isinstance(predecessor.get("room_id"), str):
        raise MatrixError(400, Codes.BAD_JSON, "predecessor.room_id must be a string")
    if predecessor is not None:
        field(predecessor, "event_id", str)
    creators = field(content, "additional_creators", list)
    if creators is not None and not all(isinstance(u, str) for u in creators):
        raise MatrixError(400, Codes.BAD_JSON, "additional_creators must be a list of user ids")


async def create_room(request: web.Request) -> web.Response:
    """POST /createRoom — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3createroom"""
    who = await requester(request)
    if who.room_id is not None:
        raise MatrixError(403, Codes.FORBIDDEN, "This token may only be used in one room")
    body = await json_body(request)
    _check_create_body(body)
    room_id, _alias = await hs(request).rooms.create_room(who.user_id, body,
                                                          who.appservice_id)
    return web.json_response({"room_id": room_id})


async def join(request: web.Request) -> web.Response:
    """POST /join/{roomIdOrAlias} and /rooms/{roomId}/join — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3joinroomidoralias

    Keys of the body beyond ``reason`` and ``third_party_signed`` go into the member event's
    content, as on other homeservers."""
    who = await requester(request)
    body = await json_body(request)
    target = request.match_info.get("roomIdOrAlias") or request.match_info["roomId"]
    server = hs(request)
    room_id = await server.rooms.resolve_room(target)
    reason = field(body, "reason", str)
    extra = {k: v for k, v in body.items() if k not in ("reason", "third_party_signed")}
    await server.rooms.join(room_id, who.user_id, reason, extra, is_guest=who.is_guest)
    return web.json_response({"room_id": room_id})


async def knock(request: web.Request) -> web.Response:
    """POST /knock/{roomIdOrAlias} — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3knockroomidoralias

    ``via`` / ``server_name`` name servers to knock through; only local rooms are known here,
    so they are not used."""
    who = await requester(request)
    body = await json_body(request)
    reason = field(body, "reason", str)
    server = hs(request)
    room_id = await server.rooms.resolve_room(request.match_info["roomIdOrAlias"])
    await server.rooms.knock(room_id, who.user_id, reason)
    return web.json_response({"room_id": room_id})


def _membership_handler(action: str, *, target_from_body: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        who = await requester(request)
        body = await json_body(request)
        room_id = request.match_info["roomId"]
        target = require(body, "user_id", str) if target_from_body else who.user_id
        reason = field(body, "reason", str)
        await hs(request).rooms.membership_action(action, room_id, who.user_id, target, reason)
        return web.json_response({})

    handler.__doc__ = f"POST /rooms/{{roomId}}/{action} — https://spec.matrix.org/v1.19/client-server-api/#room-membership"
    return handler


invite = _membership_handler("invite", target_from_body=True)
leave = _membership_handler("leave", target_from_body=False)
kick = _membership_handler("kick", target_from_body=True)
ban = _membership_handler("ban", target_from_body=True)
unban = _membership_handler("unban", target_from_body=True)


async def forget(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/forget — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidforget"""
    who = await requester(request)
    await hs(request).rooms.forget(request.match_info["roomId"], who.user_id)
    return web.json_response({})


async def joined_rooms(request: web.Request) -> web.Response:
    """GET /joined_rooms — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3joined_rooms"""
    who = await requester(request)
    return web.json_response({"joined_rooms": await hs(request).rooms.joined_rooms(who.user_id)})


async def members(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/members — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidmembers"""
    who = await requester(request)
    server = hs(request)
    chosen = await server.room_state.members(
        request.match_info["roomId"], who.user_id, request.query.get("membership"),
        request.query.get("not_membership"))
    return web.json_response({"chunk": await server.formatter.format(chosen, who.user_id)})


async def joined_members(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/joined_members — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidjoined_members"""
    who = await requester(request)
    joined = await hs(request).room_state.joined_members(request.match_info["roomId"],
                                                          who.user_id)
    return web.json_response({"joined": joined})
