"""User-interactive authentication sessions, each bound to the operation that started it.

https://spec.matrix.org/v1.19/client-server-api/#user-interactive-authentication-api

A session is created by the first 401 of a request and remembers what that request was: the
user, the method, the path and a digest of the body fields that decide what the operation does
(the device ids to delete, the new password, the keys to upload...). A later request that
carries the session must be the same operation, or it is refused with 403: completing the
stages of a session started to delete device A cannot delete device B. Stages completed in a
session are kept with it, as are the parameters of its first request (registration reuses
them), until the session expires.

Sessions live in memory: they last minutes, and a client whose session was lost with a
restart starts a new one from the 401 it gets.
"""

import asyncio
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.canonical_json import encode_canonical_json
from edgehs.types import JsonDict

SESSION_LIFETIME_S = 15 * 60
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Operation:
    """What a request asks for, as far as a UIA session is concerned."""

    user_id: str | None  # None for registration (no user yet)
    method: str
    path: str
    digest: str  # sha256 of the canonical JSON of the fields that matter

    @classmethod
    def of(cls, user_id: str | None, method: str, path: str, body: JsonDict,
           fields: Iterable[str] = ()) -> "Operation":
        """The operation of a request; ``fields`` are the body keys that decide what it does
        (the path and method always do)."""
        chosen = {k: body[k] for k in sorted(fields) if k in body}
        digest = hashlib.sha256(encode_canonical_json(chosen)).hexdigest()
        return cls(user_id, method, path, digest)


@dataclass
class UiaSession:
    session_id: str
    operation: Operation
    expires: float
    params: JsonDict  # the first request's body without "auth"
    completed: set[str] = field(default_factory=set)
    result: JsonDict | None = None  # what the completed operation answered, for retries
    # Held while the operation runs, so concurrent retries of a session do it once.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class UiaSessions:
    def __init__(self, lifetime_s: float = SESSION_LIFETIME_S,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self.lifetime_s = lifetime_s
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, UiaSession] = OrderedDict()

    def start(self, operation: Operation, params: JsonDict) -> UiaSession:
        """A new session for ``operation``; the oldest one goes when there are too many."""
        self._expire()
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        session = UiaSession(secrets.token_urlsafe(18), operation,
                             time.monotonic() + self.lifetime_s,
                             {k: v for k, v in params.items() if k != "auth"})
        self._sessions[session.session_id] = session
        return session

    def resume(self, session_id: str, operation: Operation) -> UiaSession:
        """The session ``session_id`` for a request doing ``operation``.

        400 M_UNKNOWN for an unknown or expired session; 403 M_FORBIDDEN when the session was
        started by another user or for another operation."""
        self._expire()
        session = self._sessions.get(session_id)
        if session is None:
            raise MatrixError(400, Codes.UNKNOWN, "Unknown or expired authentication session")
        if session.operation.user_id != operation.user_id:
            raise MatrixError(403, Codes.FORBIDDEN,
                              "This authentication session belongs to another user")
        if session.operation != operation:
            raise MatrixError(403, Codes.FORBIDDEN,
                              "The requested operation changed during the authentication "
                              "session; start a new one")
        return session

    def _expire(self) -> None:
        now = time.monotonic()
        while self._sessions:
            first = next(iter(self._sessions.values()))
            if first.expires > now:
                break
            self._sessions.popitem(last=False)
