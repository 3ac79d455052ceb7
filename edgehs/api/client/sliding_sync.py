"""Simplified sliding sync (MSC4186), the sync of Element X.

https://github.com/matrix-org/matrix-spec-proposals/pull/4186
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body, query_int
from edgehs.service.sliding_sync import parse_request

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


async def sliding_sync(request: web.Request) -> web.Response:
    """POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync — https://github.com/matrix-org/matrix-spec-proposals/pull/4186

    Query: ``pos`` (the previous response's, absent for a new connection; unknown -> 400
    M_UNKNOWN_POS) and ``timeout`` (ms to wait when there is nothing new)."""
    who = await requester(request)
    server = hs(request)
    body = parse_request(await json_body(request))
    timeout = query_int(request, "timeout", 0, maximum=server.config.max_sync_timeout_ms)
    pos = request.query.get("pos") or None
    result = await server.sliding_sync.sync(who.user_id, who.device_id, body, pos, timeout)
    return web.json_response(result)
