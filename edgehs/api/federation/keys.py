"""Publishing this server's keys.

https://spec.matrix.org/v1.19/server-server-api/#publishing-keys
"""

from aiohttp import web

from edgehs.api.keys import hs


async def server_keys(request: web.Request) -> web.Response:
    """GET /_matrix/key/v2/server — https://spec.matrix.org/v1.19/server-server-api/#get_matrixkeyv2server

    No authentication: remote servers fetch it to check this server's signatures."""
    return web.json_response(await hs(request).server_keys.server_keys())
