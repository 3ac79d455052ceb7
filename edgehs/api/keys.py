"""Typed application keys and the handler type."""

from collections.abc import Awaitable, Callable

from aiohttp import web

from edgehs.config import Config
from edgehs.homeserver import HomeServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONFIG_KEY = web.AppKey("config", Config)
HS_KEY = web.AppKey("homeserver", HomeServer)


def hs(request: web.Request) -> HomeServer:
    return request.app[HS_KEY]
