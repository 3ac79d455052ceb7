"""The EDU streams of application service transactions (MSC2409 ephemeral events).

https://github.com/matrix-org/matrix-spec-proposals/pull/2409

Services registered with ``receive_ephemeral`` get typing notifications, public read receipts
and local users' presence of the rooms and users they are interested in. Nothing is written per
EDU: each kind is a stream (``service.outbound.EduStream``) that the outbox reads when it
builds a service's transaction -- typing from the typing service's memory, receipts from their
table by stream position, presence from the presence service's memory -- and the interest is
decided then, by the pusher's rules for events.
"""

from collections.abc import Sequence

from edgehs.service.appservice.pusher import AppServicePusher
from edgehs.service.notifier import Notifier
from edgehs.service.presence import PresenceService
from edgehs.service.typing import TypingService
from edgehs.store.account_data import ReceiptStore
from edgehs.types import JsonDict


class TypingStream:
    """m.typing of the rooms whose typing users changed; in memory (typing serials)."""
    name = "typing"
    durable = False

    def __init__(self, pusher: AppServicePusher, typing: TypingService) -> None:
        self.pusher = pusher
        self.typing = typing

    def position(self) -> int:
        return self.typing.notifier.typing_serial

    async def edus(self, destination: str, since: int, upto: int
                   ) -> Sequence[tuple[int, JsonDict]]:
        if not self.pusher.receives_ephemeral(destination):
            return []
        out: list[tuple[int, JsonDict]] = []
        for serial, room_id in self.typing.changes(since, upto):
            if await self.pusher.wants_ephemeral(destination, room_id):
                out.append((serial, {"type": "m.typing", "room_id": room_id, "content": {
                    "user_ids": self.typing.typing_users(room_id)}}))
        return out


class ReceiptStream:
    """m.receipt of public read receipts; durable (the receipts' stream positions)."""
    name = "receipts"
    durable = True

    def __init__(self, pusher: AppServicePusher, receipts: ReceiptStore,
                 notifier: Notifier) -> None:
        self.pusher = pusher
        self.receipts = receipts
        self.notifier = notifier

    def position(self) -> int:
        return self.notifier.position

    async def edus(self, destination: str, since: int, upto: int
                   ) -> Sequence[tuple[int, JsonDict]]:
        if not self.pusher.receives_ephemeral(destination):
            return []
        # One EDU per room and position (one receipt write).
        grouped: dict[tuple[int, str], JsonDict] = {}
        for pos, room_id, user_id, thread_id, event_id, ts in await self.receipts.public_changes(
                since, upto):
            entry: JsonDict = {"ts": ts, **({"thread_id": thread_id} if thread_id else {})}
            content = grouped.setdefault((pos, room_id), {})
            content.setdefault(event_id, {}).setdefault("m.read", {})[user_id] = entry
        out: list[tuple[int, JsonDict]] = []
        for (pos, room_id), content in grouped.items():
            if await self.pusher.wants_ephemeral(destination, room_id):
                out.append((pos, {"type": "m.receipt", "room_id": room_id,
                                  "content": content}))
        return out


class PresenceStream:
    """m.presence of this server's users; in memory (presence serials)."""
    name = "presence"
    durable = False

    def __init__(self, pusher: AppServicePusher, presence: PresenceService) -> None:
        self.pusher = pusher
        self.presence = presence

    def position(self) -> int:
        return self.presence.serial

    async def edus(self, destination: str, since: int, upto: int
                   ) -> Sequence[tuple[int, JsonDict]]:
        if not self.pusher.receives_ephemeral(destination):
            return []
        out: list[tuple[int, JsonDict]] = []
        for serial, user_id in self.presence.local_changes(since, upto):
            if await self.pusher.wants_presence(destination, user_id):
                out.append((serial, self.presence.event(user_id)))
        return out
