"""Events as clients see them: the client format with ``unsigned`` filled in.

https://spec.matrix.org/v1.19/client-server-api/#room-event-format
"""

import time
from collections.abc import Iterable

from edgehs.protocol.events import redact, strip_for_client
from edgehs.protocol.room_versions import DEFAULT_ROOM_VERSION, get_room_version
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.rooms import RoomStore
from edgehs.types import JsonDict


class ClientEventFormatter:
    def __init__(self, events: EventStore, rooms: RoomStore) -> None:
        self.events = events
        self.rooms = rooms

    async def format(
        self, stored: Iterable[StoredEvent], viewer: str | None, viewer_device: str | None = None,
        *, with_room_id: bool = True,
    ) -> list[JsonDict]:
        items = list(stored)
        redactions = await self.events.get_events(
            e.redacted_by for e in items if e.redacted_by is not None
        )
        now = int(time.time() * 1000)
        out = []
        for ev in items:
            pdu = ev.pdu
            unsigned: JsonDict = {}
            if ev.redacted_by is not None:
                version = await self.rooms.get_room_version_id(ev.room_id)
                rv = get_room_version(version or DEFAULT_ROOM_VERSION.identifier)
                pdu = {**redact(pdu, rv), "event_id": ev.event_id}
                because = redactions.get(ev.redacted_by)
                if because is not None:
                    unsigned["redacted_because"] = {
                        **strip_for_client(because.pdu), "event_id": because.event_id,
                        "room_id": because.room_id,
                    }
            client = strip_for_client(pdu)
            client["event_id"] = ev.event_id
            if with_room_id:
                client["room_id"] = ev.room_id
            else:
                client.pop("room_id", None)
            unsigned["age"] = max(0, now - int(pdu["origin_server_ts"]))
            if ev.txn_id is not None and viewer == pdu["sender"] and (
                viewer_device is None or viewer_device == ev.device_id
            ):
                unsigned["transaction_id"] = ev.txn_id
            client["unsigned"] = unsigned
            out.append(client)
        return out

    async def format_one(self, stored: StoredEvent, viewer: str | None,
                         viewer_device: str | None = None) -> JsonDict:
        return (await self.format([stored], viewer, viewer_device))[0]

