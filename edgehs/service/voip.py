"""TURN credentials for VoIP clients.

https://spec.matrix.org/v1.19/client-server-api/#voice-over-ip

With a shared secret (coturn's ``use-auth-secret`` / ``static-auth-secret``, the "TURN REST
API" convention) the credentials are time-limited: the username is
``"{expiry unix seconds}:{user id}"`` and the password ``base64(HMAC-SHA1(secret, username))``,
which coturn recomputes and checks without asking us. Otherwise a static username and password
are handed out as configured, and with no TURN URIs configured there is nothing to hand out.
"""

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

from edgehs.types import JsonDict


def turn_password(secret: str, username: str) -> str:
    """coturn's check for use-auth-secret: base64 of HMAC-SHA1 over the username."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TurnService:
    def __init__(self, uris: tuple[str, ...], shared_secret: str | None,
                 username: str | None, password: str | None, lifetime_ms: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.uris = uris
        self.shared_secret = shared_secret
        self.username = username
        self.password = password
        self.lifetime_ms = lifetime_ms
        self.clock = clock

    def credentials(self, user_id: str) -> JsonDict:
        """The body of GET /voip/turnServer: {} when no TURN server is configured."""
        if not self.uris:
            return {}
        ttl = self.lifetime_ms // 1000
        if self.shared_secret:
            username = f"{int(self.clock()) + ttl}:{user_id}"
            password = turn_password(self.shared_secret, username)
        elif self.username and self.password:
            username, password = self.username, self.password
        else:
            return {}
        return {"username": username, "password": password, "uris": list(self.uris),
                "ttl": ttl}
