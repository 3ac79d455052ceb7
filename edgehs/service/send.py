"""Sending events to a room as a client: messages, state, redactions.

https://spec.matrix.org/v1.19/client-server-api/#sending-events-to-a-room
https://spec.matrix.org/v1.19/client-server-api/#redactions

The rules of the client endpoints around the one write path (``EventService.send``): the
sender must be in the room, a redaction goes through /redact, identical state sent again is
a no-op, and a member event is the membership change the matching endpoint would make.
"""

from edgehs.errors import Codes, MatrixError
from edgehs.service.directory import DirectoryService
from edgehs.service.events import EventService
from edgehs.service.rooms import RoomService
from edgehs.service.visibility import Visibility
from edgehs.types import JsonDict


class SendService:
    def __init__(self, events: EventService, visibility: Visibility, rooms: RoomService,
                 directory: DirectoryService) -> None:
        self.events = events
        self.visibility = visibility
        self.rooms = rooms
        self.directory = directory

    async def _joined(self, room_id: str, user_id: str) -> None:
        """404 M_NOT_FOUND for an unknown room, 403 M_FORBIDDEN unless joined."""
        await self.events.room_version(room_id)
        await self.visibility.require_joined(room_id, user_id)

    async def message(self, room_id: str, sender: str, event_type: str, content: JsonDict,
                      txn_id: str | None, device_id: str | None) -> str:
        """PUT /rooms/{roomId}/send/{eventType}/{txnId}: the event id (that of the first
        event for a retried transaction).
        https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid"""
        if event_type == "m.room.redaction":
            raise MatrixError(400, Codes.INVALID_PARAM,
                              "Use the /redact endpoint to redact events")
        await self._joined(room_id, sender)
        stored = await self.events.send(room_id, sender, event_type, content, txn_id=txn_id,
                                        device_id=device_id)
        return stored.event_id

    async def state(self, room_id: str, sender: str, event_type: str, state_key: str,
                    content: JsonDict) -> str:
        """PUT /rooms/{roomId}/state/{eventType}/{stateKey}: the event id; the current one
        when the same sender sends the same content again.
        https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidstateeventtypestatekey"""
        await self.events.room_version(room_id)
        if event_type == "m.room.canonical_alias":
            await self.directory.check_canonical_alias(room_id, content)
        current = await self.events.current_state_event(room_id, (event_type, state_key))
        if current is not None and current["content"] == content and current["sender"] == sender:
            return str(current["event_id"])
        if event_type == "m.room.member":
            # A membership change (joining or leaving included) made as the matching endpoint
            # makes it: https://spec.matrix.org/v1.19/client-server-api/#mroommember
            return await self.rooms.set_member_state(room_id, sender, state_key, content)
        await self.visibility.require_joined(room_id, sender)
        stored = await self.events.send(room_id, sender, event_type, content, state_key)
        return stored.event_id

    async def redact(self, room_id: str, sender: str, event_id: str, reason: str | None,
                     txn_id: str | None, device_id: str | None) -> str:
        """PUT /rooms/{roomId}/redact/{eventId}/{txnId}: the redaction's event id; the auth
        rules and ``check_may_redact`` decide who may redact what.
        https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidredacteventidtxnid"""
        await self._joined(room_id, sender)
        content: JsonDict = {} if reason is None else {"reason": reason}
        stored = await self.events.send(room_id, sender, "m.room.redaction", content,
                                        txn_id=txn_id, device_id=device_id, redacts=event_id)
        return stored.event_id
