"""Server administration.

https://spec.matrix.org/v1.19/client-server-api/#server-administration
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs


async def whois(request: web.Request) -> web.Response:
    """GET /admin/whois/{userId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3adminwhoisuserid

    For the user themself or a server admin (``edgehs register-user --admin``)."""
    who = await requester(request)
    return web.json_response(await hs(request).client_ips.whois(who.user_id,
                                                                request.match_info["userId"]))
