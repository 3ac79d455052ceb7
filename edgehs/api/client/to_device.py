"""Send-to-Device messaging.

https://spec.matrix.org/v1.19/client-server-api/#send-to-device-messaging
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body
from edgehs.errors import Codes, MatrixError
from edgehs.service.to_device import parse_messages


async def send_to_device(request: web.Request) -> web.Response:
    """PUT /sendToDevice/{eventType}/{txnId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3sendtodeviceeventtypetxnid"""
    who = await requester(request)
    if who.room_id is not None:
        raise MatrixError(403, Codes.FORBIDDEN, "This token may only be used in one room")
    body = await json_body(request, allow_empty=False)
    messages = parse_messages(body.get("messages"))
    await hs(request).to_device.send(
        who.user_id, who.txn_device or "", request.match_info["txnId"],
        request.match_info["eventType"], messages,
    )
    return web.json_response({})
