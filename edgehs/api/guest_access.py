"""The endpoints a guest account may call; any other answers 403 M_GUEST_ACCESS_FORBIDDEN.

https://spec.matrix.org/v1.19/client-server-api/#client-behaviour-14

The spec's lists (retrieving events and media, sending events, account maintenance,
end-to-end encryption), plus what a guest needs to use them the way clients do: joining by
alias (``/join/{roomIdOrAlias}``, the same join), reading profiles and presence, typing,
receipts and read markers in the rooms it joined, sync filters, capabilities and logging out.
Paths are the route table's, without the client prefix.
"""

from collections.abc import Callable, Mapping

from aiohttp import web

from edgehs.errors import Codes, MatrixError

CLIENT_PREFIXES = ("/_matrix/client/v3", "/_matrix/client/r0", "/_matrix/client/api/v1",
                   "/_matrix/client/v1")

Check = Callable[[Mapping[str, str]], bool] | None


def _own_displayname(match: Mapping[str, str]) -> bool:
    return match.get("keyName") == "displayname"


GUEST_ROUTES: dict[tuple[str, str], Check] = {
    # Retrieving events and associated media
    ("GET", "/rooms/{roomId}/state"): None,
    ("GET", "/rooms/{roomId}/context/{eventId}"): None,
    ("GET", "/rooms/{roomId}/event/{eventId}"): None,
    ("GET", "/rooms/{roomId}/state/{eventType}"): None,
    ("GET", "/rooms/{roomId}/state/{eventType}/"): None,
    ("GET", "/rooms/{roomId}/state/{eventType}/{stateKey}"): None,
    ("GET", "/rooms/{roomId}/messages"): None,
    ("GET", "/rooms/{roomId}/members"): None,
    ("GET", "/rooms/{roomId}/initialSync"): None,
    ("GET", "/sync"): None,
    ("GET", "/events"): None,  # with room_id only: checked by the handler
    ("GET", "/events/{eventId}"): None,  # the deprecated form of /rooms/{roomId}/event/...
    ("GET", "/media/download/{serverName}/{mediaId}"): None,
    ("GET", "/media/download/{serverName}/{mediaId}/{fileName}"): None,
    ("GET", "/media/thumbnail/{serverName}/{mediaId}"): None,
    # Sending events
    ("POST", "/rooms/{roomId}/join"): None,
    ("POST", "/join/{roomIdOrAlias}"): None,
    ("POST", "/rooms/{roomId}/leave"): None,
    ("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}"): None,
    ("POST", "/rooms/{roomId}/send/{eventType}"): None,  # the api/v1 form of the same
    ("PUT", "/rooms/{roomId}/state/{eventType}"): None,
    ("PUT", "/rooms/{roomId}/state/{eventType}/"): None,
    ("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}"): None,
    ("PUT", "/sendToDevice/{eventType}/{txnId}"): None,
    ("PUT", "/rooms/{roomId}/typing/{userId}"): None,
    ("POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}"): None,
    ("POST", "/rooms/{roomId}/read_markers"): None,
    # Own account maintenance
    ("PUT", "/profile/{userId}/{keyName}"): _own_displayname,
    ("GET", "/profile/{userId}"): None,
    ("GET", "/profile/{userId}/{keyName}"): None,
    ("GET", "/presence/{userId}/status"): None,
    ("PUT", "/presence/{userId}/status"): None,
    ("GET", "/devices"): None,
    ("GET", "/devices/{deviceId}"): None,
    ("PUT", "/devices/{deviceId}"): None,
    ("GET", "/account/whoami"): None,
    ("GET", "/capabilities"): None,
    ("POST", "/user/{userId}/filter"): None,
    ("GET", "/user/{userId}/filter/{filterId}"): None,
    ("POST", "/logout"): None,
    ("POST", "/logout/all"): None,
    # End-to-end encryption
    ("POST", "/keys/upload"): None,
    ("POST", "/keys/query"): None,
    ("POST", "/keys/claim"): None,
}


def route_path(request: web.Request) -> str:
    """The matched route's path template without its client prefix."""
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    for prefix in CLIENT_PREFIXES:
        if path.startswith(prefix + "/"):
            return path[len(prefix):]
    return path


def check_guest_request(request: web.Request) -> None:
    """403 M_GUEST_ACCESS_FORBIDDEN unless a guest may make this request."""
    key = (request.method, route_path(request))
    if key in GUEST_ROUTES:
        check = GUEST_ROUTES[key]
        if check is None or check(request.match_info):
            return
    raise MatrixError(403, Codes.GUEST_ACCESS_FORBIDDEN,
                      "Guest accounts may not use this endpoint")
