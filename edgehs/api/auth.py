"""Who is asking: access tokens from the Authorization header or ?access_token=.

https://spec.matrix.org/v1.19/client-server-api/#using-access-tokens
https://spec.matrix.org/v1.19/application-service-api/#identity-assertion

An application service's ``as_token`` authenticates the service as its sender user
(``@sender_localpart:server``); ``?user_id=`` asserts a registered user of its user namespaces
instead, and ``?device_id=`` (v1.17) one of that user's devices.

A device token may be limited to one room. :func:`requester`, which every authenticated
handler calls first, checks the room a request names (``ROOM_PARAMS`` of the route's path, the
``room_id`` query parameter) against that scope, so no room route can forget it; ``json_body``
checks a ``room_id`` of the body the same way.
"""

from dataclasses import dataclass

from aiohttp import web

from edgehs.api.guest_access import check_guest_request
from edgehs.api.keys import ROOM_SCOPE, hs
from edgehs.errors import Codes, MatrixError
from edgehs.service.appservice.registry import AppService

# Query parameters of identity assertion; MSC3202's prefixed name is what mautrix sends.
DEVICE_ID_PARAMS = ("device_id", "org.matrix.msc3202.device_id")
AS_DEVICE_PREFIX = "AS:"
# Path parameters of the route table that name a room.
ROOM_PARAMS = ("roomId", "roomIdOrAlias")


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str | None
    token: str
    room_id: str | None = None  # set for device tokens limited to one room
    appservice_id: str | None = None  # set when the token is an application service's
    is_guest: bool = False  # a guest account (api/guest_access.py lists what it may call)

    def check_room(self, room_id: str) -> None:
        if self.room_id is not None and self.room_id != room_id:
            raise MatrixError(403, Codes.FORBIDDEN, "This token may only be used in one room")

    @property
    def txn_device(self) -> str | None:
        """The device a client transaction id is scoped to, as stored with the event: the
        device, or ``AS:{appservice id}`` for a service acting without one. The events
        table's unique (sender, device_id, txn_id) index never matches a NULL device, so
        without this a retried AS request would send its event twice."""
        if self.device_id is None and self.appservice_id is not None:
            return AS_DEVICE_PREFIX + self.appservice_id
        return self.device_id


def get_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError(401, Codes.MISSING_TOKEN, "Authorization header must be Bearer")
        return token.strip()
    return request.query.get("access_token")


def appservice_of(request: web.Request) -> AppService | None:
    """The application service whose ``as_token`` the request carries, if it does."""
    token = get_token(request)
    return hs(request).appservices.by_token(token) if token else None


async def requester(request: web.Request) -> Requester:
    """The authenticated requester or 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN."""
    token = get_token(request)
    if not token:
        raise MatrixError(401, Codes.MISSING_TOKEN, "Missing access token")
    server = hs(request)
    service = server.appservices.by_token(token)
    if service is not None:
        return await _asserted(request, service, token)
    info = await server.users.validate_token(token)
    if info.device_id is not None:
        await server.client_ips.seen(info.user_id, info.device_id, request.remote,
                                     request.headers.get("User-Agent"))
    if info.is_guest:
        check_guest_request(request)
    who = Requester(info.user_id, info.device_id, token, info.room_id, is_guest=info.is_guest)
    if who.room_id is not None:
        request[ROOM_SCOPE] = who.room_id
        await _check_room_scope(request, who)
    return who


async def _check_room_scope(request: web.Request, who: Requester) -> None:
    """403 M_FORBIDDEN when a token limited to one room is used on a request that names
    another: a room path parameter (an alias: the room it names) or ``?room_id=``."""
    named = [request.match_info.get(name) for name in ROOM_PARAMS]
    named.append(request.query.get("room_id") or None)
    for room in named:
        if room is None:
            continue
        if room.startswith("#"):
            room = await hs(request).rooms.resolve_room(room)
        who.check_room(room)


async def _asserted(request: web.Request, service: AppService, token: str) -> Requester:
    """The identity an application service asserts with ``?user_id=`` / ``?device_id=``.

    https://spec.matrix.org/v1.19/application-service-api/#identity-assertion"""
    server = hs(request)
    user_id = request.query.get("user_id") or service.sender
    if user_id != service.sender:
        if not service.owns_user(user_id):
            raise MatrixError(403, Codes.FORBIDDEN,
                              f"Application service cannot masquerade as {user_id}")
        if not await server.users.exists(user_id):
            raise MatrixError(403, Codes.FORBIDDEN,
                              f"Application service has not registered {user_id}")
    device_id = next((request.query[p] for p in DEVICE_ID_PARAMS if request.query.get(p)), None)
    if device_id is not None and not await server.devices.exists(user_id, device_id):
        raise MatrixError(400, Codes.UNKNOWN_DEVICE, f"{user_id} has no device {device_id}")
    return Requester(user_id, device_id, token, appservice_id=service.id)


def rate_limit(request: web.Request, who: Requester) -> None:
    """``rc_message`` for ``who``; skipped for services registered with
    ``rate_limited: false``."""
    server = hs(request)
    if who.appservice_id is not None:
        service = server.appservices.by_id(who.appservice_id)
        if service is not None and not service.rate_limited:
            return
    server.rc_message.check(who.user_id)
