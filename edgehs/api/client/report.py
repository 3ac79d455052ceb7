"""Reporting content.

https://spec.matrix.org/v1.19/client-server-api/#reporting-content
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body, require
from edgehs.errors import Codes, MatrixError


async def report_event(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/report/{eventId} — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidreporteventid"""
    who = await requester(request)
    room_id = request.match_info["roomId"]
    body = await json_body(request)
    reason = field(body, "reason", str)
    # `score` was removed in v1.18; older clients still send it (-100 worst .. 0 harmless).
    score = field(body, "score", int)
    if score is not None and not -100 <= score <= 0:
        raise MatrixError(400, Codes.INVALID_PARAM, "score must be between -100 and 0")
    await hs(request).reports.report_event(who.user_id, room_id, request.match_info["eventId"],
                                           reason, score)
    return web.json_response({})


async def report_room(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/report — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidreport"""
    who = await requester(request)
    reason = require(await json_body(request), "reason", str)
    await hs(request).reports.report_room(who.user_id, request.match_info["roomId"], reason)
    return web.json_response({})


async def report_user(request: web.Request) -> web.Response:
    """POST /users/{userId}/report — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3usersuseridreport"""
    who = await requester(request)
    reason = require(await json_body(request), "reason", str)
    await hs(request).reports.report_user(who.user_id, request.match_info["userId"], reason)
    return web.json_response({})
