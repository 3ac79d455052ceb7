"""Server-side search.

https://spec.matrix.org/v1.19/client-server-api/#server-side-search
"""

from dataclasses import replace

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body
from edgehs.service.search_query import SearchRequest


async def search(request: web.Request) -> web.Response:
    """POST /search — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3search"""
    who = await requester(request)
    req = SearchRequest.parse(await json_body(request, allow_empty=False))
    if who.room_id is not None:  # a token limited to one room searches that room only
        req = replace(req, flt=replace(req.flt, rooms=(who.room_id,)))
    body = await hs(request).search.search(who.user_id, req, request.query.get("next_batch"))
    return web.json_response(body)
