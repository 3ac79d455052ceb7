"""User-interactive authentication for sensitive account operations.

https://spec.matrix.org/v1.19/client-server-api/#user-interactive-authentication-api

Each 401 names a session bound to the request's operation (``service.uia``): the user, method,
path and the body ``fields`` the caller says decide what the request does.
"""

import re
from collections.abc import Iterable

from aiohttp import web

from edgehs.api.auth import Requester
from edgehs.api.keys import hs
from edgehs.errors import Codes, MatrixError
from edgehs.service.uia import Operation, UiaSession
from edgehs.types import JsonDict

PASSWORD = "m.login.password"
API_PREFIX = re.compile(r"^/_matrix/client/[^/]+")


def uia_challenge(flows: list[list[str]], session: str,
                  error: tuple[str, str] | None = None,
                  completed: Iterable[str] = ()) -> MatrixError:
    """The 401 that tells the client which stages to complete."""
    extra: JsonDict = {
        "flows": [{"stages": f} for f in flows],
        "params": {},
        "session": session,
    }
    extra["completed"] = sorted(completed)
    errcode, msg = error or (Codes.UNAUTHORIZED, "Additional authentication is required")
    return MatrixError(401, Codes(errcode), msg, **extra)


def uia_session(request: web.Request, user_id: str | None, body: JsonDict,
                fields: Iterable[str] = ()) -> UiaSession:
    """The session of this request: the one ``body.auth.session`` names, which must have been
    started for the same operation (else 403), or a new one bound to it."""
    sessions = hs(request).uia
    # the same operation whichever API version prefix (r0, v3, ...) a request uses
    path = API_PREFIX.sub("", request.path)
    operation = Operation.of(user_id, request.method, path, body, fields)
    auth = body.get("auth")
    session_id = auth.get("session") if isinstance(auth, dict) else None
    if session_id is None:
        return sessions.start(operation, body)
    if not isinstance(session_id, str):
        raise MatrixError(400, Codes.BAD_JSON, "auth.session must be a string")
    return sessions.resume(session_id, operation)


async def require_password(request: web.Request, who: Requester, body: JsonDict,
                           fields: Iterable[str] = ()) -> None:
    """Pass only when ``body.auth`` proves the requester's password (m.login.password) in a
    session bound to this operation (``fields``: the body keys that define it).

    Application services act without it: the spec exempts them from the device management and
    cross-signing stages (v1.17), and Synapse lets them deactivate their users the same way."""
    if who.appservice_id is not None:
        return
    session = uia_session(request, who.user_id, body, fields)
    if PASSWORD in session.completed:
        return
    auth = body.get("auth")
    if not isinstance(auth, dict) or "type" not in auth:
        raise uia_challenge([[PASSWORD]], session.session_id)
    if auth.get("type") != PASSWORD:
        raise uia_challenge([[PASSWORD]], session.session_id,
                            (Codes.UNRECOGNIZED, "Only m.login.password is supported here"))
    identifier = auth.get("identifier") or {}
    user = identifier.get("user") if isinstance(identifier, dict) else None
    user = user or auth.get("user")
    if user is not None and user not in (who.user_id, who.user_id[1:].split(":")[0]):
        raise MatrixError(403, Codes.FORBIDDEN, "You can only authenticate as yourself")
    password = auth.get("password")
    if not isinstance(password, str) or not await hs(request).users.check_login(
        who.user_id, password
    ):
        raise uia_challenge([[PASSWORD]], session.session_id,
                            (Codes.FORBIDDEN, "Invalid password"), session.completed)
    session.completed.add(PASSWORD)
