"""Login, logout, registration.

https://spec.matrix.org/v1.19/client-server-api/#login
https://spec.matrix.org/v1.19/client-server-api/#account-registration
https://spec.matrix.org/v1.19/application-service-api/#server-admin-style-permissions

Application services register and log in their users with ``m.login.application_service`` and
their ``as_token``; nobody else may register a user id in a service's exclusive namespace.
"""

from aiohttp import web

from edgehs.api.auth import get_token, requester
from edgehs.api.client.uia import uia_challenge, uia_session
from edgehs.api.keys import hs
from edgehs.api.params import field, json_body
from edgehs.errors import Codes, MatrixError
from edgehs.homeserver import HomeServer
from edgehs.service.appservice.registry import AppService
from edgehs.types import JsonDict

AS_LOGIN_TYPE = "m.login.application_service"


async def get_login_flows(request: web.Request) -> web.Response:
    """GET /login — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3login"""
    return web.json_response({"flows": [{"type": "m.login.password"}, {"type": AS_LOGIN_TYPE}]})


def _login_user(body: JsonDict, server_name: str, *, lower: bool = True) -> str:
    """The user id a login names. Password logins are case-insensitive (user ids are lower
    case); application services' users may have historical mixed-case ids, kept as given."""
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
    if lower:
        user = user.lower()
    return user if user.startswith("@") else f"@{user}:{server_name}"


def _appservice(request: web.Request) -> AppService:
    """The service whose as_token authenticates an ``m.login.application_service`` request."""
    token = get_token(request)
    if not token:
        raise MatrixError(401, Codes.MISSING_TOKEN,
                          f"{AS_LOGIN_TYPE} needs the application service's access token")
    service = hs(request).appservices.by_token(token)
    if service is None:
        raise MatrixError(401, Codes.UNKNOWN_TOKEN, "Not an application service token",
                          soft_logout=False)
    return service


async def login(request: web.Request) -> web.Response:
    """POST /login — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3login"""
    server = hs(request)
    body = await json_body(request)
    login_type = body.get("type")
    if login_type == AS_LOGIN_TYPE:
        service = _appservice(request)
        if service.rate_limited:
            server.rc_login.check(request.remote or "")
        user_id = _login_user(body, server.config.server_name, lower=False)
        if not service.owns_user(user_id):
            raise MatrixError(403, Codes.FORBIDDEN,
                              f"{user_id} is not in the application service's namespace")
        await server.users.require_active(user_id)
    elif login_type == "m.login.password":
        server.rc_login.check(request.remote or "")
        user_id = _login_user(body, server.config.server_name)
        password = field(body, "password", str, required=True)
        assert password is not None
        if await server.users.is_deactivated(user_id):
            raise MatrixError(403, Codes.USER_DEACTIVATED, "This account has been deactivated")
        if not await server.users.check_login(user_id, password):
            raise MatrixError(403, Codes.FORBIDDEN, "Invalid username or password")
    else:
        raise MatrixError(400, Codes.UNKNOWN, f"Unsupported login type {login_type!r}")
    token, device_id = await server.users.login(
        user_id, field(body, "device_id", str), field(body, "initial_device_display_name", str),
        ip=request.remote or None,
    )
    return web.json_response({
        "user_id": user_id, "access_token": token, "device_id": device_id,
        "home_server": server.config.server_name,
        "well_known": {"m.homeserver": {"base_url": server.config.base_url.rstrip("/")}},
    })


async def logout(request: web.Request) -> web.Response:
    """POST /logout — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3logout"""
    who = await requester(request)
    await hs(request).devices.log_out(who.user_id, who.device_id,
                                      appservice=who.appservice_id is not None)
    return web.json_response({})


async def logout_all(request: web.Request) -> web.Response:
    """POST /logout/all — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3logoutall"""
    who = await requester(request)
    server = hs(request)
    await server.devices.delete(who.user_id, None)
    return web.json_response({})


def _check_not_exclusive(server: HomeServer, user_id: str,
                         allowed: AppService | None = None) -> None:
    """400 M_EXCLUSIVE when another application service claims ``user_id`` exclusively."""
    owner = server.appservices.exclusive_user_owner(user_id)
    if owner is not None and (allowed is None or owner.id != allowed.id):
        raise MatrixError(400, Codes.EXCLUSIVE,
                          f"{user_id} is reserved by an application service")


async def _register_for_appservice(request: web.Request, server: HomeServer,
                                   body: JsonDict) -> str:
    """``m.login.application_service``: a user of the service's namespace, no password, even
    when open registration is off. The localpart may use the historical grammar (printable
    ASCII but ':', e.g. mautrix-go's mixed-case ids), which servers must accept; ordinary
    registration keeps the strict one.
    https://spec.matrix.org/v1.19/application-service-api/#server-admin-style-permissions
    https://spec.matrix.org/v1.19/appendices/#historical-user-ids"""
    service = _appservice(request)
    username = field(body, "username", str, required=True)
    assert username is not None
    localpart = server.users.validate_localpart(username, historical=True)
    user_id = server.users.user_id(localpart)
    if not service.owns_user(user_id):
        raise MatrixError(400, Codes.EXCLUSIVE,
                          f"{user_id} is not in the application service's user namespaces")
    _check_not_exclusive(server, user_id, service)
    owner = service.id if service.exclusive_user(user_id) else None
    return await server.users.register(localpart, None, appservice_id=owner, historical=True)


async def register(request: web.Request) -> web.Response:
    """POST /register — https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3register

    Open registration is guarded by a one-stage ``m.login.dummy`` flow whose session
    remembers the first request's parameters and, once complete, its user (see
    :mod:`edgehs.service.uia`)."""
    server = hs(request)
    kind = request.query.get("kind", "user")
    if kind not in ("user", "guest"):
        raise MatrixError(400, Codes.INVALID_PARAM, "kind must be user or guest")
    body = await json_body(request)
    if kind == "guest":
        return await _register_guest(request, server, body)
    if body.get("type") == AS_LOGIN_TYPE:
        _check_params(body)
        user_id = await _register_for_appservice(request, server, body)
        return await _registered(request, server, user_id, body)
    if not server.config.enable_registration:
        raise MatrixError(403, Codes.FORBIDDEN, "Registration is disabled on this server")
    auth = field(body, "auth", dict)
    params = {key: value for key, value in body.items() if key != "auth"}
    # The session remembers the first request's parameters and, once done, its user.
    session = uia_session(request, None, body)
    if session.result is not None:
        # All stages were completed: a retry gets the result again.
        return await _registered(request, server, str(session.result["user_id"]),
                                 session.params)
    if params:
        session.params = params
    params = session.params
    _check_params(params)
    upgrading = await _check_username(server, params)
    if auth is None or auth.get("type") != "m.login.dummy":
        raise uia_challenge([["m.login.dummy"]], session.session_id)
    server.rc_registration.check(request.remote or "")
    password = field(params, "password", str)
    if password is None:
        raise MatrixError(400, Codes.MISSING_PARAM, "A password is required")
    async with session.lock:
        if session.result is None:
            if upgrading is not None:
                await server.users.upgrade_guest(upgrading, password)
                user_id = upgrading
            else:
                user_id = await server.users.register(_requested_localpart(params), password)
            session.result = {"user_id": user_id}
    return await _registered(request, server, str(session.result["user_id"]), params)


async def _register_guest(request: web.Request, server: HomeServer,
                          body: JsonDict) -> web.Response:
    """``kind=guest``: no UIA; every body parameter but ``initial_device_display_name`` is
    ignored and the server picks the device id.
    https://spec.matrix.org/v1.19/client-server-api/#guest-access"""
    server.rc_registration.check(request.remote or "")
    user_id = await server.guests.register()
    name = body.get("initial_device_display_name")
    token, device_id = await server.users.login(
        user_id, None, name if isinstance(name, str) else None, ip=request.remote or None)
    return web.json_response({"user_id": user_id, "access_token": token, "device_id": device_id,
                              "home_server": server.config.server_name})


def _check_params(params: JsonDict) -> None:
    """The types of the registration parameters (400 M_BAD_JSON)."""
    for key, kind in (("username", str), ("password", str), ("device_id", str),
                      ("initial_device_display_name", str), ("inhibit_login", bool),
                      ("refresh_token", bool), ("guest_access_token", str)):
        field(params, key, kind)


def _requested_localpart(params: JsonDict) -> str | None:
    """The localpart a ``username`` asks for: lower-cased, the spec's "map the provided
    username onto a user_id in a logical manner" (logins are case-insensitive too)."""
    username = field(params, "username", str)
    return None if username is None else username.lower()


async def _check_username(server: HomeServer, params: JsonDict) -> str | None:
    """A requested user name must be valid, free and not reserved, before any stage. With
    ``guest_access_token`` it must name that guest, whose user id is returned: the guest
    becomes a full account (https://spec.matrix.org/v1.19/client-server-api/#guest-access)."""
    username = _requested_localpart(params)
    guest_token = field(params, "guest_access_token", str)
    if guest_token is not None and username is None:
        raise MatrixError(400, Codes.MISSING_PARAM,
                          "username is required to upgrade a guest account")
    if username is None:
        return None
    localpart = server.users.validate_localpart(username)
    _check_not_exclusive(server, server.users.user_id(localpart))
    if guest_token is not None:
        return await server.guests.upgrade_target(localpart, guest_token)
    if not await server.users.is_available(localpart):
        raise MatrixError(400, Codes.USER_IN_USE, "That user name is already taken")
    return None


async def _registered(request: web.Request, server: HomeServer, user_id: str,
                      params: JsonDict) -> web.Response:
    """The answer for a registered ``user_id``: logged in on a new (or the named) device
    unless ``inhibit_login``."""
    response: JsonDict = {"user_id": user_id, "home_server": server.config.server_name}
    if not field(params, "inhibit_login", bool, default=False):
        token, device_id = await server.users.login(
            user_id, field(params, "device_id", str),
            field(params, "initial_device_display_name", str), ip=request.remote or None,
        )
        response.update(access_token=token, device_id=device_id)
    return web.json_response(response)


async def register_available(request: web.Request) -> web.Response:
    """GET /register/available — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3registeravailable"""
    username = request.query.get("username")
    if not username:
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing username")
    server = hs(request)
    localpart = server.users.validate_localpart(username.lower())
    _check_not_exclusive(server, server.users.user_id(localpart))
    if not await server.users.is_available(localpart):
        raise MatrixError(400, Codes.USER_IN_USE, "That user name is already taken")
    return web.json_response({"available": True})
