"""THE route table, grouped by spec section.

Client-Server endpoints are served under ``/_matrix/client/v3``, the ``r0`` alias and the 2015
``api/v1`` prefix that microcontrollers still post to; a few newer ones only under ``v1``.
"""

from collections.abc import Sequence

from aiohttp import web

from edgehs.api.client import account, login, rooms, send, sync, versions
from edgehs.api.middleware import error_response
from edgehs.errors import Codes

Route = tuple[str, str, web.RequestHandler]

CLIENT_PREFIXES = ("/_matrix/client/v3", "/_matrix/client/r0", "/_matrix/client/api/v1")

# Client-Server API, v3 (+ r0 + api/v1).
CLIENT_ROUTES: Sequence[Route] = (
    # Capabilities
    ("GET", "/capabilities", versions.capabilities),
    # Login, logout, registration, account
    ("GET", "/login", login.get_login_flows),
    ("POST", "/login", login.login),
    ("POST", "/logout", login.logout),
    ("POST", "/logout/all", login.logout_all),
    ("POST", "/register", login.register),
    ("GET", "/register/available", login.register_available),
    ("GET", "/account/whoami", account.whoami),
    ("POST", "/account/password", account.change_password),
    ("POST", "/account/deactivate", account.deactivate),
    # Devices
    ("GET", "/devices", account.get_devices),
    ("GET", "/devices/{deviceId}", account.get_device),
    ("PUT", "/devices/{deviceId}", account.put_device),
    ("DELETE", "/devices/{deviceId}", account.delete_device),
    ("POST", "/delete_devices", account.delete_devices),
    # Rooms and membership
    ("POST", "/createRoom", rooms.create_room),
    ("POST", "/join/{roomIdOrAlias}", rooms.join),
    ("POST", "/rooms/{roomId}/join", rooms.join),
    ("POST", "/rooms/{roomId}/invite", rooms.invite),
    ("POST", "/rooms/{roomId}/leave", rooms.leave),
    ("POST", "/rooms/{roomId}/forget", rooms.forget),
    ("POST", "/rooms/{roomId}/kick", rooms.kick),
    ("POST", "/rooms/{roomId}/ban", rooms.ban),
    ("POST", "/rooms/{roomId}/unban", rooms.unban),
    ("GET", "/joined_rooms", rooms.joined_rooms),
    ("GET", "/rooms/{roomId}/members", rooms.members),
    ("GET", "/rooms/{roomId}/joined_members", rooms.joined_members),
    # Events
    ("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", send.send_message),
    ("POST", "/rooms/{roomId}/send/{eventType}", send.send_message_legacy),
    ("PUT", "/rooms/{roomId}/state/{eventType}", send.put_state),
    ("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}", send.put_state),
    ("GET", "/rooms/{roomId}/state/{eventType}", send.get_state_event),
    ("GET", "/rooms/{roomId}/state/{eventType}/{stateKey}", send.get_state_event),
    ("GET", "/rooms/{roomId}/state", send.get_state),
    ("PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", send.redact),
    ("POST", "/rooms/{roomId}/redact/{eventId}", send.redact),
    ("GET", "/rooms/{roomId}/event/{eventId}", send.get_event),
    # Sync and filters
    ("GET", "/sync", sync.sync),
    ("POST", "/user/{userId}/filter", sync.create_filter),
    ("GET", "/user/{userId}/filter/{filterId}", sync.get_filter),
    # History: /messages, /context (helper: history)
    # Aliases, room directory, /publicRooms (helper: history)
    # Profile (helper: ephemeral)
    # Typing, receipts, read markers (helper: ephemeral)
    # Account data and tags (helper: ephemeral)
)

# Endpoints that exist only under /_matrix/client/v1.
CLIENT_V1_ROUTES: Sequence[Route] = (
    # Relations (helper: history)
    # Authenticated media (helper: media)
)

# The deprecated /_matrix/media/v3 (and r0) endpoints (helper: media).
MEDIA_ROUTES: Sequence[Route] = ()

# Unprefixed endpoints.
OTHER_ROUTES: Sequence[Route] = (
    ("GET", "/_matrix/client/versions", versions.versions),
    ("GET", "/.well-known/matrix/client", versions.well_known),
)


async def unrecognized(request: web.Request) -> web.Response:
    """Any other path: 404 M_UNRECOGNIZED, as the spec asks."""
    return error_response(404, Codes.UNRECOGNIZED, "Unrecognized request")


def add_routes(app: web.Application) -> None:
    table: list[web.RouteDef] = []
    for method, path, handler in CLIENT_ROUTES:
        table += [web.route(method, prefix + path, handler) for prefix in CLIENT_PREFIXES]
    for method, path, handler in CLIENT_V1_ROUTES:
        table.append(web.route(method, "/_matrix/client/v1" + path, handler))
    for method, path, handler in OTHER_ROUTES:
        table.append(web.route(method, path, handler))
    app.router.add_routes(table)
