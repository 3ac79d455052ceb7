"""User-interactive authentication for sensitive account operations.

https://spec.matrix.org/v1.19/client-server-api/#user-interactive-authentication-api
"""

import secrets

from aiohttp import web

from edgehs.api.auth import Requester
from edgehs.api.keys import hs
from edgehs.errors import Codes, MatrixError
from edgehs.types import JsonDict


def uia_challenge(flows: list[list[str]], session: str | None = None,
                  error: tuple[str, str] | None = None) -> MatrixError:
    """The 401 that tells the client which stages to complete."""
    extra: JsonDict = {
        "flows": [{"stages": f} for f in flows],
        "params": {},
        "session": session or secrets.token_urlsafe(16),
    }
    errcode, msg = error or (Codes.UNAUTHORIZED, "Additional authentication is required")
    return MatrixError(401, Codes(errcode), msg, **extra)


async def require_password(request: web.Request, who: Requester, body: JsonDict) -> None:
    """Pass only when ``body.auth`` proves the requester's password (m.login.password)."""
    auth = body.get("auth")
    if not isinstance(auth, dict):
        raise uia_challenge([["m.login.password"]])
    session = auth.get("session") if isinstance(auth.get("session"), str) else None
    if auth.get("type") != "m.login.password":
        raise uia_challenge([["m.login.password"]], session,
                            (Codes.UNRECOGNIZED, "Only m.login.password is supported here"))
    identifier = auth.get("identifier") or {}
    user = identifier.get("user") if isinstance(identifier, dict) else None
    user = user or auth.get("user")
    if user is not None and user not in (who.user_id, who.user_id[1:].split(":")[0]):
        raise uia_challenge([["m.login.password"]], session,
                            (Codes.FORBIDDEN, "You can only authenticate as yourself"))
    password = auth.get("password")
    if not isinstance(password, str) or not await hs(request).users.check_login(
        who.user_id, password
    ):
        raise uia_challenge([["m.login.password"]], session,
                            (Codes.FORBIDDEN, "Invalid password"))
