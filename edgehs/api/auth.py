"""Who is asking: access tokens from the Authorization header or ?access_token=.

https://spec.matrix.org/v1.19/client-server-api/#using-access-tokens
"""

from dataclasses import dataclass

from aiohttp import web

from edgehs.api.keys import hs
from edgehs.errors import Codes, MatrixError


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str | None
    token: str
    room_id: str | None = None  # set for device tokens limited to one room

    def check_room(self, room_id: str) -> None:
        if self.room_id is not None and self.room_id != room_id:
            raise MatrixError(403, Codes.FORBIDDEN, "This token may only be used in one room")


def get_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError(401, Codes.MISSING_TOKEN, "Authorization header must be Bearer")
        return token.strip()
    return request.query.get("access_token")


async def requester(request: web.Request) -> Requester:
    """The authenticated requester or 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN."""
    token = get_token(request)
    if not token:
        raise MatrixError(401, Codes.MISSING_TOKEN, "Missing access token")
    info = await hs(request).users.validate_token(token)
    return Requester(info.user_id, info.device_id, token, info.room_id)
