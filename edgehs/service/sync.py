"""/sync: the initial snapshot and the incremental changes since a token.

https://spec.matrix.org/v1.19/client-server-api/#syncing

The token is ``s{stream position}_{typing serial}_{to-device position}_{presence serial}``: one
integer orders events, account data and receipts; typing, which lives in memory, has its own small
counter; the to-device stream (``store.to_device``) its own position, left out while it and the
presence serial are 0 (so tokens of the older two-part form still parse, as "no to-device message
acknowledged"); presence (in memory, ``service.presence``) its serial, left out while 0.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from edgehs.errors import Codes, MatrixError
from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.filters import EventFilter, SyncFilter
from edgehs.service.notifier import Notifier
from edgehs.service.presence import PresenceService
from edgehs.service.push import PushService
from edgehs.service.receipts import receipt_content
from edgehs.service.sync_e2ee import E2eeSections, E2eeSync
from edgehs.service.typing import TypingService
from edgehs.service.visibility import Visibility
from edgehs.store.account_data import AccountDataStore, ReceiptRow, ReceiptStore
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.rooms import MemberStore
from edgehs.store.state import StateStore
from edgehs.types import JsonDict, StateMap

STRIPPED_STATE_TYPES = ("m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
                        "m.room.canonical_alias", "m.room.encryption", "m.room.topic")


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


@dataclass
class SyncResult:
    next_batch: str
    rooms: dict[str, dict[str, JsonDict]] = field(
        default_factory=lambda: {"join": {}, "invite": {}, "knock": {}, "leave": {}}
    )
    account_data: list[JsonDict] = field(default_factory=list)
    e2ee: E2eeSections | None = None  # to-device and encryption sections (service/sync_e2ee)
    presence: list[JsonDict] = field(default_factory=list)  # m.presence (service/presence)

    def is_empty(self) -> bool:
        return not (any(self.rooms.values()) or self.account_data or self.presence
                    or (self.e2ee is not None and not self.e2ee.is_empty()))

    def to_json(self) -> JsonDict:
        return {
            "next_batch": self.next_batch,
            "rooms": self.rooms,
            "account_data": {"events": self.account_data},
            "presence": {"events": self.presence},
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
            **(self.e2ee.to_json() if self.e2ee is not None else {}),
        }


class SyncService:
    def __init__(
        self, events: EventStore, state: StateStore, members: MemberStore,
        account_data: AccountDataStore, receipts: ReceiptStore, typing: TypingService,
        formatter: ClientEventFormatter, notifier: Notifier,
    ) -> None:
        self.events = events
        self.state = state
        self.members = members
        self.account_data = account_data
        self.receipts = receipts
        self.typing = typing
        self.formatter = formatter
        self.notifier = notifier
        self.e2ee: E2eeSync | None = None  # set by the wiring
        self.push: PushService | None = None  # unread counts, m.push_rules (set by the wiring)
        self.presence: PresenceService | None = None  # m.presence events (set by the wiring)
        self.visibility: Visibility | None = None  # history visibility (set by the wiring)

    def _now(self) -> SyncToken:
        n = self.notifier
        presence = self.presence.serial if self.presence is not None else 0
        return SyncToken(n.position, n.typing_serial, n.to_device_position, presence)

    async def sync(self, user_id: str, device_id: str | None, since: SyncToken | None,
                   flt: SyncFilter, timeout_ms: int, full_state: bool = False,
                   set_presence: str = "online",
                   presence_filter: EventFilter | None = None) -> JsonDict:
        """``set_presence`` and ``presence_filter`` as in the spec's /sync parameters."""
        if self.presence is None:
            return await self._sync(user_id, device_id, since, flt, timeout_ms, full_state,
                                    presence_filter)
        with self.presence.syncing(user_id, set_presence):
            return await self._sync(user_id, device_id, since, flt, timeout_ms, full_state,
                                    presence_filter)

    async def _sync(self, user_id: str, device_id: str | None, since: SyncToken | None,
                    flt: SyncFilter, timeout_ms: int, full_state: bool,
                    presence_filter: EventFilter | None) -> JsonDict:
        deadline = time.monotonic() + timeout_ms / 1000
        if since is not None and since.presence > self._now().presence:
            since = replace(since, presence=-1)  # from before a restart: send all presence
        if since is not None and since.typing > self.notifier.typing_serial:
            # A token from before a restart: typing (in memory) counts from zero again, so
            # treat every room's typing state as changed once.
            since = replace(since, typing=-1)
        while True:
            now = self._now()
            result = await self._sync_once(user_id, device_id, since, now, flt, full_state)
            if self.presence is not None:
                result.presence = await self.presence.sync_events(
                    user_id, since.presence if since is not None else None, presence_filter
                )
            remaining = deadline - time.monotonic()
            if since is None or not result.is_empty() or remaining <= 0:
                return result.to_json()
            if now != self._now():
                continue  # something happened while we were computing
            if not await self.notifier.wait(remaining):
                return result.to_json()
            # Re-compute against the same `since`, so nothing between is skipped.

    async def _sync_once(self, user_id: str, device_id: str | None, since: SyncToken | None,
                         now: SyncToken, flt: SyncFilter, full_state: bool) -> SyncResult:
        result = SyncResult(next_batch=str(now))
        after = since.position if since else 0
        memberships = await self.members.get_rooms_for_user(
            user_id, ("join", "invite", "knock", "leave", "ban")
        )
        joined = [r for r, m in memberships.items() if m[0] == "join" and flt.room_allowed(r)]
        # One query each for the rooms with new events and the receipts of every joined room,
        # so that a wake-up only looks further at the rooms where something happened.
        receipts = await self.receipts.get_changed(joined, after)
        active = None
        if since is not None and not full_state:
            active = await self.events.rooms_with_events_after(joined, after)
        for room_id, (membership, event_id, pos) in memberships.items():
            if not flt.room_allowed(room_id) or pos > now.position:
                continue
            if membership == "join":
                newly = since is None or pos > after or full_state
                if not newly and active is not None and since is not None and not (
                    room_id in active or room_id in receipts
                    or self.typing.changed_since(room_id, since.typing)
                ):
                    continue
                room = await self._joined_room(user_id, device_id, room_id, since, now, flt,
                                               None if newly else after,
                                               receipts.get(room_id, []))
                if room is not None:
                    result.rooms["join"][room_id] = room
            elif membership == "invite" and (since is None or pos > after):
                result.rooms["invite"][room_id] = await self._invited_room(event_id)
            elif membership == "knock" and (since is None or pos > after):
                # https://spec.matrix.org/v1.19/client-server-api/#knocking-on-rooms
                result.rooms["knock"][room_id] = {
                    "knock_state": (await self._invited_room(event_id))["invite_state"]}
            elif membership in ("leave", "ban") and (
                (since is not None and pos > after) or (since is None and flt.include_leave)
            ):
                room = await self._left_room(user_id, room_id, pos, flt, since)
                if room is not None:
                    result.rooms["leave"][room_id] = room
        changed = await self.account_data.get_changed(user_id, after)
        result.account_data = [
            {"type": t, "content": c} for t, c in changed.get("", {}).items()
            if flt.account_data_allowed(t)
        ]
        for room_id, items in changed.items():
            room = result.rooms["join"].get(room_id)
            if room_id and memberships.get(room_id, ("",))[0] == "join":
                if room is None:
                    room = result.rooms["join"][room_id] = self._empty_joined()
                room["account_data"]["events"] = [
                    {"type": t, "content": c} for t, c in items.items()
                ]
        if self.push is not None:
            await self.push.add_to_sync(user_id, result.rooms["join"], result.account_data,
                                        since is None and flt.account_data_allowed("m.push_rules"),
                                        flt.unread_thread_notifications)
        if self.e2ee is not None:
            result.e2ee = await self.e2ee.sections(
                user_id, device_id, since_to_device=since.to_device if since else None,
                now_to_device=now.to_device, since_position=since.position if since else None,
                now_position=now.position,
            )
            result.next_batch = str(replace(now, to_device=result.e2ee.to_device_position))
        return result

    @staticmethod
    def _empty_joined() -> JsonDict:
        return {
            "timeline": {"events": [], "limited": False},
            "state": {"events": []},
            "ephemeral": {"events": []},
            "account_data": {"events": []},
            "unread_notifications": {"notification_count": 0, "highlight_count": 0},
            "summary": {},
        }

    async def _joined_room(
        self, user_id: str, device_id: str | None, room_id: str, since: SyncToken | None,
        now: SyncToken, flt: SyncFilter, after: int | None, receipts: list[ReceiptRow],
    ) -> JsonDict | None:
        """``after`` None: the room is new to this sync (initial, just joined or full_state)."""
        limit = flt.timeline_limit
        timeline = await self._timeline(
            user_id, room_id, after=after, before=now.position, limit=limit + 1,
            types=flt.timeline_types, not_types=flt.timeline_not_types,
            senders=flt.timeline_senders,
        )
        limited = len(timeline) > limit
        timeline = list(reversed(timeline[:limit]))
        ephemeral = self._ephemeral(user_id, room_id, since, after, receipts)
        if after is not None and not timeline and not ephemeral:
            return None
        room = self._empty_joined()
        room["timeline"]["limited"] = limited
        if timeline:
            room["timeline"]["prev_batch"] = str(
                SyncToken(timeline[0].stream_ordering - 1, now.typing)
            )
        else:
            room["timeline"]["prev_batch"] = str(now)
        room["timeline"]["events"] = await self.formatter.format(
            timeline, user_id, device_id, with_room_id=False
        )
        if after is None or limited:
            state = await self._state_before_timeline(room_id, timeline, now.position)
            if after is not None:
                previous = await self._state_at(room_id, after)
                state = {k: v for k, v in state.items() if previous.get(k) != v}
            state = flt.filter_state(state, {e.pdu["sender"] for e in timeline}, user_id)
            state_events = (await self.events.get_events(state.values())).values()
            room["state"]["events"] = await self.formatter.format(
                state_events, user_id, with_room_id=False
            )
        room["ephemeral"]["events"] = ephemeral
        return room

    async def _timeline(self, user_id: str, room_id: str, *, after: int | None, before: int,
                        limit: int, types: Sequence[str] | None = None,
                        not_types: Sequence[str] | None = None,
                        senders: Sequence[str] | None = None) -> list[StoredEvent]:
        """The newest ``limit`` timeline events the user may see, newest first."""
        if self.visibility is not None:
            return await self.visibility.timeline(
                room_id, user_id, after=after, before=before, limit=limit, types=types,
                not_types=not_types, senders=senders)
        return await self.events.get_room_events(
            room_id, after=after, before=before, limit=limit, backwards=True, types=types,
            not_types=not_types, senders=senders)

    async def _state_before_timeline(
        self, room_id: str, timeline: list[StoredEvent], position: int
    ) -> StateMap:
        if timeline:
            return await self.state.get_state_before(timeline[0].event_id) or {}
        return await self._state_at(room_id, position)

    async def _state_at(self, room_id: str, position: int) -> StateMap:
        last = await self.events.get_room_events(room_id, before=position, limit=1,
                                                 backwards=True)
        if not last:
            return {}
        return await self.state.get_state_after(last[0].event_id) or {}

    def _ephemeral(self, user_id: str, room_id: str, since: SyncToken | None,
                   after: int | None, receipts: list[ReceiptRow]) -> list[JsonDict]:
        out: list[JsonDict] = []
        typing_changed = since is None or after is None or self.typing.changed_since(
            room_id, since.typing
        )
        users = self.typing.typing_users(room_id)
        if typing_changed and (users or since is not None):
            out.append({"type": "m.typing", "content": {"user_ids": users}})
        if receipts:
            content = receipt_content(user_id, receipts)
            if content:
                out.append({"type": "m.receipt", "content": content})
        return out

    async def _invited_room(self, invite_event_id: str) -> JsonDict:
        """Stripped state before the user's invite (or knock) event, and that event."""
        invite = await self.events.get_event(invite_event_id)
        assert invite is not None
        state = await self.state.get_state_before(invite_event_id) or {}
        ids = [state[(t, "")] for t in STRIPPED_STATE_TYPES if (t, "") in state]
        events = [*list((await self.events.get_events(ids)).values()), invite]
        stripped = [
            {k: e.pdu[k] for k in ("type", "state_key", "content", "sender")} for e in events
        ]
        return {"invite_state": {"events": stripped}}

    async def _left_room(self, user_id: str, room_id: str, leave_pos: int, flt: SyncFilter,
                         since: SyncToken | None) -> JsonDict | None:
        after = since.position if since else None
        timeline = await self._timeline(
            user_id, room_id, after=after, before=leave_pos, limit=flt.timeline_limit + 1
        )
        limited = len(timeline) > flt.timeline_limit
        timeline = list(reversed(timeline[: flt.timeline_limit]))
        state = await self._state_before_timeline(room_id, timeline, leave_pos)
        if after is not None:
            previous = await self._state_at(room_id, after)
            state = {k: v for k, v in state.items() if previous.get(k) != v}
        state_events = (await self.events.get_events(state.values())).values()
        prev_batch = str(SyncToken(timeline[0].stream_ordering - 1, 0)) if timeline else None
        room: JsonDict = {
            "timeline": {
                "events": await self.formatter.format(timeline, user_id, with_room_id=False),
                "limited": limited,
            },
            "state": {"events": await self.formatter.format(state_events, user_id,
                                                            with_room_id=False)},
            "account_data": {"events": []},
        }
        if prev_batch:
            room["timeline"]["prev_batch"] = prev_batch
        return room

