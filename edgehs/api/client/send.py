"""Sending events, room state, redactions and single events.

https://spec.matrix.org/v1.19/client-server-api/#sending-events-to-a-room
https://spec.matrix.org/v1.19/client-server-api/#redactions
https://spec.matrix.org/v1.19/client-server-api/#getting-events-for-a-room
"""

from aiohttp import web

from edgehs.api.auth import Requester, rate_limit, requester
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body
from edgehs.errors import Codes, MatrixError
from edgehs.types import JsonDict

MAX_TYPE_LENGTH = 255


def _event_type(request: web.Request) -> str:
    event_type = request.match_info["eventType"]
    if not event_type or len(event_type) > MAX_TYPE_LENGTH:
        raise MatrixError(400, Codes.INVALID_PARAM, "Event type must be 1-255 characters")
    return event_type


async def _send(request: web.Request, who: Requester, content: JsonDict,
                txn_id: str | None) -> web.Response:
    event_type = _event_type(request)
    rate_limit(request, who)
    event_id = await hs(request).send.message(request.match_info["roomId"], who.user_id,
                                              event_type, content, txn_id, who.txn_device)
    return web.json_response({"event_id": event_id})


async def send_message(request: web.Request) -> web.Response:
    """PUT /rooms/{roomId}/send/{eventType}/{txnId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    return await _send(request, who, body, request.match_info["txnId"])


async def send_message_legacy(request: web.Request) -> web.Response:
    """POST /_matrix/client/api/v1/rooms/{roomId}/send/{eventType} — the 2015 form without a
    transaction id, kept for microcontrollers posting with one curl line."""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    return await _send(request, who, body, None)


async def put_state(request: web.Request) -> web.Response:
    """PUT /rooms/{roomId}/state/{eventType}/{stateKey} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidstateeventtypestatekey"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    event_type = _event_type(request)
    rate_limit(request, who)
    event_id = await hs(request).send.state(request.match_info["roomId"], who.user_id,
                                            event_type, request.match_info.get("stateKey", ""),
                                            body)
    return web.json_response({"event_id": event_id})


async def get_state_event(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/state/{eventType}/{stateKey} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidstateeventtypestatekey"""
    who = await requester(request)
    key = (request.match_info["eventType"], request.match_info.get("stateKey", ""))
    server = hs(request)
    ev = await server.room_state.state_event(request.match_info["roomId"], who.user_id, key)
    formatted = await server.formatter.format_one(ev, who.user_id)
    if request.query.get("format") == "event":
        return web.json_response(formatted)
    return web.json_response(formatted["content"])


async def get_state(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/state — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidstate"""
    who = await requester(request)
    server = hs(request)
    events = await server.room_state.state_events(request.match_info["roomId"], who.user_id)
    return web.json_response(await server.formatter.format(events, who.user_id))


async def redact(request: web.Request) -> web.Response:
    """PUT /rooms/{roomId}/redact/{eventId}/{txnId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidredacteventidtxnid"""
    who = await requester(request)
    body = await json_body(request)
    reason = field(body, "reason", str)
    rate_limit(request, who)
    event_id = await hs(request).send.redact(
        request.match_info["roomId"], who.user_id, request.match_info["eventId"], reason,
        request.match_info.get("txnId"), who.txn_device)
    return web.json_response({"event_id": event_id})


async def get_event(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/event/{eventId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomideventeventid"""
    who = await requester(request)
    server = hs(request)
    ev = await server.room_state.event(request.match_info["roomId"], who.user_id,
                                       request.match_info["eventId"])
    return web.json_response(await server.formatter.format_one(ev, who.user_id, who.device_id))
