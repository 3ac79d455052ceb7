"""Child events of an event: /relations.

https://spec.matrix.org/v1.19/client-server-api/#relationship-types
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidrelationseventid
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.client.messages import query_dir, query_room_token
from edgehs.api.keys import hs
from edgehs.api.params import query_bool, query_int

DEFAULT_LIMIT = 5
MAX_LIMIT = 1000


async def relations(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]] — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidrelationseventidreltypeeventtype"""
    who = await requester(request)
    room_id = request.match_info["roomId"]
    backwards = query_dir(request)
    from_token = query_room_token(request, "from")
    to_token = query_room_token(request, "to")
    limit = query_int(request, "limit", DEFAULT_LIMIT, maximum=MAX_LIMIT)
    recurse = query_bool(request, "recurse") if "recurse" in request.query else None
    body = await hs(request).messages.relations(
        room_id, who.user_id, request.match_info["eventId"],
        rel_type=request.match_info.get("relType"),
        event_type=request.match_info.get("eventType"),
        from_token=from_token, to_token=to_token, backwards=backwards, limit=limit,
        recurse=recurse,
    )
    return web.json_response(body)
