"""GET /events: the event stream of the r0 era, deprecated but still in the spec.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3events

The new events of the user's joined rooms after ``from`` (a /sync token) as client events with
their ``room_id`` (the schema's ``chunk`` holds room events only: presence, typing and receipts
are /sync's), long-polling up to ``timeout`` when there are none. Without ``from`` the stream
starts at the current position. History visibility and ignored users apply as in /sync; at
most ``ROOM_LIMIT`` events of one room are returned, the newest ones.
"""

import time

from edgehs.service.sync import SyncService, SyncToken
from edgehs.types import JsonDict

ROOM_LIMIT = 100


class EventStream:
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync

    async def stream(self, user_id: str, start: SyncToken | None, timeout_ms: int) -> JsonDict:
        deadline = time.monotonic() + timeout_ms / 1000
        since = start if start is not None else self.sync.now()
        notifier = self.sync.notifier
        while True:
            now = self.sync.now()
            chunk = await self._chunk(user_id, since, now)
            remaining = deadline - time.monotonic()
            if chunk or remaining <= 0:
                return {"start": str(since), "end": str(now), "chunk": chunk}
            if now != self.sync.now():
                continue
            if not await notifier.wait(remaining):
                return {"start": str(since), "end": str(now), "chunk": []}

    async def _chunk(self, user_id: str, since: SyncToken, now: SyncToken) -> list[JsonDict]:
        sync = self.sync
        joined = list(await sync.members.get_rooms_for_user(user_id, ("join",)))
        active = await sync.events.room_changes_after(joined, since.position)
        ignored = await sync.ignored(user_id)
        found = []
        for room_id in active:
            events = await sync.rooms.timeline(user_id, room_id, after=since.position,
                                               before=now.position, limit=ROOM_LIMIT)
            found += [e for e in events
                      if "state_key" in e.pdu or e.pdu["sender"] not in ignored]
        found.sort(key=lambda e: e.stream_ordering)
        return await sync.formatter.format(found, user_id)
