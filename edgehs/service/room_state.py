"""Reading a room: its state, one state event, one event, its members.

https://spec.matrix.org/v1.19/client-server-api/#getting-events-for-a-room

What a user may read follows history visibility (``Visibility``): a member reads the current
state; a former member the state as it was when they left.
"""

from edgehs.errors import Codes, MatrixError
from edgehs.service.events import EventService
from edgehs.service.visibility import EVERYTHING, Visibility
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.state import StateStore
from edgehs.types import JsonDict, StateKey, StateMap

MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


class RoomStateService:
    def __init__(self, events: EventService, event_store: EventStore, state: StateStore,
                 visibility: Visibility) -> None:
        self.events = events  # room_version: 404 for unknown rooms
        self.event_store = event_store
        self.state = state
        self.visibility = visibility

    async def state_event(self, room_id: str, user_id: str, key: StateKey) -> StoredEvent:
        """GET /rooms/{roomId}/state/{eventType}/{stateKey}: the event of ``key`` in the state
        the user may read (404 M_NOT_FOUND without one).
        https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidstateeventtypestatekey"""
        await self.events.room_version(room_id)
        until = await self.visibility.require_readable(room_id, user_id)
        if until >= EVERYTHING:
            event_id = await self.state.get_current_state_event_id(room_id, key)
        else:
            event_id = (await self._state_ids_at(room_id, until)).get(key)
        ev = None if event_id is None else await self.event_store.get_event(event_id)
        if ev is None:
            raise MatrixError(404, Codes.NOT_FOUND, "No such state event")
        return ev

    async def state_events(self, room_id: str, user_id: str) -> list[StoredEvent]:
        """GET /rooms/{roomId}/state: the state the user may read.
        https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidstate"""
        await self.events.room_version(room_id)
        until = await self.visibility.require_readable(room_id, user_id)
        state = await self._state_ids_at(room_id, until)
        return list((await self.event_store.get_events(state.values())).values())

    async def _state_ids_at(self, room_id: str, until: int) -> StateMap:
        """The current state, or the state a former member last saw (after their leave)."""
        if until >= EVERYTHING:
            return await self.state.get_current_state_ids(room_id)
        events = await self.event_store.get_room_events(room_id, before=until, limit=1,
                                                        backwards=True)
        if not events:
            return {}
        return await self.state.get_state_after(events[0].event_id) or {}

    async def event(self, room_id: str, user_id: str, event_id: str) -> StoredEvent:
        """GET /rooms/{roomId}/event/{eventId}: 404 M_NOT_FOUND unless the event is in the
        room and visible to the user.
        https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomideventeventid"""
        until = await self.visibility.readable_until(room_id, user_id)
        ev = await self.event_store.get_event(event_id)
        if (until is None or ev is None or ev.room_id != room_id
                or ev.stream_ordering > until
                or not await self.visibility.is_visible(user_id, ev)):
            raise MatrixError(404, Codes.NOT_FOUND, "Event not found")
        return ev

    async def members(self, room_id: str, user_id: str, membership: str | None = None,
                      not_membership: str | None = None) -> list[StoredEvent]:
        """GET /rooms/{roomId}/members: the current member events, those of ``membership``
        only or all but ``not_membership``.
        https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidmembers"""
        await self.events.room_version(room_id)
        await self.visibility.require_readable(room_id, user_id)
        for name, value in (("membership", membership), ("not_membership", not_membership)):
            if value is not None and value not in MEMBERSHIPS:
                raise MatrixError(400, Codes.INVALID_PARAM,
                                  f"{name} must be one of {', '.join(MEMBERSHIPS)}")
        return [
            ev for ev in await self._member_events(room_id)
            if (membership is None or ev.pdu["content"].get("membership") == membership)
            and (not_membership is None
                 or ev.pdu["content"].get("membership") != not_membership)
        ]

    async def joined_members(self, room_id: str, user_id: str) -> JsonDict:
        """GET /rooms/{roomId}/joined_members, for members only: user id -> display name and
        avatar. https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidjoined_members"""
        await self.events.room_version(room_id)
        await self.visibility.require_joined(room_id, user_id)
        joined: JsonDict = {}
        for ev in await self._member_events(room_id):
            content = ev.pdu["content"]
            if content.get("membership") == "join":
                joined[ev.pdu["state_key"]] = {
                    key: content[src] for key, src in (("display_name", "displayname"),
                                                       ("avatar_url", "avatar_url"))
                    if isinstance(content.get(src), str)
                }
        return joined

    async def _member_events(self, room_id: str) -> list[StoredEvent]:
        state = await self.state.get_current_state_ids(room_id)
        ids = [e for (t, _), e in state.items() if t == "m.room.member"]
        return list((await self.event_store.get_events(ids)).values())
