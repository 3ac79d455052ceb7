"""The 2015 client API that api/v1 clients still call: the event stream and initial syncs.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3events
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3initialsync
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidinitialsync
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3eventseventid
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.client.messages import query_token
from edgehs.api.keys import hs
from edgehs.api.params import query_bool, query_int
from edgehs.errors import Codes, MatrixError
from edgehs.service.event_stream import DEFAULT_LIMIT, MAX_LIMIT
from edgehs.service.filters import MAX_TIMELINE_LIMIT
from edgehs.service.initial_sync import DEFAULT_LIMIT as INITIAL_SYNC_LIMIT

# How long GET /events waits without a timeout parameter (as Synapse does).
DEFAULT_TIMEOUT_MS = 30000


async def events(request: web.Request) -> web.Response:
    """GET /events — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3events

    With ``room_id``, the room preview form:
    https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3events-1"""
    who = await requester(request)
    server = hs(request)
    since = query_token(request, "from")
    if since is not None and since.position > server.notifier.position:
        raise MatrixError(400, Codes.INVALID_PARAM, "The from token is from the future")
    room_id = request.query.get("room_id") or None
    timeout = query_int(request, "timeout", DEFAULT_TIMEOUT_MS,
                        maximum=server.config.max_sync_timeout_ms)
    # At least one event: with none, `end` could never move past a waiting event.
    limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    body = await server.event_stream.get_events(
        who.user_id, who.device_id, is_guest=who.is_guest, since=since, timeout_ms=timeout,
        room_id=room_id, limit=limit)
    if request.query.get("from"):
        body["start"] = request.query["from"]
    return web.json_response(body)


async def event(request: web.Request) -> web.Response:
    """GET /events/{eventId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3eventseventid"""
    who = await requester(request)
    body = await hs(request).event_stream.get_event(who.user_id, who.device_id,
                                                    request.match_info["eventId"])
    if who.room_id is not None and body.get("room_id") != who.room_id:
        raise MatrixError(404, Codes.NOT_FOUND, "Event not found")
    return web.json_response(body)


async def initial_sync(request: web.Request) -> web.Response:
    """GET /initialSync — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3initialsync"""
    who = await requester(request)
    if who.room_id is not None:
        raise MatrixError(403, Codes.FORBIDDEN, "This token may only be used in one room")
    limit = query_int(request, "limit", INITIAL_SYNC_LIMIT, maximum=MAX_TIMELINE_LIMIT)
    body = await hs(request).initial_sync.initial_sync(
        who.user_id, who.device_id, limit, query_bool(request, "archived"))
    return web.json_response(body)


async def room_initial_sync(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/initialSync — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidinitialsync"""
    who = await requester(request)
    room_id = request.match_info["roomId"]
    limit = query_int(request, "limit", INITIAL_SYNC_LIMIT, maximum=MAX_TIMELINE_LIMIT)
    body = await hs(request).initial_sync.room_initial_sync(who.user_id, who.device_id,
                                                            room_id, limit)
    return web.json_response(body)
