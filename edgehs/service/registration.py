"""What a registration's user-interactive authentication session remembers.

https://spec.matrix.org/v1.19/client-server-api/#user-interactive-authentication-api
https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3register

- The parameters of the request that started the session (username, password, device_id,
  initial_device_display_name, inhibit_login, ...): a later request of the session that
  carries nothing but ``auth`` registers with them.
- The user the session registered. "Completed stages cannot be retried by clients, therefore
  servers must return ... the result of the API call if all stages were completed when a client
  retries a stage": a retry of a completed session answers for the same user again.

Sessions live in memory for :data:`SESSION_LIFETIME_S` (a restart forgets them; the client
then starts a new one); at most :data:`MAX_SESSIONS` are kept, the oldest dropped first. A
session id is a secret: whoever holds a completed one may log in as its user until it expires.
"""

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from edgehs.types import JsonDict

SESSION_LIFETIME_S = 3600.0
MAX_SESSIONS = 10_000


@dataclass
class RegistrationSession:
    session_id: str
    params: JsonDict
    started: float
    user_id: str | None = None  # set once the session has registered its user
    # Held while the session registers, so concurrent retries register one user, not two.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RegistrationSessions:
    """The open registration sessions, by id."""

    def __init__(self, lifetime_s: float = SESSION_LIFETIME_S,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self._sessions: OrderedDict[str, RegistrationSession] = OrderedDict()
        self._lifetime = lifetime_s
        self._max = max_sessions

    def start(self, params: JsonDict) -> RegistrationSession:
        """A new session remembering ``params`` (the request body without ``auth``)."""
        self._expire()
        while len(self._sessions) >= self._max:
            self._sessions.popitem(last=False)
        session = RegistrationSession(secrets.token_urlsafe(18), dict(params), time.monotonic())
        self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str) -> RegistrationSession | None:
        self._expire()
        return self._sessions.get(session_id)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self._lifetime
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.started >= cutoff:
                break
            self._sessions.popitem(last=False)
