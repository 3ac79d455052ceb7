"""Room upgrades.

https://spec.matrix.org/v1.19/client-server-api/#room-upgrades
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body, require
from edgehs.errors import Codes, MatrixError


async def upgrade_room(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/upgrade — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidupgrade"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    room_id = request.match_info["roomId"]
    new_version = require(body, "new_version", str)
    additional = field(body, "additional_creators", list)
    if additional is not None and not all(isinstance(u, str) for u in additional):
        raise MatrixError(400, Codes.BAD_JSON, "additional_creators must be a list of user ids")
    new_room = await hs(request).upgrade.upgrade(who.user_id, room_id, new_version, additional)
    return web.json_response({"replacement_room": new_room})
