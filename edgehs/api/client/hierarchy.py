"""Spaces: the room hierarchy.

https://spec.matrix.org/v1.19/client-server-api/#spaces
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import query_bool, query_int
from edgehs.service.hierarchy import DEFAULT_LIMIT, DEFAULT_MAX_DEPTH, HierarchyQuery


async def hierarchy(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/hierarchy — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidhierarchy"""
    who = await requester(request)
    room_id = request.match_info["roomId"]
    query = HierarchyQuery(
        suggested_only=query_bool(request, "suggested_only"),
        limit=query_int(request, "limit", DEFAULT_LIMIT, minimum=1),
        max_depth=query_int(request, "max_depth", DEFAULT_MAX_DEPTH, minimum=0,
                            maximum=DEFAULT_MAX_DEPTH),
        from_token=request.query.get("from"),
    )
    return web.json_response(await hs(request).hierarchy.hierarchy(room_id, who.user_id, query))
