"""Account management: whoami, password, deactivation, devices.

https://spec.matrix.org/v1.19/client-server-api/#account-registration-and-management
https://spec.matrix.org/v1.19/client-server-api/#device-management
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.client.uia import require_password
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body, require
from edgehs.errors import Codes, MatrixError
from edgehs.types import JsonDict


async def whoami(request: web.Request) -> web.Response:
    """GET /account/whoami — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3accountwhoami"""
    who = await requester(request)
    body: JsonDict = {"user_id": who.user_id, "is_guest": False}
    if who.device_id is not None:
        body["device_id"] = who.device_id
    return web.json_response(body)


async def change_password(request: web.Request) -> web.Response:
    """POST /account/password — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountpassword"""
    who = await requester(request)
    body = await json_body(request)
    await require_password(request, who, body, ("new_password", "logout_devices"))
    await hs(request).users.change_password(
        who.user_id, require(body, "new_password", str), who.device_id,
        logout_devices=bool(field(body, "logout_devices", bool, default=True)))
    return web.json_response({})


async def deactivate(request: web.Request) -> web.Response:
    """POST /account/deactivate — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountdeactivate

    Logging in again is then 403 M_USER_DEACTIVATED (see ``DeactivationService``)."""
    who = await requester(request)
    body = await json_body(request)
    erase = bool(field(body, "erase", bool, default=False))
    field(body, "id_server", str)
    await require_password(request, who, body, ("erase",))
    await hs(request).deactivation.deactivate(who.user_id, erase)
    return web.json_response({"id_server_unbind_result": "no-support"})


async def get_devices(request: web.Request) -> web.Response:
    """GET /devices — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3devices"""
    who = await requester(request)
    return web.json_response({"devices": await hs(request).devices.all(who.user_id)})


async def get_device(request: web.Request) -> web.Response:
    """GET /devices/{deviceId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3devicesdeviceid"""
    who = await requester(request)
    device_id = request.match_info["deviceId"]
    return web.json_response(await hs(request).devices.get(who.user_id, device_id))


async def put_device(request: web.Request) -> web.Response:
    """PUT /devices/{deviceId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3devicesdeviceid"""
    who = await requester(request)
    body = await json_body(request)
    name = field(body, "display_name", str)
    await hs(request).devices.rename(who.user_id, request.match_info["deviceId"], name)
    return web.json_response({})


async def delete_device(request: web.Request) -> web.Response:
    """DELETE /devices/{deviceId} — https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3devicesdeviceid"""
    who = await requester(request)
    body = await json_body(request)
    server = hs(request)
    device_id = request.match_info["deviceId"]
    await server.devices.get(who.user_id, device_id)  # 404 before asking for a password
    await require_password(request, who, body)  # bound to the path, which names the device
    await server.devices.delete(who.user_id, [device_id])  # its keys, pushers, inbox with it
    return web.json_response({})


async def delete_devices(request: web.Request) -> web.Response:
    """POST /delete_devices — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3delete_devices"""
    who = await requester(request)
    body = await json_body(request)
    devices = require(body, "devices", list)
    if not all(isinstance(d, str) for d in devices):
        raise MatrixError(400, Codes.BAD_JSON, "devices must be a list of device ids")
    await require_password(request, who, body, ("devices",))
    server = hs(request)
    await server.devices.delete(who.user_id, devices)
    return web.json_response({})
