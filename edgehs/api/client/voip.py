"""Voice over IP: TURN server credentials (call events themselves are ordinary room events).

https://spec.matrix.org/v1.19/client-server-api/#voice-over-ip
"""

from aiohttp import web

from edgehs.api.auth import rate_limit, requester
from edgehs.api.keys import hs


async def turn_server(request: web.Request) -> web.Response:
    """GET /voip/turnServer — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3voipturnserver"""
    who = await requester(request)
    rate_limit(request, who)
    return web.json_response(hs(request).turn.credentials(who.user_id))
