"""Room summary (MSC3266): a preview of a room by id or alias, authentication optional.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias

Served at the stable ``/_matrix/client/v1/room_summary/{roomIdOrAlias}`` (v1.15) and at the
unstable ``/_matrix/client/unstable/im.nheko.summary/rooms/{roomIdOrAlias}/summary`` that
Synapse serves: matrix-rust-sdk (Element X) calls the unstable path when the server does not
advertise v1.15, and Element X needs the summary to show an invite before accepting it.
"""

from aiohttp import web

from edgehs.api.auth import get_token, requester
from edgehs.api.keys import hs

UNSTABLE_PATH = "/_matrix/client/unstable/im.nheko.summary/rooms/{roomIdOrAlias}/summary"


async def room_summary(request: web.Request) -> web.Response:
    """GET /_matrix/client/v1/room_summary/{roomIdOrAlias} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias

    Also the unstable MSC3266 path. Without an access token only public, knockable or
    world-readable rooms are summarised; with one (an invalid one is 401) the requester's
    memberships count too. ``via`` is accepted and ignored: only local rooms are summarised."""
    who = await requester(request) if get_token(request) is not None else None
    service = hs(request).room_summary
    room_id = await service.resolve(request.match_info["roomIdOrAlias"])
    return web.json_response(
        await service.summary(room_id, who.user_id if who is not None else None))
