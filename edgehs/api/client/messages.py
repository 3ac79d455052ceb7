"""Room history: paginating /messages and the context around one event.

https://spec.matrix.org/v1.19/client-server-api/#getting-events-for-a-room
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import query_int, query_json
from edgehs.errors import Codes, MatrixError
from edgehs.service.filters import DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT
from edgehs.service.messages import RoomEventFilter
from edgehs.service.sync import SyncToken
from edgehs.service.sync_token import TopoToken, parse_room_token


def query_token(request: web.Request, name: str) -> SyncToken | None:
    """A pagination token (a /sync token) from the query string; 400 M_INVALID_PARAM if bad."""
    raw = request.query.get(name)
    if not raw:
        return None
    token = SyncToken.parse(raw)
    if token.position < 0 or token.typing < 0:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid pagination token {raw!r}")
    return token


def query_room_token(request: web.Request, name: str) -> SyncToken | TopoToken | None:
    """A room pagination token (topological, or a /sync token) from the query string; 400
    M_INVALID_PARAM if bad."""
    raw = request.query.get(name)
    return parse_room_token(raw) if raw else None


def query_dir(request: web.Request) -> bool:
    """``dir``: True for backwards (``b``, the default), False for forwards (``f``)."""
    direction = request.query.get("dir", "b")
    if direction not in ("b", "f"):
        raise MatrixError(400, Codes.INVALID_PARAM, "dir must be b or f")
    return direction == "b"


def query_filter(request: web.Request) -> RoomEventFilter:
    return RoomEventFilter.parse(query_json(request, "filter"))


async def messages(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/messages — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidmessages"""
    who = await requester(request)
    room_id = request.match_info["roomId"]
    backwards = query_dir(request)
    from_token = query_room_token(request, "from")
    to_token = query_room_token(request, "to")
    flt = query_filter(request)
    default = flt.events.limit if flt.events.limit is not None else DEFAULT_TIMELINE_LIMIT
    limit = query_int(request, "limit", default, maximum=MAX_TIMELINE_LIMIT)
    body = await hs(request).messages.messages(
        room_id, who.user_id, from_token=from_token, to_token=to_token, backwards=backwards,
        limit=limit, flt=flt,
    )
    if request.query.get("from"):
        body["start"] = request.query["from"]  # "the same as the value given in from"
    return web.json_response(body)


async def context(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/context/{eventId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidcontexteventid"""
    who = await requester(request)
    room_id = request.match_info["roomId"]
    limit = query_int(request, "limit", DEFAULT_TIMELINE_LIMIT, maximum=MAX_TIMELINE_LIMIT)
    flt = query_filter(request)
    body = await hs(request).messages.context(
        room_id, who.user_id, request.match_info["eventId"], limit, flt
    )
    return web.json_response(body)
