"""/sync and the filter API.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync
https://spec.matrix.org/v1.19/client-server-api/#filtering
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body, parse_json, query_bool, query_int
from edgehs.errors import Codes, MatrixError
from edgehs.service.filters import EventFilter, SyncFilter, is_filter_id
from edgehs.service.sync import SyncToken


async def sync(request: web.Request) -> web.Response:
    """GET /sync — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync"""
    who = await requester(request)
    server = hs(request)
    since_raw = request.query.get("since")
    since = SyncToken.parse(since_raw) if since_raw else None
    if since is not None and (since.position > server.notifier.position
                              or since.to_device > server.notifier.to_device_position):
        raise MatrixError(400, Codes.INVALID_PARAM, "The since token is from the future")
    timeout = query_int(request, "timeout", 0, maximum=server.config.max_sync_timeout_ms)
    raw_filter = request.query.get("filter")
    definition = None
    if raw_filter:
        if raw_filter.lstrip().startswith("{"):
            definition = parse_json(raw_filter, "filter")
        elif is_filter_id(raw_filter):
            definition = await server.filters.get(who.user_id, raw_filter)
            if definition is None:
                raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown filter {raw_filter}")
        else:
            raise MatrixError(400, Codes.INVALID_PARAM, "filter must be an id or a JSON object")
    flt = SyncFilter.parse(definition)
    set_presence = request.query.get("set_presence", "online")
    if set_presence not in ("online", "offline", "unavailable"):
        raise MatrixError(400, Codes.INVALID_PARAM,
                          "set_presence must be online, offline or unavailable")
    presence_filter = EventFilter.parse((definition or {}).get("presence"), "presence")
    result = await server.sync.sync(
        who.user_id, who.device_id, since, flt, timeout, query_bool(request, "full_state"),
        set_presence=set_presence, presence_filter=presence_filter,
    )
    return web.json_response(result)


async def create_filter(request: web.Request) -> web.Response:
    """POST /user/{userId}/filter — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3useruseridfilter"""
    who = await requester(request)
    if request.match_info["userId"] != who.user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "You can only create filters for yourself")
    body = await json_body(request, allow_empty=False)
    filter_id = await hs(request).filters.add(who.user_id, body)
    return web.json_response({"filter_id": filter_id})


async def get_filter(request: web.Request) -> web.Response:
    """GET /user/{userId}/filter/{filterId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3useruseridfilterfilterid"""
    who = await requester(request)
    if request.match_info["userId"] != who.user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "You can only read your own filters")
    definition = await hs(request).filters.get(who.user_id, request.match_info["filterId"])
    if definition is None:
        raise MatrixError(404, Codes.NOT_FOUND, "No such filter")
    return web.json_response(definition)

