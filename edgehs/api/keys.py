"""Typed application keys and the handler type."""

from collections.abc import Awaitable, Callable

from aiohttp import web

from edgehs.config import Config
from edgehs.homeserver import HomeServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONFIG_KEY = web.AppKey("config", Config)
HS_KEY = web.AppKey("homeserver", HomeServer)
# The one room an authenticated request's token is limited to (set by ``requester``), which a
# room id in its JSON body must name too (checked by ``json_body``).
ROOM_SCOPE = web.RequestKey("room_scope", str)


def hs(request: web.Request) -> HomeServer:
    return request.app[HS_KEY]
