"""OpenID: short-lived tokens that prove a user's identity to a third party.

https://spec.matrix.org/v1.19/client-server-api/#openid
https://spec.matrix.org/v1.19/server-server-api/#openid

A client asks for a token (``POST /user/{userId}/openid/request_token``) and hands it to a
service (an Element Call focus, a widget, an integration manager), which asks this server's
``GET /_matrix/federation/v1/openid/userinfo`` whom it belongs to. The token proves nothing
else: it is not an access token and cannot call any other endpoint.

Tokens live in memory only, not in the database: they are worth an hour at most, and an SD card
is spared a write (and a later delete) for each one. A restart therefore invalidates every
token issued before it; the client simply asks for a new one, as it does when one expires.
Expired tokens are dropped whenever a token is issued or looked up, so the table never holds
more than an hour's worth, and never more than ``MAX_TOKENS`` (the oldest go first).
"""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgehs.types import JsonDict

# How long a token is valid, in seconds (Synapse's default, and the spec's example).
TOKEN_LIFETIME_S = 3600
# At most this many live tokens (about 100 bytes each); a client asking in a loop pushes out the
# oldest tokens rather than the server's memory.
MAX_TOKENS = 10_000


@dataclass(frozen=True)
class _Grant:
    user_id: str
    expires_at: float  # clock() seconds


class OpenIdService:
    def __init__(self, server_name: str, lifetime_s: int = TOKEN_LIFETIME_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.server_name = server_name
        self.lifetime_s = lifetime_s
        self.clock = clock
        self._grants: dict[str, _Grant] = {}

    def _expire(self) -> None:
        # Every grant has the same lifetime, so insertion order is expiry order: drop from the
        # front until the first live one.
        now = self.clock()
        while self._grants:
            token, grant = next(iter(self._grants.items()))
            if grant.expires_at > now and len(self._grants) <= MAX_TOKENS:
                break
            del self._grants[token]

    def issue(self, user_id: str) -> JsonDict:
        """A new token for ``user_id``: the body of the request_token response."""
        token = secrets.token_urlsafe(32)
        self._grants[token] = _Grant(user_id, self.clock() + self.lifetime_s)
        self._expire()
        return {"access_token": token, "token_type": "Bearer",
                "matrix_server_name": self.server_name, "expires_in": self.lifetime_s}

    def user_for(self, token: str) -> str | None:
        """The user a valid token was issued to; None when it is unknown or has expired."""
        self._expire()
        grant = self._grants.get(token)
        return grant.user_id if grant is not None else None

    def __len__(self) -> int:
        return len(self._grants)
