"""Profiles: the whole profile and single fields (displayname, avatar_url, m.tz, custom keys).

https://spec.matrix.org/v1.19/client-server-api/#profiles

Since v1.16 ``/profile/{userId}/displayname`` and ``/avatar_url`` are two cases of the generic
``/profile/{userId}/{keyName}`` endpoints, so one set of handlers serves them all.
"""

from aiohttp import web

from edgehs.api.auth import rate_limit, requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body
from edgehs.errors import Codes, MatrixError


async def get_profile(request: web.Request) -> web.Response:
    """GET /profile/{userId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3profileuserid"""
    profile = await hs(request).profile.get_profile(request.match_info["userId"])
    return web.json_response(profile)


async def get_profile_field(request: web.Request) -> web.Response:
    """GET /profile/{userId}/{keyName} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3profileuseridkeyname"""
    key = request.match_info["keyName"]
    value = await hs(request).profile.get_field(request.match_info["userId"], key)
    return web.json_response({key: value})


async def put_profile_field(request: web.Request) -> web.Response:
    """PUT /profile/{userId}/{keyName} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3profileuseridkeyname"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    key = request.match_info["keyName"]
    if key not in body:
        raise MatrixError(400, Codes.MISSING_PARAM, f"The body must contain {key!r}")
    server = hs(request)
    rate_limit(request, who)
    await server.profile.set_field(who.user_id, request.match_info["userId"], key, body[key])
    return web.json_response({})


async def delete_profile_field(request: web.Request) -> web.Response:
    """DELETE /profile/{userId}/{keyName} — https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3profileuseridkeyname"""
    who = await requester(request)
    server = hs(request)
    rate_limit(request, who)
    await server.profile.delete_field(who.user_id, request.match_info["userId"],
                                      request.match_info["keyName"])
    return web.json_response({})
