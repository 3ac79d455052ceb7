"""Per-connection state of simplified sliding sync, kept in memory only.

A connection is (user, device, ``conn_id``). Each response gets a new ``pos``; the state behind
it says what the client has been told: the stream positions it has seen, and for every room
ever sent on the connection the position it was last brought up to and the state events it
holds. A later request names a ``pos``; the response is then incremental against that state.

Nothing touches the disk (SD cards): after a restart every ``pos`` is unknown, the client gets
400 M_UNKNOWN_POS and starts the connection again. Per connection only the ``pos`` the client
last used and the newest are kept (a client retrying a request that timed out on its side
sends the older one again, and an abandoned long-poll may still finish after the client
moved on), a few of the newest besides; connections are evicted least recently used beyond a
bound.
"""

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from edgehs.errors import Codes, MatrixError
from edgehs.service.sliding_sync.request import RoomConfig
from edgehs.types import StateKey

MAX_CONNECTIONS = 500
MAX_CONNECTIONS_PER_DEVICE = 10
MAX_POSITIONS = 4  # kept per connection, besides the one the request used


@dataclass(frozen=True)
class RoomSent:
    """What a connection has been told about one room."""

    position: int  # timeline events up to this stream position were sent (or skipped)
    state: dict[StateKey, str]  # required_state entries sent: (type, state_key) -> event id
    membership: str  # the user's membership when last sent
    timeline_limit: int = 0  # the largest timeline_limit the room was sent with


@dataclass(frozen=True)
class ConnState:
    position: int  # the event / account data / receipt stream position
    typing: int  # the typing serial
    rooms: dict[str, RoomSent] = field(default_factory=dict)
    list_counts: dict[str, int] = field(default_factory=dict)
    # Room subscriptions stay until ``unsubscribe_rooms`` names them: matrix-js-sdk sends a
    # subscription once; clients that resend theirs every time lose nothing by it.
    subscriptions: dict[str, RoomConfig] = field(default_factory=dict)


ConnKey = tuple[str, str, str]  # (user, device, conn_id)


@dataclass
class _Connection:
    states: "OrderedDict[str, ConnState]" = field(default_factory=OrderedDict)


class ConnectionStore:
    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self.max_connections = max_connections
        self._boot = secrets.token_hex(3)  # a pos from another run of the server is unknown
        self._counter = 0
        self._conns: OrderedDict[ConnKey, _Connection] = OrderedDict()

    def get(self, key: ConnKey, pos: str | None) -> ConnState | None:
        """The state behind ``pos`` (None without a pos: a new connection), or 400
        M_UNKNOWN_POS when the server does not know it (expired, restarted, another
        connection's)."""
        if pos is None:
            return None
        conn = self._conns.get(key)
        state = conn.states.get(pos) if conn is not None else None
        if conn is None or state is None:
            raise MatrixError(400, Codes.UNKNOWN_POS,
                              "Unknown position: start the sliding sync connection again")
        self._conns.move_to_end(key)
        return state

    def put(self, key: ConnKey, used: str | None, state: ConnState) -> str:
        """Remember ``state`` under a new pos (returned); keep ``used`` and the newest
        ``MAX_POSITIONS``. A request without ``used`` starts the connection afresh."""
        self._counter += 1
        pos = f"{self._boot}_{self._counter}"
        conn = self._conns.get(key)
        if conn is None or used is None:
            conn = self._conns[key] = _Connection()
        conn.states[pos] = state
        older = [p for p in conn.states if p not in (used, pos)]
        for old in older[:max(0, len(older) - MAX_POSITIONS + 1)]:
            del conn.states[old]
        self._conns.move_to_end(key)
        self._evict(key)
        return pos

    def _evict(self, key: ConnKey) -> None:
        same_device = [k for k in self._conns if k[:2] == key[:2]]
        for old in same_device[:-MAX_CONNECTIONS_PER_DEVICE]:
            del self._conns[old]
        while len(self._conns) > self.max_connections:
            self._conns.popitem(last=False)

    def __len__(self) -> int:
        return len(self._conns)
