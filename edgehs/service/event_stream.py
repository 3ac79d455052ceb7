"""The 2015 event stream: ``GET /events`` and ``GET /events/{eventId}``.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3events (deprecated)
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3events-1 (room previews)
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3eventseventid

Tokens are /sync tokens (:class:`SyncToken`), so ``from`` may be a /sync ``next_batch`` or an
/initialSync ``end``. Without ``from`` the stream starts now and waits for what comes next.
One answer holds, after ``from``: the timeline events of the user's rooms that the user may
see (and the user's own membership changes, wherever they happen), at most ``limit`` of them;
m.typing and m.receipt events of the joined rooms; m.presence of the users sharing a room with
the user; the user's account data (room account data with its ``room_id``). With ``room_id``
only that room is looked at, which a non-member may do when the room is ``world_readable``
(room previews): then presence is that of the room's members, and account data is left out.

When ``limit`` cuts the timeline, ``end`` is the position of the last event given, so the next
request continues there; receipts and account data changed after ``from`` are given now and
may come again then (they are states, so a repeat is harmless).
"""

import contextlib
import time
from dataclasses import replace

from edgehs.errors import Codes, MatrixError
from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.initial_sync import (
    current_token,
    format_v1,
    legacy_presence,
    receipt_event,
)
from edgehs.service.notifier import Notifier
from edgehs.service.presence import PresenceService
from edgehs.service.sync import SyncToken
from edgehs.service.typing import TypingService
from edgehs.service.visibility import Visibility
from edgehs.store.account_data import AccountDataStore, ReceiptStore
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.rooms import MemberStore
from edgehs.types import JsonDict

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class EventStreamService:
    def __init__(self, events: EventStore, members: MemberStore, account_data: AccountDataStore,
                 receipts: ReceiptStore, typing: TypingService, visibility: Visibility,
                 formatter: ClientEventFormatter, notifier: Notifier) -> None:
        self.events = events
        self.members = members
        self.account_data = account_data
        self.receipts = receipts
        self.typing = typing
        self.visibility = visibility
        self.formatter = formatter
        self.notifier = notifier
        self.presence: PresenceService | None = None  # set by the wiring

    def now(self) -> SyncToken:
        return current_token(self.notifier, self.presence)

    async def get_events(self, user_id: str, device_id: str | None, *, is_guest: bool,
                         since: SyncToken | None, timeout_ms: int, room_id: str | None,
                         limit: int) -> JsonDict:
        """The /events body (``start`` is the caller's ``from`` when it gave one)."""
        if room_id is None and is_guest:
            raise MatrixError(403, Codes.GUEST_ACCESS_FORBIDDEN,
                              "Guests may only follow the events of one room (room_id)")
        if room_id is not None:
            await self.visibility.require_readable(room_id, user_id)
        syncing: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if self.presence is not None and room_id is None:
            syncing = self.presence.syncing(user_id, "online")
        deadline = time.monotonic() + timeout_ms / 1000
        with syncing:
            now = self.now()  # after the poll itself marked the user online
            start = since or now
            # A token from before a restart: typing and presence (in memory) count from zero
            # again, so everything about them is news.
            if start.typing > now.typing:
                start = replace(start, typing=-1)
            if start.presence > now.presence:
                start = replace(start, presence=-1)
            while True:
                chunk, end = await self._once(user_id, device_id, start, now, room_id, limit)
                remaining = deadline - time.monotonic()
                if chunk or remaining <= 0:
                    break
                if now == self.now() and not await self.notifier.wait(remaining):
                    break
                now = self.now()
        if since is not None:
            end = replace(end, to_device=since.to_device)
        return {"start": str(since or now), "end": str(end), "chunk": chunk}

    async def _once(self, user_id: str, device_id: str | None, since: SyncToken,
                    now: SyncToken, room_id: str | None, limit: int
                    ) -> tuple[list[JsonDict], SyncToken]:
        after = since.position
        if room_id is not None:
            rooms, joined = [room_id], [room_id]
        else:
            memberships = await self.members.get_rooms_for_user(
                user_id, ("join", "invite", "knock", "leave", "ban"))
            joined = [r for r, (m, _, _) in memberships.items() if m == "join"]
            # Rooms whose membership changed since: the user's own member event is news.
            rooms = [r for r, (m, _, pos) in memberships.items() if m == "join" or pos > after]
        timeline, end_position = await self._timeline(user_id, rooms, after, now.position,
                                                      limit)
        chunk = await format_v1(self.formatter, timeline, user_id, device_id)
        for r in joined:
            if since.typing < 0 or self.typing.changed_since(r, since.typing):
                users = self.typing.typing_users(r)
                if users or since.typing >= 0:
                    chunk.append({"type": "m.typing", "room_id": r,
                                  "content": {"user_ids": users}})
        receipts = await self.receipts.get_changed(joined, after)
        chunk += [ev for r, rows in receipts.items()
                  if (ev := receipt_event(r, user_id, rows)) is not None]
        chunk += await self._presence(user_id, since.presence, room_id)
        if room_id is None:
            changed = await self.account_data.get_changed(user_id, after)
            for r, items in changed.items():
                chunk += [{"type": t, "content": c, **({"room_id": r} if r else {})}
                          for t, c in items.items()]
        return chunk, replace(now, position=end_position)

    async def _timeline(self, user_id: str, rooms: list[str], after: int, upto: int,
                        limit: int) -> tuple[list[StoredEvent], int]:
        """The visible events after ``after`` in ``rooms``, oldest first, cut at ``limit``;
        and the position to continue from."""
        found: list[StoredEvent] = []
        for r in await self.events.rooms_with_events_after(rooms, after):
            found += await self.events.get_room_events(r, after=after, before=upto,
                                                       limit=limit + 1, backwards=False)
        found.sort(key=lambda e: e.stream_ordering)
        end = upto
        if len(found) > limit:
            found = found[:limit]
            end = found[-1].stream_ordering if found else after
        visible = {e.event_id for e in await self.visibility.filter_events(user_id, found)}
        return [e for e in found if e.event_id in visible or _own_membership(e, user_id)], end

    async def _presence(self, user_id: str, since: int, room_id: str | None) -> list[JsonDict]:
        if self.presence is None:
            return []
        changed = self.presence.changed_since(since if since >= 0 else None)
        if not changed:
            return []
        if room_id is None:
            visible = await self.presence.store.co_members(user_id) | {user_id}
        else:
            visible = set(await self.members.get_joined(room_id))
        return [legacy_presence(self.presence, u) for u in changed if u in visible]

    # --- GET /events/{eventId} -------------------------------------------------------------

    async def get_event(self, user_id: str, device_id: str | None, event_id: str) -> JsonDict:
        """One event the user may see, else 404 M_NOT_FOUND."""
        ev = await self.events.get_event(event_id)
        until = None if ev is None else await self.visibility.readable_until(ev.room_id,
                                                                              user_id)
        if (ev is None or until is None or ev.stream_ordering > until
                or not await self.visibility.is_visible(user_id, ev)):
            raise MatrixError(404, Codes.NOT_FOUND, "Event not found")
        return await self.formatter.format_one(ev, user_id, device_id)


def _own_membership(ev: StoredEvent, user_id: str) -> bool:
    return ev.pdu.get("type") == "m.room.member" and ev.pdu.get("state_key") == user_id
