"""Server-side key backups: backup versions and the keys stored in them.

https://spec.matrix.org/v1.19/client-server-api/#server-side-key-backups
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body
from edgehs.errors import Codes, MatrixError
from edgehs.service.room_keys import (
    KeyMap,
    check_room_id,
    parse_key_data,
    parse_rooms,
    parse_sessions,
)
from edgehs.types import JsonDict


def _rooms_json(keys: KeyMap) -> JsonDict:
    return {room_id: {"sessions": {sid: key.to_json() for sid, key in sessions.items()}}
            for room_id, sessions in keys.items()}


async def create_version(request: web.Request) -> web.Response:
    """POST /room_keys/version — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3room_keysversion"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    version = await hs(request).room_keys.create_version(who.user_id, body)
    return web.json_response({"version": version})


async def get_current_version(request: web.Request) -> web.Response:
    """GET /room_keys/version — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3room_keysversion"""
    who = await requester(request)
    return web.json_response(await hs(request).room_keys.get_version(who.user_id, None))


async def get_version(request: web.Request) -> web.Response:
    """GET /room_keys/version/{version} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3room_keysversionversion"""
    who = await requester(request)
    version = request.match_info["version"]
    return web.json_response(await hs(request).room_keys.get_version(who.user_id, version))


async def put_version(request: web.Request) -> web.Response:
    """PUT /room_keys/version/{version} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3room_keysversionversion"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    await hs(request).room_keys.update_version(who.user_id, request.match_info["version"], body)
    return web.json_response({})


async def delete_version(request: web.Request) -> web.Response:
    """DELETE /room_keys/version/{version} — https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3room_keysversionversion"""
    who = await requester(request)
    await hs(request).room_keys.delete_version(who.user_id, request.match_info["version"])
    return web.json_response({})


# --- keys: all rooms, one room, one session -------------------------------------------------------

async def put_keys(request: web.Request) -> web.Response:
    """PUT /room_keys/keys — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3room_keyskeys"""
    who = await requester(request)
    keys = parse_rooms(await json_body(request, allow_empty=False))
    result = await hs(request).room_keys.put_keys(who.user_id, request.query.get("version"),
                                                  keys)
    return web.json_response(result.to_json())


async def put_room_keys(request: web.Request) -> web.Response:
    """PUT /room_keys/keys/{roomId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3room_keyskeysroomid"""
    who = await requester(request)
    room_id = check_room_id(request.match_info["roomId"])
    sessions = parse_sessions(await json_body(request, allow_empty=False), "body")
    result = await hs(request).room_keys.put_keys(who.user_id, request.query.get("version"),
                                                  {room_id: sessions})
    return web.json_response(result.to_json())


async def put_session_key(request: web.Request) -> web.Response:
    """PUT /room_keys/keys/{roomId}/{sessionId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3room_keyskeysroomidsessionid"""
    who = await requester(request)
    room_id = check_room_id(request.match_info["roomId"])
    key = parse_key_data(await json_body(request, allow_empty=False), "body")
    result = await hs(request).room_keys.put_keys(
        who.user_id, request.query.get("version"),
        {room_id: {request.match_info["sessionId"]: key}})
    return web.json_response(result.to_json())


async def get_keys(request: web.Request) -> web.Response:
    """GET /room_keys/keys — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3room_keyskeys"""
    who = await requester(request)
    keys = await hs(request).room_keys.get_keys(who.user_id, request.query.get("version"))
    return web.json_response({"rooms": _rooms_json(keys)})


async def get_room_keys(request: web.Request) -> web.Response:
    """GET /room_keys/keys/{roomId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3room_keyskeysroomid"""
    who = await requester(request)
    room_id = request.match_info["roomId"]
    keys = await hs(request).room_keys.get_keys(who.user_id, request.query.get("version"),
                                                room_id)
    return web.json_response(_rooms_json(keys).get(room_id, {"sessions": {}}))


async def get_session_key(request: web.Request) -> web.Response:
    """GET /room_keys/keys/{roomId}/{sessionId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3room_keyskeysroomidsessionid"""
    who = await requester(request)
    room_id, session_id = request.match_info["roomId"], request.match_info["sessionId"]
    keys = await hs(request).room_keys.get_keys(who.user_id, request.query.get("version"),
                                                room_id, session_id)
    key = keys.get(room_id, {}).get(session_id)
    if key is None:
        raise MatrixError(404, Codes.NOT_FOUND, "No key backed up for that session")
    return web.json_response(key.to_json())


async def delete_keys(request: web.Request) -> web.Response:
    """DELETE /room_keys/keys — https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3room_keyskeys"""
    who = await requester(request)
    result = await hs(request).room_keys.delete_keys(who.user_id, request.query.get("version"))
    return web.json_response(result.to_json())


async def delete_room_keys(request: web.Request) -> web.Response:
    """DELETE /room_keys/keys/{roomId} — https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3room_keyskeysroomid"""
    who = await requester(request)
    result = await hs(request).room_keys.delete_keys(
        who.user_id, request.query.get("version"), request.match_info["roomId"])
    return web.json_response(result.to_json())


async def delete_session_key(request: web.Request) -> web.Response:
    """DELETE /room_keys/keys/{roomId}/{sessionId} — https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3room_keyskeysroomidsessionid"""
    who = await requester(request)
    result = await hs(request).room_keys.delete_keys(
        who.user_id, request.query.get("version"), request.match_info["roomId"],
        request.match_info["sessionId"])
    return web.json_response(result.to_json())
