"""Room aliases, the published room directory and /publicRooms.

https://spec.matrix.org/v1.19/client-server-api/#room-aliases
https://spec.matrix.org/v1.19/client-server-api/#published-room-directory
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body, query_int, require
from edgehs.errors import Codes, MatrixError
from edgehs.homeserver import HomeServer
from edgehs.service.directory import PublicRoomsQuery
from edgehs.types import JsonDict


async def put_alias(request: web.Request) -> web.Response:
    """PUT /directory/room/{roomAlias} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3directoryroomroomalias"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    room_id = require(body, "room_id", str)
    await hs(request).directory.create_alias(who.user_id, request.match_info["roomAlias"],
                                             room_id, who.appservice_id)
    return web.json_response({})


async def get_alias(request: web.Request) -> web.Response:
    """GET /directory/room/{roomAlias} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3directoryroomroomalias"""
    return web.json_response(
        await hs(request).directory.resolve_alias(request.match_info["roomAlias"])
    )


async def delete_alias(request: web.Request) -> web.Response:
    """DELETE /directory/room/{roomAlias} — https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3directoryroomroomalias"""
    who = await requester(request)
    await hs(request).directory.delete_alias(who.user_id, request.match_info["roomAlias"],
                                             who.appservice_id)
    return web.json_response({})


async def room_aliases(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/aliases — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidaliases"""
    who = await requester(request)
    room_id = request.match_info["roomId"]
    aliases = await hs(request).directory.local_aliases(who.user_id, room_id)
    return web.json_response({"aliases": aliases})


async def get_visibility(request: web.Request) -> web.Response:
    """GET /directory/list/room/{roomId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3directorylistroomroomid"""
    visibility = await hs(request).directory.get_visibility(request.match_info["roomId"])
    return web.json_response({"visibility": visibility})


async def put_visibility(request: web.Request) -> web.Response:
    """PUT /directory/list/room/{roomId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3directorylistroomroomid"""
    who = await requester(request)
    body = await json_body(request)
    room_id = request.match_info["roomId"]
    visibility = field(body, "visibility", str, default="public")
    assert visibility is not None
    await hs(request).directory.set_visibility(who.user_id, room_id, visibility)
    return web.json_response({})


def _check_server(server: HomeServer, name: str | None) -> None:
    if name and name != server.config.server_name:
        raise MatrixError(400, Codes.INVALID_PARAM,
                          "This server cannot list other servers' room directories")


async def get_public_rooms(request: web.Request) -> web.Response:
    """GET /publicRooms — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3publicrooms"""
    server = hs(request)
    _check_server(server, request.query.get("server"))
    query = PublicRoomsQuery(limit=query_int(request, "limit", 0) or None,
                             since=request.query.get("since") or None)
    return web.json_response(await server.directory.public_rooms(query))


async def post_public_rooms(request: web.Request) -> web.Response:
    """POST /publicRooms — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3publicrooms"""
    await requester(request)
    server = hs(request)
    _check_server(server, request.query.get("server"))
    body = await json_body(request)
    limit = field(body, "limit", int)
    if limit is not None and limit < 0:
        raise MatrixError(400, Codes.INVALID_PARAM, "limit must not be negative")
    flt: JsonDict = field(body, "filter", dict) or {}
    room_types = field(flt, "room_types", list)
    if room_types is not None and not all(t is None or isinstance(t, str) for t in room_types):
        raise MatrixError(400, Codes.BAD_JSON, "room_types must hold strings or null")
    query = PublicRoomsQuery(
        limit=limit or None, since=field(body, "since", str) or None,
        search=field(flt, "generic_search_term", str) or None,
        room_types=None if room_types is None else tuple(room_types),
        third_party_instance_id=field(body, "third_party_instance_id", str),
        include_all_networks=bool(field(body, "include_all_networks", bool, default=False)),
    )
    return web.json_response(await server.directory.public_rooms(query))


async def put_appservice_visibility(request: web.Request) -> web.Response:
    """PUT /directory/list/appservice/{networkId}/{roomId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3directorylistappservicenetworkidroomid"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    visibility = require(body, "visibility", str)
    await hs(request).directory.set_appservice_visibility(
        who.appservice_id, request.match_info["networkId"], request.match_info["roomId"],
        visibility)
    return web.json_response({})


async def delete_appservice_visibility(request: web.Request) -> web.Response:
    """DELETE /directory/list/appservice/{networkId}/{roomId}: Synapse's (not the spec's)
    shorthand for a PUT with ``"visibility": "private"``, which bridges and SyTest use.
    https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3directorylistappservicenetworkidroomid"""
    who = await requester(request)
    await hs(request).directory.set_appservice_visibility(
        who.appservice_id, request.match_info["networkId"], request.match_info["roomId"],
        "private")
    return web.json_response({})
