"""Application service endpoints of the Client-Server API.

https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv1appserviceappserviceidping
"""

from aiohttp import web

from edgehs.api.auth import appservice_of, get_token
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body
from edgehs.errors import Codes, MatrixError


async def ping(request: web.Request) -> web.Response:
    """POST /appservice/{appserviceId}/ping — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv1appserviceappserviceidping"""
    token = get_token(request)
    if not token:
        raise MatrixError(401, Codes.MISSING_TOKEN, "Missing access token")
    server = hs(request)
    service = appservice_of(request)
    if service is None:
        await server.users.validate_token(token)  # 401 M_UNKNOWN_TOKEN for unknown tokens
    if service is None or service.id != request.match_info["appserviceId"]:
        raise MatrixError(403, Codes.FORBIDDEN,
                          "Provided access token is not the appservice's as_token")
    body = await json_body(request)
    transaction_id = field(body, "transaction_id", str)
    duration_ms = await server.as_queries.ping(service, transaction_id)
    # The service answers again: deliver what waits for it now, not after the backoff.
    server.outbox.retry_now(f"as:{service.id}")
    return web.json_response({"duration_ms": duration_ms})
