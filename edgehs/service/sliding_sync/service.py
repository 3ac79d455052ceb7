"""Simplified sliding sync (MSC4186): one request, one response, computed against the
connection's state and long-polled on the notifier.

https://github.com/matrix-org/matrix-spec-proposals/pull/4186

Per request: the candidate rooms (room_list) -> each list filtered, sorted by ``bump_stamp``
and cut to its ranges -> the union of the windows and the subscriptions, each room with the
merge of what its lists and subscriptions ask -> room data for the rooms with something new
(room_data) -> extensions -> a new ``pos`` remembering what was sent (connection). With a
``pos`` and nothing to say, the request waits up to ``timeout`` for the notifier.
"""

import asyncio
import time

from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.notifier import Notifier
from edgehs.service.push import PushService
from edgehs.service.sliding_sync.connection import ConnectionStore, ConnState, RoomSent
from edgehs.service.sliding_sync.extensions import At, Extensions, RoomScope
from edgehs.service.sliding_sync.request import RoomConfig, SlidingSyncRequest
from edgehs.service.sliding_sync.room_data import RoomDataBuilder, Snapshot
from edgehs.service.sliding_sync.room_list import BATCH, RoomInfo, RoomLister, window
from edgehs.service.typing import TypingService
from edgehs.store.account_data import AccountDataStore, ReceiptStore
from edgehs.store.events import EventStore
from edgehs.store.rooms import MemberStore
from edgehs.store.state import StateStore
from edgehs.store.to_device import ToDeviceStore
from edgehs.types import JsonDict


class SlidingSyncService:
    def __init__(self, events: EventStore, state: StateStore, members: MemberStore,
                 account_data: AccountDataStore, receipts: ReceiptStore, typing: TypingService,
                 inbox: ToDeviceStore, formatter: ClientEventFormatter,
                 notifier: Notifier) -> None:
        self.notifier = notifier
        self.connections = ConnectionStore()
        self.lister = RoomLister(events, state, members, account_data)
        self.builder = RoomDataBuilder(events, members, formatter)
        self.extensions = Extensions(account_data, receipts, typing, inbox)
        self.push: PushService | None = None  # notification counts (set by the wiring)

    async def sync(self, user_id: str, device_id: str | None, request: SlidingSyncRequest,
                   pos: str | None, timeout_ms: int) -> JsonDict:
        """The response to one request (400 M_UNKNOWN_POS for a ``pos`` not known)."""
        key = (user_id, device_id or "", request.conn_id)
        previous = self.connections.get(key, pos)
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            now = (self.notifier.position, self.notifier.typing_serial,
                   self.notifier.to_device_position)
            response, state, empty = await self._compute(user_id, device_id, request,
                                                         previous, now)
            remaining = deadline - time.monotonic()
            if previous is None or not empty or remaining <= 0:
                break
            if now != (self.notifier.position, self.notifier.typing_serial,
                       self.notifier.to_device_position):
                continue  # something happened while we were computing
            if not await self.notifier.wait(remaining):
                break
        response["pos"] = self.connections.put(key, pos, state)
        if request.txn_id is not None:
            response["txn_id"] = request.txn_id
        return response

    async def _compute(self, user_id: str, device_id: str | None, request: SlidingSyncRequest,
                       previous: ConnState | None, now: tuple[int, int, int]
                       ) -> tuple[JsonDict, ConnState, bool]:
        position, typing, to_device = now
        since = previous.position if previous is not None else None
        candidates = await self.lister.candidates(user_id, position, since)
        lists: JsonDict = {}
        counts: dict[str, int] = {}
        configs: dict[str, RoomConfig] = {}
        scope = RoomScope()
        for name, list_config in request.lists.items():
            rooms = await self.lister.filtered(user_id, candidates, list_config.filters)
            counts[name] = len(rooms)
            lists[name] = {"count": len(rooms)}
            for info in window(rooms, list_config):
                _add(configs, info.room_id, list_config.room)
                scope.rooms.setdefault(info.room_id, (set(), False))[0].add(name)
        subscriptions = dict(previous.subscriptions) if previous is not None else {}
        subscriptions.update(request.subscriptions)
        for room_id in request.unsubscribe:
            subscriptions.pop(room_id, None)
        for room_id, config in subscriptions.items():
            if room_id not in candidates:
                continue  # not the user's room (peeking is not supported)
            _add(configs, room_id, config)
            names = scope.rooms.get(room_id, (set(), False))[0]
            scope.rooms[room_id] = (names, True)
        sent_before = previous.rooms if previous is not None else {}
        sent: dict[str, RoomSent] = dict(sent_before)
        rooms_out: JsonDict = {}
        at = Snapshot(position, typing, since)
        items = list(configs.items())
        results = []
        for start in range(0, len(items), BATCH):  # concurrently, in bounded batches
            results += await asyncio.gather(*(
                self.builder.build(user_id, device_id, candidates[room_id], config,
                                   sent_before.get(room_id), at)
                for room_id, config in items[start:start + BATCH]))
        for room_id, built in zip(configs, results, strict=True):
            if built is None:
                continue
            rooms_out[room_id], sent[room_id] = built
            if built[0].get("initial"):
                scope.initial.add(room_id)
        await self._add_counts(user_id, rooms_out, candidates)
        extensions = await self.extensions.build(request, At(
            user_id, device_id, position, typing, to_device, since,
            previous.typing if previous is not None else 0), scope)
        state = ConnState(position, typing, sent, counts, subscriptions)
        empty = (not rooms_out and previous is not None and counts == previous.list_counts
                 and self.extensions.is_empty(extensions))
        return {"lists": lists, "rooms": rooms_out, "extensions": extensions}, state, empty

    async def _add_counts(self, user_id: str, rooms_out: JsonDict,
                          candidates: dict[str, RoomInfo]) -> None:
        """notification_count and highlight_count of the joined rooms in the response."""
        joined = [r for r in rooms_out if candidates[r].membership == "join"]
        if not joined:
            return
        counts = await self.push.store.get_counts(user_id, joined) \
            if self.push is not None else {}
        for room_id in joined:
            notifications, highlights = counts.get(room_id, (0, 0))
            rooms_out[room_id]["notification_count"] = notifications
            rooms_out[room_id]["highlight_count"] = highlights


def _add(configs: dict[str, RoomConfig], room_id: str, config: RoomConfig) -> None:
    current = configs.get(room_id)
    configs[room_id] = config if current is None else current.merge(config)
