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
from edgehs.homeserver import HomeServer
from edgehs.types import JsonDict

MAX_TYPE_LENGTH = 255


def _event_type(request: web.Request) -> str:
    event_type = request.match_info["eventType"]
    if not event_type or len(event_type) > MAX_TYPE_LENGTH:
        raise MatrixError(400, Codes.INVALID_PARAM, "Event type must be 1-255 characters")
    return event_type


async def _send(request: web.Request, who: Requester, server: HomeServer, room_id: str,
                event_type: str, content: JsonDict, txn_id: str | None) -> web.Response:
    rate_limit(request, who)
    if event_type == "m.room.redaction":
        raise MatrixError(400, Codes.INVALID_PARAM, "Use the /redact endpoint to redact events")
    await server.events.room_version(room_id)
    await server.visibility.require_joined(room_id, who.user_id)
    stored = await server.events.send(
        room_id, who.user_id, event_type, content, txn_id=txn_id, device_id=who.txn_device,
    )
    return web.json_response({"event_id": stored.event_id})


async def send_message(request: web.Request) -> web.Response:
    """PUT /rooms/{roomId}/send/{eventType}/{txnId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    return await _send(request, who, hs(request), request.match_info["roomId"],
                       _event_type(request), body, request.match_info["txnId"])


async def send_message_legacy(request: web.Request) -> web.Response:
    """POST /_matrix/client/api/v1/rooms/{roomId}/send/{eventType} — the 2015 form without a
    transaction id, kept for microcontrollers posting with one curl line."""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    return await _send(request, who, hs(request), request.match_info["roomId"],
                       _event_type(request), body, None)


async def put_state(request: web.Request) -> web.Response:
    """PUT /rooms/{roomId}/state/{eventType}/{stateKey} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidstateeventtypestatekey"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    room_id = request.match_info["roomId"]
    event_type = _event_type(request)
    state_key = request.match_info.get("stateKey", "")
    server = hs(request)
    rate_limit(request, who)
    await server.events.room_version(room_id)
    if event_type == "m.room.canonical_alias":
        await server.directory.check_canonical_alias(room_id, body)
    # Sending identical state again is a no-op that returns the existing event.
    current = await server.events.current_state_event(room_id, (event_type, state_key))
    if current is not None and current["content"] == body and current["sender"] == who.user_id:
        return web.json_response({"event_id": current["event_id"]})
    if event_type == "m.room.member":
        # A membership change (joining or leaving included) made as the matching endpoint
        # makes it: https://spec.matrix.org/v1.19/client-server-api/#mroommember
        event_id = await server.rooms.set_member_state(room_id, who.user_id, state_key, body)
        return web.json_response({"event_id": event_id})
    await server.visibility.require_joined(room_id, who.user_id)
    stored = await server.events.send(room_id, who.user_id, event_type, body, state_key)
    return web.json_response({"event_id": stored.event_id})


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
    room_id = request.match_info["roomId"]
    server = hs(request)
    rate_limit(request, who)
    await server.events.room_version(room_id)
    await server.visibility.require_joined(room_id, who.user_id)
    target_id = request.match_info["eventId"]
    content: JsonDict = {}
    reason = field(body, "reason", str)
    if reason is not None:
        content["reason"] = reason
    stored = await server.events.send(
        room_id, who.user_id, "m.room.redaction", content, txn_id=request.match_info.get("txnId"),
        device_id=who.txn_device, redacts=target_id,
    )
    return web.json_response({"event_id": stored.event_id})


async def get_event(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/event/{eventId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomideventeventid"""
    who = await requester(request)
    server = hs(request)
    ev = await server.room_state.event(request.match_info["roomId"], who.user_id,
                                       request.match_info["eventId"])
    return web.json_response(await server.formatter.format_one(ev, who.user_id, who.device_id))
