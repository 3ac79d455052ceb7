"""GET /events: the event stream of the r0 era, deprecated but still in the spec.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3events

The new events of the user's joined rooms after ``from`` (a /sync token), oldest first, as
client events with their ``room_id`` (the schema's ``chunk`` holds room events only: presence,
typing and receipts are /sync's), long-polling up to ``timeout`` when there are none. Without
``from`` the stream starts at the current position. History visibility and ignored users apply
as in /sync. At most ``limit`` events a response (a parameter Synapse and r0 clients use; the
spec does not name it): ``end`` then stops at the last one, so the next request continues
there and nothing is skipped.
"""

import time
from dataclasses import replace

from edgehs.service.sync import SyncService, SyncToken
from edgehs.store.events import StoredEvent
from edgehs.types import JsonDict

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class EventStream:
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync

    async def stream(self, user_id: str, start: SyncToken | None, timeout_ms: int,
                     limit: int = DEFAULT_LIMIT) -> JsonDict:
        deadline = time.monotonic() + timeout_ms / 1000
        since = start if start is not None else self.sync.now()
        limit = max(1, min(limit, MAX_LIMIT))
        while True:
            now = self.sync.now()
            events, horizon = await self._events(user_id, since.position, now.position, limit)
            end = replace(now, position=horizon)
            remaining = deadline - time.monotonic()
            if events or horizon < now.position or remaining <= 0:
                chunk = await self.sync.formatter.format(events, user_id)
                return {"start": str(since), "end": str(end), "chunk": chunk}
            if now != self.sync.now():
                continue
            if not await self.sync.notifier.wait(remaining):
                return {"start": str(since), "end": str(end), "chunk": []}

    async def _events(self, user_id: str, after: int, now: int, limit: int
                      ) -> tuple[list[StoredEvent], int]:
        """The visible events in (after, horizon], oldest first, and the horizon: ``now``
        unless ``limit`` cut the stream short."""
        sync = self.sync
        joined = list(await sync.members.get_rooms_for_user(user_id, ("join",)))
        active = await sync.events.room_changes_after(joined, after)
        ignored = await sync.ignored(user_id)
        horizon = now
        found: list[StoredEvent] = []
        for room_id in active:
            batch = await sync.events.get_room_events(room_id, after=after, before=now,
                                                      limit=limit, backwards=False)
            if len(batch) == limit:
                horizon = min(horizon, batch[-1].stream_ordering)
            if sync.visibility is not None:
                batch = await sync.visibility.filter_events(user_id, batch)
            found += [e for e in batch
                      if "state_key" in e.pdu or e.pdu["sender"] not in ignored]
        found = sorted((e for e in found if e.stream_ordering <= horizon),
                       key=lambda e: e.stream_ordering)
        if len(found) > limit:
            found = found[:limit]
            horizon = found[-1].stream_ordering
        return found, horizon
