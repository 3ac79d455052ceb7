"""Threads: the list of a room's thread roots.

https://spec.matrix.org/v1.19/client-server-api/#threading
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidthreads

Roots come newest reply first. The ``from``/``next_batch`` token is ``t{position}``: the stream
position of the newest reply of the last root returned; the next page holds threads whose newest
reply is older. Thread-aware receipts are in ``service.receipts`` and per-thread unread counts in
``service.push`` (``unread_thread_notifications`` in /sync).
"""

from edgehs.errors import Codes, MatrixError
from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.visibility import Visibility
from edgehs.store.events import EventStore
from edgehs.store.threads import ThreadStore
from edgehs.types import JsonDict

INCLUDE_VALUES = ("all", "participated")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
EVERYTHING = 2**62


def parse_thread_token(token: str | None) -> int:
    """The position a ``from`` token stands for (everything when None)."""
    if token is None:
        return EVERYTHING
    if 1 < len(token) <= 20 and token[0] == "t" and token[1:].isdigit():
        return min(int(token[1:]), EVERYTHING)
    raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown pagination token {token!r}")


class ThreadService:
    def __init__(self, store: ThreadStore, events: EventStore, visibility: Visibility,
                 formatter: ClientEventFormatter) -> None:
        self.store = store
        self.events = events
        self.visibility = visibility
        self.formatter = formatter

    async def list_threads(self, room_id: str, user_id: str, *, include: str,
                           from_token: str | None, limit: int) -> JsonDict:
        """GET /rooms/{roomId}/threads: thread roots with their bundled aggregations."""
        if include not in INCLUDE_VALUES:
            raise MatrixError(400, Codes.INVALID_PARAM, "include must be 'all' or 'participated'")
        if limit < 1:
            raise MatrixError(400, Codes.INVALID_PARAM, "limit must be greater than zero")
        before = parse_thread_token(from_token)
        until = await self.visibility.readable_until(room_id, user_id)
        if until is None:
            raise MatrixError(403, Codes.FORBIDDEN, "You are not allowed to view this room")
        limit = min(limit, MAX_LIMIT)
        roots = await self.store.get_thread_roots(
            room_id, until=until, before=before, limit=limit,
            participant=user_id if include == "participated" else None,
        )
        loaded = await self.events.get_events(r.root_id for r in roots)
        # History visibility: a root the user may not see is left out (next_batch still
        # follows the unfiltered page, so paging goes on past it).
        shown = await self.visibility.filter_events(
            user_id, [loaded[r.root_id] for r in roots if r.root_id in loaded])
        chunk = await self.formatter.format(shown, user_id)
        body: JsonDict = {"chunk": chunk}
        if len(roots) == limit:
            body["next_batch"] = f"t{roots[-1].latest}"
        return body
