"""The 2015 run-time application service registration, kept for old application services.

Before registration files existed, an application service registered itself by posting its URL,
its as_token and its namespaces to the homeserver, which answered with the hs_token it would
push with. The spec replaced that with files; edgehs still serves the old endpoint, but only to
server admins (the 2015 endpoint was unauthenticated), and stores what it receives so it
survives a restart. The spec dropped the endpoint because a compromised AS could re-register
itself for every user; requiring an admin's access token closes that hole.
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body
from edgehs.errors import Codes, MatrixError


async def register(request: web.Request) -> web.Response:
    """POST /_matrix/appservice/v1/register — https://spec.matrix.org/v1.19/application-service-api/#registration

    The 2015 endpoint, since removed from the spec (see the note in that section).

    Body: ``{"url", "as_token", "namespaces": {"users"|"aliases"|"rooms": [{"regex",
    "exclusive"}]}}`` plus, optionally, any other registration field (``id``,
    ``sender_localpart``, ``rate_limited``, ``protocols``, ``receive_ephemeral``).
    Answers ``{"hs_token"}``.
    """
    who = await requester(request)
    if who.room_id is not None:
        raise MatrixError(403, Codes.FORBIDDEN, "This token may only be used in one room")
    registrations = hs(request).as_registrations
    await registrations.require_admin(who.user_id)
    body = await json_body(request, allow_empty=False)
    service = await registrations.register_legacy(body)
    return web.json_response({"hs_token": service.hs_token})
