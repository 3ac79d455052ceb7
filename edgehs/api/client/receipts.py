"""Receipts and read markers.

https://spec.matrix.org/v1.19/client-server-api/#receipts
https://spec.matrix.org/v1.19/client-server-api/#fully-read-markers
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body
from edgehs.errors import Codes, MatrixError


async def post_receipt(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/receipt/{receiptType}/{eventId} — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidreceiptreceipttypeeventid"""
    who = await requester(request)
    body = await json_body(request)
    room_id = request.match_info["roomId"]
    thread_id = body.get("thread_id")
    if thread_id is not None and not isinstance(thread_id, str):
        raise MatrixError(400, Codes.INVALID_PARAM, "thread_id must be a non-empty string")
    await hs(request).receipts.send_receipt(
        room_id, who.user_id, request.match_info["receiptType"], request.match_info["eventId"],
        thread_id,
    )
    return web.json_response({})


async def set_read_markers(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/read_markers — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidread_markers"""
    who = await requester(request)
    body = await json_body(request)
    room_id = request.match_info["roomId"]
    await hs(request).receipts.set_read_markers(
        room_id, who.user_id, fully_read=field(body, "m.fully_read", str),
        read=field(body, "m.read", str), read_private=field(body, "m.read.private", str),
    )
    return web.json_response({})
