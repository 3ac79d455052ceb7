"""Client config (account data, global and per room) and room tagging.

https://spec.matrix.org/v1.19/client-server-api/#client-config
https://spec.matrix.org/v1.19/client-server-api/#room-tagging

Requests are parsed and checked here; reading and writing is ``service/account_data.py``.
"""

from aiohttp import web

from edgehs.api.auth import Requester, requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body
from edgehs.errors import Codes, MatrixError
from edgehs.types import JsonDict

# "Servers MUST reject setting account data with event types that the server manages."
SERVER_MANAGED_TYPES = ("m.fully_read", "m.push_rules")
MAX_TYPE_LENGTH = 255
MAX_TAG_BYTES = 255  # "The name of a tag MUST NOT exceed 255 bytes."


async def _own_user(request: web.Request) -> Requester:
    who = await requester(request)
    if request.match_info["userId"] != who.user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "You may only access your own account data")
    return who


def _room_id(request: web.Request) -> str:
    room_id = request.match_info.get("roomId", "")
    if not room_id.startswith("!") or len(room_id) > 255:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{room_id!r} is not a valid room ID")
    return room_id


def _data_type(request: web.Request, *, writing: bool) -> str:
    data_type = request.match_info["type"]
    if len(data_type) > MAX_TYPE_LENGTH:
        raise MatrixError(400, Codes.INVALID_PARAM, "Account data types are 1-255 characters")
    if writing and data_type in SERVER_MANAGED_TYPES:
        raise MatrixError(405, Codes.BAD_JSON,
                          f"Cannot set {data_type} through this API")
    return data_type


async def _get(request: web.Request, room_id: str) -> web.Response:
    who = await _own_user(request)
    data_type = _data_type(request, writing=False)
    content = await hs(request).account_data.get(who.user_id, room_id, data_type)
    if content is None:
        raise MatrixError(404, Codes.NOT_FOUND, "Account data not found")
    return web.json_response(content)


async def _put(request: web.Request, room_id: str) -> web.Response:
    who = await _own_user(request)
    data_type = _data_type(request, writing=True)
    content = await json_body(request, allow_empty=False)
    await hs(request).account_data.put(who.user_id, room_id, data_type, content)
    return web.json_response({})


async def get_account_data(request: web.Request) -> web.Response:
    """GET /user/{userId}/account_data/{type} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3useruseridaccount_datatype"""
    return await _get(request, "")


async def put_account_data_global(request: web.Request) -> web.Response:
    """PUT /user/{userId}/account_data/{type} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3useruseridaccount_datatype"""
    return await _put(request, "")


async def get_room_account_data(request: web.Request) -> web.Response:
    """GET /user/{userId}/rooms/{roomId}/account_data/{type} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3useruseridroomsroomidaccount_datatype"""
    return await _get(request, _room_id(request))


async def put_room_account_data(request: web.Request) -> web.Response:
    """PUT /user/{userId}/rooms/{roomId}/account_data/{type} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3useruseridroomsroomidaccount_datatype"""
    return await _put(request, _room_id(request))


async def get_tags(request: web.Request) -> web.Response:
    """GET /user/{userId}/rooms/{roomId}/tags — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3useruseridroomsroomidtags"""
    who = await _own_user(request)
    room_id = _room_id(request)
    tags = await hs(request).account_data.get_tags(who.user_id, room_id)
    return web.json_response({"tags": tags})


def _tag(request: web.Request) -> str:
    tag = request.match_info["tag"]
    if len(tag.encode()) > MAX_TAG_BYTES:
        raise MatrixError(400, Codes.INVALID_PARAM, "Tag names are at most 255 bytes")
    return tag


def _check_tag_body(body: JsonDict) -> None:
    order = body.get("order")
    if order is None:
        return
    if not isinstance(order, int | float) or isinstance(order, bool):
        raise MatrixError(400, Codes.BAD_JSON, "order must be a number")
    if not 0 <= order <= 1:
        raise MatrixError(400, Codes.INVALID_PARAM, "order must be between 0 and 1")


async def put_tag(request: web.Request) -> web.Response:
    """PUT /user/{userId}/rooms/{roomId}/tags/{tag} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3useruseridroomsroomidtagstag"""
    who = await _own_user(request)
    room_id = _room_id(request)
    tag = _tag(request)
    body = await json_body(request)
    _check_tag_body(body)
    await hs(request).account_data.set_tag(who.user_id, room_id, tag, body)
    return web.json_response({})


async def delete_tag(request: web.Request) -> web.Response:
    """DELETE /user/{userId}/rooms/{roomId}/tags/{tag} — https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3useruseridroomsroomidtagstag"""
    who = await _own_user(request)
    room_id = _room_id(request)
    tag = _tag(request)
    await hs(request).account_data.remove_tag(who.user_id, room_id, tag)
    return web.json_response({})
