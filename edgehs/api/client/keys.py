"""End-to-end encryption: key upload, query, claim and changes; cross-signing.

https://spec.matrix.org/v1.19/client-server-api/#end-to-end-encryption
https://spec.matrix.org/v1.19/client-server-api/#cross-signing
"""

from typing import Any

from aiohttp import web

from edgehs.api.auth import Requester, requester
from edgehs.api.client.uia import require_password
from edgehs.api.keys import hs
from edgehs.api.params import json_body
from edgehs.errors import Codes, MatrixError
from edgehs.service.keys import is_user_id
from edgehs.service.sync import SyncToken


def _device(who: Requester) -> str:
    if who.device_id is None:
        raise MatrixError(400, Codes.INVALID_PARAM, "Keys can only be uploaded for a device")
    return who.device_id


def _user_map(body: dict[str, Any], name: str, kind: type) -> dict[str, Any]:
    """``body[name]``: an object of user ids to values of ``kind``."""
    value = body.get(name)
    if value is None:
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameter: {name}")
    if not isinstance(value, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{name} must be an object")
    for user_id, item in value.items():
        if not is_user_id(user_id):
            raise MatrixError(400, Codes.INVALID_PARAM, f"{user_id!r} is not a user id")
        if not isinstance(item, kind):
            raise MatrixError(400, Codes.BAD_JSON, f"{name}[{user_id}] must be a {kind.__name__}")
    return value


async def upload_keys(request: web.Request) -> web.Response:
    """POST /keys/upload — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keysupload"""
    who = await requester(request)
    body = await json_body(request)
    counts = await hs(request).keys.upload(who.user_id, _device(who), body)
    return web.json_response({"one_time_key_counts": counts})


async def query_keys(request: web.Request) -> web.Response:
    """POST /keys/query — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keysquery"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    wanted = _user_map(body, "device_keys", list)
    for user_id, devices in wanted.items():
        if not all(isinstance(d, str) for d in devices):
            raise MatrixError(400, Codes.BAD_JSON, f"device_keys[{user_id}] must list device ids")
    return web.json_response(await hs(request).keys.query(who.user_id, wanted))


async def claim_keys(request: web.Request) -> web.Response:
    """POST /keys/claim — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keysclaim"""
    await requester(request)
    body = await json_body(request, allow_empty=False)
    wanted = _user_map(body, "one_time_keys", dict)
    for user_id, devices in wanted.items():
        if not all(isinstance(a, str) and a for a in devices.values()):
            raise MatrixError(400, Codes.BAD_JSON,
                              f"one_time_keys[{user_id}] must map device ids to algorithms")
    return web.json_response(await hs(request).keys.claim(wanted))


async def key_changes(request: web.Request) -> web.Response:
    """GET /keys/changes — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3keyschanges"""
    who = await requester(request)
    server = hs(request)
    raw_from = request.query.get("from")
    if not raw_from:
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: from")
    start = SyncToken.parse(raw_from).position
    raw_to = request.query.get("to")
    end = SyncToken.parse(raw_to).position if raw_to else server.notifier.position
    changed, left = await server.keys.device_list_changes(
        who.user_id, start, min(end, server.notifier.position))
    return web.json_response({"changed": changed, "left": left})


async def upload_cross_signing_keys(request: web.Request) -> web.Response:
    """POST /keys/device_signing/upload — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keysdevice_signingupload"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    server = hs(request)
    # A first upload, or one that repeats the stored keys, needs no user-interactive auth.
    if await server.cross_signing.needs_auth(who.user_id, body):
        await require_password(request, who, body,
                               ("master_key", "self_signing_key", "user_signing_key"))
    await server.cross_signing.upload_keys(who.user_id, await server.devices.ids(who.user_id),
                                           body)
    return web.json_response({})


async def upload_signatures(request: web.Request) -> web.Response:
    """POST /keys/signatures/upload — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keyssignaturesupload"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    return web.json_response(await hs(request).cross_signing.upload_signatures(who.user_id,
                                                                               body))
