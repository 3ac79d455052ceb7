"""Login, logout, registration.

https://spec.matrix.org/v1.19/client-server-api/#login
https://spec.matrix.org/v1.19/client-server-api/#account-registration
"""

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.client.uia import uia_challenge
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body
from edgehs.errors import Codes, MatrixError
from edgehs.types import JsonDict


async def get_login_flows(request: web.Request) -> web.Response:
    """GET /login — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3login"""
    return web.json_response({"flows": [{"type": "m.login.password"}]})


def _login_user(body: JsonDict, server_name: str) -> str:
    identifier = body.get("identifier")
    user: object = None
    if identifier is not None:
        if not isinstance(identifier, dict):
            raise MatrixError(400, Codes.BAD_JSON, "identifier must be an object")
        if identifier.get("type") != "m.id.user":
            raise MatrixError(400, Codes.UNKNOWN, "Only m.id.user identifiers are supported")
        user = identifier.get("user")
    else:
        user = body.get("user")  # deprecated top-level form
    if user is None or user == "":
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing identifier.user")
    if not isinstance(user, str):
        raise MatrixError(400, Codes.BAD_JSON, "identifier.user must be a string")
    user = user.lower()
    return user if user.startswith("@") else f"@{user}:{server_name}"


async def login(request: web.Request) -> web.Response:
    """POST /login — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3login"""
    server = hs(request)
    server.rc_login.check(request.remote or "")
    body = await json_body(request)
    if body.get("type") != "m.login.password":
        raise MatrixError(400, Codes.UNKNOWN, f"Unsupported login type {body.get('type')!r}")
    user_id = _login_user(body, server.config.server_name)
    password = field(body, "password", str, required=True)
    assert password is not None
    if not await server.users.check_login(user_id, password):
        raise MatrixError(403, Codes.FORBIDDEN, "Invalid username or password")
    token, device_id = await server.users.login(
        user_id, field(body, "device_id", str), field(body, "initial_device_display_name", str)
    )
    return web.json_response({
        "user_id": user_id, "access_token": token, "device_id": device_id,
        "home_server": server.config.server_name,
        "well_known": {"m.homeserver": {"base_url": server.config.base_url.rstrip("/")}},
    })


async def logout(request: web.Request) -> web.Response:
    """POST /logout — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3logout"""
    who = await requester(request)
    server = hs(request)
    if who.device_id is None:
        await server.user_store.delete_devices(who.user_id, None)
    else:
        await server.user_store.delete_devices(who.user_id, [who.device_id])
    return web.json_response({})


async def logout_all(request: web.Request) -> web.Response:
    """POST /logout/all — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3logoutall"""
    who = await requester(request)
    await hs(request).user_store.delete_devices(who.user_id, None)
    return web.json_response({})


async def register(request: web.Request) -> web.Response:
    """POST /register — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3register"""
    server = hs(request)
    if request.query.get("kind", "user") == "guest":
        raise MatrixError(403, Codes.GUEST_ACCESS_FORBIDDEN, "Guest access is disabled")
    if request.query.get("kind", "user") != "user":
        raise MatrixError(400, Codes.INVALID_PARAM, "kind must be user or guest")
    body = await json_body(request)
    if not server.config.enable_registration:
        raise MatrixError(403, Codes.FORBIDDEN, "Registration is disabled on this server")
    username = field(body, "username", str)
    password = field(body, "password", str)
    inhibit_login = field(body, "inhibit_login", bool, default=False)
    device_id = field(body, "device_id", str)
    device_name = field(body, "initial_device_display_name", str)
    if username is not None:
        username = server.users.validate_localpart(username)
        if not await server.users.is_available(username):
            raise MatrixError(400, Codes.USER_IN_USE, "That user name is already taken")
    auth = body.get("auth")
    if not isinstance(auth, dict) or auth.get("type") != "m.login.dummy":
        session = auth.get("session") if isinstance(auth, dict) else None
        raise uia_challenge([["m.login.dummy"]], session if isinstance(session, str) else None)
    server.rc_registration.check(request.remote or "")
    if password is None:
        raise MatrixError(400, Codes.MISSING_PARAM, "A password is required")
    user_id = await server.users.register(username, password)
    response: JsonDict = {"user_id": user_id, "home_server": server.config.server_name}
    if not inhibit_login:
        token, device_id = await server.users.login(user_id, device_id, device_name)
        response.update(access_token=token, device_id=device_id)
    return web.json_response(response)


async def register_available(request: web.Request) -> web.Response:
    """GET /register/available — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3registeravailable"""
    username = request.query.get("username")
    if not username:
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing username")
    if not await hs(request).users.is_available(username):
        raise MatrixError(400, Codes.USER_IN_USE, "That user name is already taken")
    return web.json_response({"available": True})
