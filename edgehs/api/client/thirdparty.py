"""Third-party networks: protocol metadata and lookups, answered by application services.

https://spec.matrix.org/v1.19/client-server-api/#third-party-networks

Each lookup is proxied to the services that list the protocol in their registration and the
answers are merged; a service that is down contributes nothing. A known protocol without
matches answers ``[]`` (as Synapse does); an unknown protocol is 404 M_NOT_FOUND.
"""

from aiohttp import web

from edgehs.api.auth import DEVICE_ID_PARAMS, Requester, requester
from edgehs.api.keys import hs
from edgehs.errors import Codes, MatrixError
from edgehs.service.appservice.queries import ThirdPartyKind


def _unknown_protocol(protocol: str) -> MatrixError:
    return MatrixError(404, Codes.NOT_FOUND, f"Unknown protocol {protocol!r}")


async def get_protocols(request: web.Request) -> web.Response:
    """GET /thirdparty/protocols — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3thirdpartyprotocols"""
    await requester(request)
    return web.json_response(await hs(request).as_queries.protocols())


async def get_protocol(request: web.Request) -> web.Response:
    """GET /thirdparty/protocol/{protocol} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3thirdpartyprotocolprotocol"""
    await requester(request)
    protocol = request.match_info["protocol"]
    found = (await hs(request).as_queries.protocols(only=protocol)).get(protocol)
    if found is None:
        raise _unknown_protocol(protocol)
    return web.json_response(found)


def _fields(request: web.Request, who: Requester) -> list[tuple[str, str]]:
    """The query's search fields, without the parameters that authenticate the request."""
    skip = {"access_token"}
    if who.appservice_id is not None:
        skip.update(("user_id", *DEVICE_ID_PARAMS))
    return [(k, v) for k, v in request.query.items() if k not in skip]


async def _lookup(request: web.Request, kind: ThirdPartyKind) -> web.Response:
    who = await requester(request)
    protocol = request.match_info["protocol"]
    queries = hs(request).as_queries
    if not queries.known_protocol(protocol):
        raise _unknown_protocol(protocol)
    return web.json_response(await queries.lookup(kind, protocol, _fields(request, who)))


async def get_location_by_protocol(request: web.Request) -> web.Response:
    """GET /thirdparty/location/{protocol} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3thirdpartylocationprotocol"""
    return await _lookup(request, "location")


async def get_user_by_protocol(request: web.Request) -> web.Response:
    """GET /thirdparty/user/{protocol} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3thirdpartyuserprotocol"""
    return await _lookup(request, "user")


def _required(request: web.Request, name: str, sigil: str, what: str) -> str:
    value = request.query.get(name)
    if not value:
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameter: {name}")
    if not value.startswith(sigil) or ":" not in value:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be a {what}")
    return value


async def get_location_by_alias(request: web.Request) -> web.Response:
    """GET /thirdparty/location — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3thirdpartylocation"""
    await requester(request)
    alias = _required(request, "alias", "#", "room alias")
    return web.json_response(await hs(request).as_queries.reverse_lookup("location", alias))


async def get_user_by_id(request: web.Request) -> web.Response:
    """GET /thirdparty/user — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3thirdpartyuser"""
    await requester(request)
    user_id = _required(request, "userid", "@", "user id")
    return web.json_response(await hs(request).as_queries.reverse_lookup("user", user_id))
