"""Who may read what in a room.

https://spec.matrix.org/v1.19/client-server-api/#history-visibility

A current member sees the room's history ("shared" visibility, the default of every preset).
A user who left or was kicked/banned sees it up to the moment they left. Invited users see only
the stripped state of their invite. A world_readable room is readable by everyone.
"""

from edgehs.errors import Codes, MatrixError
from edgehs.store.events import EventStore
from edgehs.store.rooms import MemberStore
from edgehs.store.state import StateStore


class Visibility:
    def __init__(self, members: MemberStore, events: EventStore, state: StateStore) -> None:
        self.members = members
        self.events = events
        self.state = state

    async def readable_until(self, room_id: str, user_id: str) -> int | None:
        """The last stream position the user may read in the room (None: no access).
        A huge number stands for "everything, including the future"."""
        membership = await self.members.get_membership(room_id, user_id)
        if membership is not None and membership[0] == "join":
            return 2**62
        if await self._world_readable(room_id):
            return 2**62
        if membership is not None and membership[0] in ("leave", "ban"):
            ev = await self.events.get_event(membership[1])
            if ev is not None and await self._was_member_before(ev.event_id, user_id):
                return ev.stream_ordering
        return None

    async def _was_member_before(self, event_id: str, user_id: str) -> bool:
        before = await self.state.get_state_before(event_id)
        member_id = (before or {}).get(("m.room.member", user_id))
        if member_id is None:
            return False
        prev = await self.events.get_event(member_id)
        return prev is not None and prev.pdu["content"].get("membership") == "join"

    async def _world_readable(self, room_id: str) -> bool:
        ev_id = await self.state.get_current_state_event_id(
            room_id, ("m.room.history_visibility", "")
        )
        if ev_id is None:
            return False
        ev = await self.events.get_event(ev_id)
        return ev is not None and ev.pdu["content"].get("history_visibility") == "world_readable"

    async def require_readable(self, room_id: str, user_id: str) -> int:
        until = await self.readable_until(room_id, user_id)
        if until is None:
            raise MatrixError(403, Codes.FORBIDDEN, "You are not a member of this room")
        return until

    async def require_joined(self, room_id: str, user_id: str) -> None:
        membership = await self.members.get_membership(room_id, user_id)
        if membership is None or membership[0] != "join":
            raise MatrixError(403, Codes.FORBIDDEN, f"{user_id} is not in room {room_id}")
