"""Server discovery, versions and capabilities.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientversions
https://spec.matrix.org/v1.19/client-server-api/#getwell-knownmatrixclient
https://spec.matrix.org/v1.19/client-server-api/#capabilities-negotiation
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs

# Unstable features (MSCs) that really work: simplified sliding sync (MSC4186) for Element X.
# Clients look here before using these (Element X: sliding sync; Element: mutual rooms;
# room summary, MSC3266, at its unstable path, as Synapse advertises it).
UNSTABLE_FEATURES = {"org.matrix.simplified_msc3575": True,
                     "uk.half-shot.msc2666.query_mutual_rooms": True,
                     "im.nheko.summary": True}

# Only versions whose features really work are advertised; v1.11 means authenticated media.
SUPPORTED_VERSIONS = ["r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8",
                      "v1.9", "v1.10", "v1.11"]


async def versions(request: web.Request) -> web.Response:
    """GET /_matrix/client/versions — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientversions"""
    return web.json_response({"versions": SUPPORTED_VERSIONS,
                              "unstable_features": UNSTABLE_FEATURES})


async def well_known(request: web.Request) -> web.Response:
    """GET /.well-known/matrix/client — https://spec.matrix.org/v1.19/client-server-api/#getwell-knownmatrixclient"""
    base = hs(request).config.public_baseurl or f"{request.scheme}://{request.host}/"
    return web.json_response({"m.homeserver": {"base_url": base.rstrip("/")}})


async def capabilities(request: web.Request) -> web.Response:
    """GET /capabilities — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3capabilities"""
    await requester(request)
    return web.json_response({"capabilities": {
        "m.change_password": {"enabled": True},
        "m.room_versions": hs(request).rooms.room_versions_capability(),
        "m.set_displayname": {"enabled": True},
        "m.set_avatar_url": {"enabled": True},
        "m.3pid_changes": {"enabled": False},
        "m.get_login_token": {"enabled": False},
    }})
