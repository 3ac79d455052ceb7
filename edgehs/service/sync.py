"""/sync: the initial snapshot and the incremental changes since a token.

https://spec.matrix.org/v1.19/client-server-api/#syncing

The token is :class:`~edgehs.service.sync_token.SyncToken`; each room of the response is built
by :class:`~edgehs.service.sync_rooms.RoomBuilder`, its state section by
:mod:`edgehs.service.sync_state`.
"""

import time
from dataclasses import dataclass, field, replace

from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.filters import EventFilter, SyncFilter
from edgehs.service.notifier import Notifier
from edgehs.service.presence import PresenceService
from edgehs.service.push import PushService
from edgehs.service.sync_e2ee import E2eeSections, E2eeSync
from edgehs.service.sync_rooms import STRIPPED_STATE_TYPES as STRIPPED_STATE_TYPES
from edgehs.service.sync_rooms import RoomBuilder, SyncRequest, empty_joined
from edgehs.service.sync_token import SyncToken as SyncToken
from edgehs.service.typing import TypingService
from edgehs.service.visibility import Visibility
from edgehs.store.account_data import AccountDataStore, ReceiptStore
from edgehs.store.events import EventStore
from edgehs.store.rooms import MemberStore
from edgehs.store.state import StateStore
from edgehs.types import JsonDict

IGNORED_USERS = "m.ignored_user_list"  # https://spec.matrix.org/v1.19/client-server-api/#ignoring-users
IGNORED_CACHE_SIZE = 10000


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


def _ignored_users(content: JsonDict | None) -> frozenset[str]:
    users = content.get("ignored_users") if isinstance(content, dict) else None
    return frozenset(users) if isinstance(users, dict) else frozenset()


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
        self.rooms = RoomBuilder(events, state, members, typing, formatter)
        self._ignored: dict[str, frozenset[str]] = {}  # user -> ignored users (_ignored_now)
        self._ignored_generation = 0  # counts the changes seen
        self.e2ee: E2eeSync | None = None  # set by the wiring
        self.push: PushService | None = None  # unread counts, m.push_rules (set by the wiring)
        self.presence: PresenceService | None = None  # m.presence events (set by the wiring)

    @property
    def visibility(self) -> Visibility | None:
        """History visibility (set by the wiring)."""
        return self.rooms.visibility

    @visibility.setter
    def visibility(self, value: Visibility | None) -> None:
        self.rooms.visibility = value

    def now(self) -> SyncToken:
        """The token of the current position of every stream."""
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
        if since is not None and since.presence > self.now().presence:
            since = replace(since, presence=-1)  # from before a restart: send all presence
        if since is not None and since.typing > self.notifier.typing_serial:
            # A token from before a restart: typing (in memory) counts from zero again, so
            # treat every room's typing state as changed once.
            since = replace(since, typing=-1)
        if since is None:
            self.rooms.lazy.reset(user_id, device_id)  # a new sync sequence starts from nothing
        while True:
            now = self.now()
            req = SyncRequest(user_id, device_id, since, now, flt)
            result = await self._sync_once(req, full_state)
            if self.presence is not None:
                result.presence = await self.presence.sync_events(
                    user_id, since.presence if since is not None else None, presence_filter,
                    also=req.new_co_members,
                )
            remaining = deadline - time.monotonic()
            if since is None or not result.is_empty() or remaining <= 0:
                return result.to_json()
            if now != self.now():
                continue  # something happened while we were computing
            if not await self.notifier.wait(remaining):
                return result.to_json()
            # Re-compute against the same `since`, so nothing between is skipped.

    async def ignored(self, user_id: str) -> frozenset[str]:
        """The users ``user_id`` ignores, read from the database (and remembered unless a
        change was seen meanwhile). https://spec.matrix.org/v1.19/client-server-api/#ignoring-users"""
        generation = self._ignored_generation
        ignored = _ignored_users(await self.account_data.get(user_id, "", IGNORED_USERS))
        if generation == self._ignored_generation:
            if len(self._ignored) > IGNORED_CACHE_SIZE:
                self._ignored.clear()
            self._ignored[user_id] = ignored
        return ignored

    async def _ignored_now(self, user_id: str, changed: dict[str, JsonDict]) -> frozenset[str]:
        """The ignored users for one /sync, mostly without a query of its own. A list changed
        since ``since`` is among the account data the sync reads anyway (``changed``, global):
        it is used, and what was remembered is dropped (a load that raced with the change is
        not kept either). Every change is seen so by the first sync from a token older than
        it, which all later tokens descend from."""
        if IGNORED_USERS in changed:
            self._ignored_generation += 1
            self._ignored.pop(user_id, None)
            return _ignored_users(changed[IGNORED_USERS])
        cached = self._ignored.get(user_id)
        return cached if cached is not None else await self.ignored(user_id)

    async def _sync_once(self, req: SyncRequest, full_state: bool) -> SyncResult:
        since, now, flt, user_id = req.since, req.now, req.flt, req.user_id
        result = SyncResult(next_batch=str(now))
        after = since.position if since else 0
        memberships = await self.members.get_rooms_for_user(
            user_id, ("join", "invite", "knock", "leave", "ban")
        )
        changed = await self.account_data.get_changed(user_id, after)
        req.ignored = await self._ignored_now(user_id, changed.get("", {}))
        joined = [r for r, m in memberships.items() if m[0] == "join" and flt.room_allowed(r)]
        # One query each for the rooms with new events (and whether a member event is among
        # them) and the receipts of every joined room, so that a wake-up only looks further
        # at the rooms where something happened.
        receipts = await self.receipts.get_changed(joined, after)
        active: dict[str, bool] = {}
        if since is not None:
            active = await self.events.room_changes_after(joined, after)
        for room_id, (membership, event_id, pos) in memberships.items():
            if not flt.room_allowed(room_id) or pos > now.position:
                continue
            if membership == "join":
                newly_joined = since is not None and pos > after
                if since is not None and not newly_joined and not full_state and not (
                    room_id in active or room_id in receipts
                    or self.typing.changed_since(room_id, since.typing)
                ):
                    continue
                fresh = since is None or newly_joined or full_state
                room = await self.rooms.joined(
                    req, room_id, after=None if fresh else after, newly_joined=newly_joined,
                    receipts=receipts.get(room_id, []), members_changed=active.get(room_id, False))
                if room is not None:
                    result.rooms["join"][room_id] = room
            elif membership in ("invite", "knock") and (since is None or pos > after):
                # https://spec.matrix.org/v1.19/client-server-api/#knocking-on-rooms
                invited = await self.rooms.invited(event_id, req.ignored if membership == "invite"
                                                   else frozenset())
                if invited is None:
                    continue
                if membership == "invite":
                    result.rooms["invite"][room_id] = invited
                else:
                    result.rooms["knock"][room_id] = {"knock_state": invited["invite_state"]}
            elif membership in ("leave", "ban") and (
                (since is not None and pos > after) or (since is None and flt.include_leave)
            ):
                result.rooms["leave"][room_id] = await self.rooms.left(req, room_id, pos)
        result.account_data = [
            {"type": t, "content": c} for t, c in changed.get("", {}).items()
            if flt.account_data_allowed(t)
        ]
        for room_id, items in changed.items():
            room = result.rooms["join"].get(room_id)
            if room_id and memberships.get(room_id, ("",))[0] == "join":
                if room is None:
                    room = result.rooms["join"][room_id] = empty_joined()
                room["account_data"]["events"] = [
                    {"type": t, "content": c} for t, c in items.items()
                ]
        if self.push is not None:
            await self.push.add_to_sync(user_id, result.rooms["join"], result.account_data,
                                        since is None and flt.account_data_allowed("m.push_rules"),
                                        flt.unread_thread_notifications)
        if self.e2ee is not None:
            result.e2ee = await self.e2ee.sections(
                user_id, req.device_id, since_to_device=since.to_device if since else None,
                now_to_device=now.to_device, since_position=since.position if since else None,
                now_position=now.position,
            )
            result.next_batch = str(replace(now, to_device=result.e2ee.to_device_position))
        return result
