"""The user directory and mutual rooms.

https://spec.matrix.org/v1.19/client-server-api/#user-directory
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body, require
from edgehs.errors import Codes, MatrixError
from edgehs.service.user_directory import DEFAULT_LIMIT, MAX_LIMIT


async def search_users(request: web.Request) -> web.Response:
    """POST /user_directory/search — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3user_directorysearch"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    term = require(body, "search_term", str)
    limit = field(body, "limit", int, default=DEFAULT_LIMIT)
    assert limit is not None
    if limit < 0:
        raise MatrixError(400, Codes.INVALID_PARAM, "limit must not be negative")
    result = await hs(request).user_directory.search(who.user_id, term, min(limit, MAX_LIMIT))
    return web.json_response(result)


async def mutual_rooms(request: web.Request) -> web.Response:
    """GET /mutual_rooms — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mutual_rooms

    MSC2666's unstable path is ``mutual_rooms_unstable``."""
    who = await requester(request)
    body = await hs(request).user_directory.mutual_rooms(
        who.user_id, request.query.get("user_id"), request.query.get("from"))
    return web.json_response(body)


async def mutual_rooms_unstable(request: web.Request) -> web.Response:
    """GET /_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms — https://github.com/matrix-org/matrix-spec-proposals/pull/2666

    The same list under MSC2666's names, which matrix-js-sdk pages with: ``batch_token`` in the
    query, ``next_batch_token`` in the answer."""
    who = await requester(request)
    body = await hs(request).user_directory.mutual_rooms(
        who.user_id, request.query.get("user_id"), request.query.get("batch_token"))
    if "next_batch" in body:
        body["next_batch_token"] = body.pop("next_batch")
    return web.json_response(body)
