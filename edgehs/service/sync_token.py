"""The /sync token (``since`` / ``next_batch``).

https://spec.matrix.org/v1.19/client-server-api/#syncing

The token is ``s{stream position}_{typing serial}_{to-device position}_{presence serial}``: one
integer orders events, account data and receipts; typing, which lives in memory, has its own small
counter; the to-device stream (``store.to_device``) its own position, left out while it and the
presence serial are 0 (so tokens of the older two-part form still parse, as "no to-device message
acknowledged"); presence (in memory, ``service.presence``) its serial, left out while 0.
"""

import re
from dataclasses import dataclass

from edgehs.errors import Codes, MatrixError


@dataclass(frozen=True)
class SyncToken:
    position: int
    typing: int
    to_device: int = 0
    presence: int = 0

    @classmethod
    def parse(cls, text: str) -> "SyncToken":
        try:
            parts = [int(p) for p in text.removeprefix("s").split("_")]
            if len(parts) not in (2, 3, 4):
                raise ValueError("a sync token has two, three or four parts")
            return cls(*parts)
        except ValueError as exc:
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid sync token {text!r}") from exc

    def __str__(self) -> str:
        to_device = f"_{self.to_device}" if self.to_device or self.presence else ""
        presence = f"_{self.presence}" if self.presence else ""
        return f"s{self.position}_{self.typing}{to_device}{presence}"


_TOPO = re.compile(r"t(-?\d+)-(-?\d+)")


@dataclass(frozen=True)
class TopoToken:
    """A place in one room's topological order, ``t{depth}-{stream position}``: the gap just
    after the event at (depth, stream position). /messages and /context return these; being
    data, not memory, they stay valid across restarts.

    https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidmessages
    """

    depth: int
    stream: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.depth, self.stream)

    def __str__(self) -> str:
        return f"t{self.depth}-{self.stream}"


def parse_room_token(text: str) -> "SyncToken | TopoToken":
    """A /messages, /context or /relations ``from``/``to``: a topological token, or a /sync
    token (``next_batch``, ``prev_batch``)."""
    if text.startswith("t"):
        match = _TOPO.fullmatch(text)
        if match is None:
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid pagination token {text!r}")
        return TopoToken(int(match[1]), int(match[2]))
    token = SyncToken.parse(text)
    if min(token.position, token.typing, token.to_device, token.presence) < 0:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid pagination token {text!r}")
    return token
