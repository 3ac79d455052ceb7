"""Threads: the list of thread roots.

https://spec.matrix.org/v1.19/client-server-api/#threading
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import query_int
from edgehs.service.threads import DEFAULT_LIMIT


async def list_threads(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/threads — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidthreads"""
    who = await requester(request)
    room_id = request.match_info["roomId"]
    body = await hs(request).threads.list_threads(
        room_id, who.user_id, include=request.query.get("include", "all"),
        from_token=request.query.get("from"),
        limit=query_int(request, "limit", DEFAULT_LIMIT, minimum=1),
    )
    return web.json_response(body)
