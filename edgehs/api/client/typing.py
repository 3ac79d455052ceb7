"""Typing notifications.

https://spec.matrix.org/v1.19/client-server-api/#typing-notifications
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body, require
from edgehs.errors import Codes, MatrixError
from edgehs.service.typing import DEFAULT_TIMEOUT_MS


async def set_typing(request: web.Request) -> web.Response:
    """PUT /rooms/{roomId}/typing/{userId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidtypinguserid"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    room_id = request.match_info["roomId"]
    if request.match_info["userId"] != who.user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "You may only set your own typing state")
    typing = require(body, "typing", bool)
    timeout = field(body, "timeout", int, default=DEFAULT_TIMEOUT_MS)
    assert timeout is not None
    if timeout < 0:
        raise MatrixError(400, Codes.INVALID_PARAM, "timeout must not be negative")
    server = hs(request)
    await server.events.room_version(room_id)
    await server.visibility.require_joined(room_id, who.user_id)
    server.typing.set_typing(room_id, who.user_id, typing, timeout)
    return web.json_response({})
