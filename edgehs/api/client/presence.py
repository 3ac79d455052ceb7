"""Presence.

https://spec.matrix.org/v1.19/client-server-api/#presence
"""

from aiohttp import web

from edgehs.api.auth import rate_limit, requester
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body, require
from edgehs.errors import Codes, MatrixError
from edgehs.service.presence import STATES


async def get_presence(request: web.Request) -> web.Response:
    """GET /presence/{userId}/status — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3presenceuseridstatus"""
    who = await requester(request)
    server = hs(request)
    user_id = request.match_info["userId"]
    if not server.presence.enabled:
        return web.json_response({"presence": "offline"})  # as Synapse answers then
    if user_id != who.user_id:
        if not await server.users.exists(user_id):
            raise MatrixError(404, Codes.NOT_FOUND, f"No presence for {user_id}")
        if not await server.presence.is_visible(who.user_id, user_id):
            raise MatrixError(403, Codes.FORBIDDEN,
                              "You are not allowed to see their presence: you share no room")
    return web.json_response(server.presence.content(user_id))


async def set_presence(request: web.Request) -> web.Response:
    """PUT /presence/{userId}/status — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3presenceuseridstatus"""
    who = await requester(request)
    if request.match_info["userId"] != who.user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "You may only set your own presence")
    body = await json_body(request, allow_empty=False)
    presence = require(body, "presence", str)
    if presence not in STATES:
        raise MatrixError(400, Codes.INVALID_PARAM,
                          "presence must be online, unavailable or offline")
    status_msg = field(body, "status_msg", str)
    rate_limit(request, who)
    await hs(request).presence.set_status(who.user_id, presence, status_msg)
    return web.json_response({})
