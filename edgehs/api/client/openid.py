"""OpenID: request a token (Client-Server) and exchange it for the user id (Server-Server).

https://spec.matrix.org/v1.19/client-server-api/#openid
https://spec.matrix.org/v1.19/server-server-api/#openid

The federation half lives here until edgehs has a federation listener (and an
``api/federation`` package): it is served on the client listener, which is where Element Call's
focus and widget hosts look for it when they call ``https://{server name}``.
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body
from edgehs.errors import Codes, MatrixError


async def request_token(request: web.Request) -> web.Response:
    """POST /user/{userId}/openid/request_token — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3useruseridopenidrequest_token"""
    who = await requester(request)
    await json_body(request)  # {}: reserved for future expansion, but must be a JSON object
    if request.match_info["userId"] != who.user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "You can only request OpenID tokens for yourself")
    return web.json_response(hs(request).openid.issue(who.user_id))


async def userinfo(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/openid/userinfo — https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1openiduserinfo

    Unauthenticated (the token is the credential); only ``?access_token=`` is read, never the
    Authorization header, as the spec defines."""
    token = request.query.get("access_token")
    if not token:
        raise MatrixError(401, Codes.MISSING_TOKEN, "The access_token parameter is required")
    user_id = hs(request).openid.user_for(token)
    if user_id is None:
        raise MatrixError(401, Codes.UNKNOWN_TOKEN, "Access token unknown or expired")
    return web.json_response({"sub": user_id})
