"""The rooms of a sliding sync list: which rooms, filtered, in which order.

Candidates are the rooms the user is joined to, invited to or knocking on, plus (on an
incremental request) rooms left or banned from since the connection's last position, so the
client learns of the leave. Rooms are ordered by ``bump_stamp`` descending: the stream position
of the latest event of a type that counts as activity (MSC4186's default bump types), or of the
user's own membership event for invites, knocks and rooms without such an event.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from edgehs.service.sliding_sync.request import ListConfig, ListFilters
from edgehs.store.account_data import AccountDataStore
from edgehs.store.events import EventStore
from edgehs.store.rooms import MemberStore
from edgehs.store.state import StateStore
from edgehs.types import StateMap

BUMP_EVENT_TYPES = ("m.room.create", "m.room.message", "m.room.encrypted", "m.sticker",
                    "m.call.invite", "m.poll.start", "m.beacon_info")
LISTED_MEMBERSHIPS = ("join", "invite", "knock")
BATCH = 32  # rooms loaded concurrently


@dataclass
class RoomInfo:
    room_id: str
    membership: str
    member_event_id: str
    member_position: int
    state: StateMap  # current state, or the state when the user left / was invited
    bump_stamp: int = 0
    room_type: str | None = None
    is_dm: bool = False
    was_joined: bool = True  # for leave / ban: whether the user was joined before it

    @property
    def until(self) -> int | None:
        """Events after this position are not the user's to see (left rooms)."""
        return self.member_position if self.membership in ("leave", "ban") else None


class RoomLister:
    def __init__(self, events: EventStore, state: StateStore, members: MemberStore,
                 account_data: AccountDataStore) -> None:
        self.events = events
        self.state = state
        self.members = members
        self.account_data = account_data

    async def candidates(self, user_id: str, now: int, since: int | None) -> dict[str, RoomInfo]:
        """room id -> what the lists need to know, for every room that may be listed."""
        memberships = await self.members.get_rooms_for_user(
            user_id, (*LISTED_MEMBERSHIPS, "leave", "ban"))
        direct = await self._direct_rooms(user_id)
        wanted = [RoomInfo(room_id, membership, event_id, pos, {})
                  for room_id, (membership, event_id, pos) in memberships.items()
                  # joined after the snapshot: the next request has it
                  if pos <= now and (membership in LISTED_MEMBERSHIPS
                                     or (since is not None and pos > since))]
        # Many rooms at once: their queries queue up on the reader connection back to back
        # (half the time of one room after the other), in bounded batches so that other
        # requests' reads are not stuck behind a user with a thousand rooms.
        for start in range(0, len(wanted), BATCH):
            await asyncio.gather(*(self._load(info, user_id, direct, now)
                                   for info in wanted[start:start + BATCH]))
        return {info.room_id: info for info in wanted}

    async def _load(self, info: RoomInfo, user_id: str, direct: set[str], now: int) -> None:
        if info.membership == "join":
            info.state = await self.state.get_current_state_ids(info.room_id)
        else:
            info.state = await self.state.get_state_after(info.member_event_id) or {}
        if info.membership in ("leave", "ban"):
            info.was_joined = await self._was_joined(user_id, info.member_event_id)
        await self._describe(info, user_id, direct, now)

    async def _describe(self, info: RoomInfo, user_id: str, direct: set[str], now: int) -> None:
        create_id = info.state.get(("m.room.create", ""))
        pdus = await self.events.get_pdus([create_id, info.member_event_id] if create_id
                                          else [info.member_event_id])
        create = pdus.get(create_id or "", {}).get("content", {})
        room_type = create.get("type") if isinstance(create, dict) else None
        info.room_type = room_type if isinstance(room_type, str) else None
        member = pdus.get(info.member_event_id, {}).get("content", {})
        info.is_dm = info.room_id in direct or (
            info.membership == "invite" and isinstance(member, dict)
            and member.get("is_direct") is True)
        info.bump_stamp = info.member_position
        if info.membership in ("join", "leave", "ban"):
            latest = await self.events.get_room_events(
                info.room_id, before=info.until or now, limit=1, backwards=True,
                types=BUMP_EVENT_TYPES)
            if latest:
                info.bump_stamp = latest[0].stream_ordering

    async def _was_joined(self, user_id: str, member_event_id: str) -> bool:
        """Whether the user was joined just before this leave / ban (a rejected invite or a
        knock that was refused never was: such a room shows only the membership event)."""
        before = await self.state.get_state_before(member_event_id) or {}
        previous = before.get(("m.room.member", user_id))
        if previous is None:
            return False
        content = (await self.events.get_pdus([previous])).get(previous, {}).get("content")
        return isinstance(content, dict) and content.get("membership") == "join"

    async def _direct_rooms(self, user_id: str) -> set[str]:
        content = await self.account_data.get(user_id, "", "m.direct") or {}
        return {r for rooms in content.values() if isinstance(rooms, list)
                for r in rooms if isinstance(r, str)}

    async def filtered(self, user_id: str, rooms: dict[str, RoomInfo],
                       filters: ListFilters) -> list[RoomInfo]:
        """The rooms passing ``filters``, newest activity first."""
        out = []
        space_children = await self._space_children(filters.spaces) \
            if filters.spaces is not None else None
        for info in rooms.values():
            if not self._passes(info, filters):
                continue
            if space_children is not None and info.room_id not in space_children:
                continue
            if filters.tags is not None or filters.not_tags:
                tags = await self._tags(user_id, info.room_id)
                if filters.tags is not None and not tags & set(filters.tags):
                    continue
                if tags & set(filters.not_tags):
                    continue
            out.append(info)
        out.sort(key=lambda i: (i.bump_stamp, i.room_id), reverse=True)
        return out

    @staticmethod
    def _passes(info: RoomInfo, f: ListFilters) -> bool:
        checks = (
            (f.is_dm, info.is_dm),
            (f.is_invite, info.membership == "invite"),
            (f.is_encrypted, ("m.room.encryption", "") in info.state),
            (f.is_tombstoned, ("m.room.tombstone", "") in info.state),
        )
        if any(wanted is not None and wanted != actual for wanted, actual in checks):
            return False
        if f.room_types is not None and info.room_type not in f.room_types:
            return False
        return info.room_type not in f.not_room_types

    async def _space_children(self, spaces: Sequence[str]) -> set[str]:
        children: set[str] = set()
        for space in spaces:
            state = await self.state.get_current_state_ids(space)
            ids = [e for (t, _k), e in state.items() if t == "m.space.child"]
            for pdu in (await self.events.get_pdus(ids)).values():
                if pdu.get("content", {}).get("via"):
                    children.add(str(pdu.get("state_key")))
        return children

    async def _tags(self, user_id: str, room_id: str) -> set[str]:
        content = await self.account_data.get(user_id, room_id, "m.tag") or {}
        tags = content.get("tags")
        return set(tags) if isinstance(tags, dict) else set()


def window(rooms: list[RoomInfo], config: ListConfig) -> list[RoomInfo]:
    """The rooms inside the list's ``ranges`` (inclusive on both ends)."""
    picked: dict[str, RoomInfo] = {}
    for start, end in config.ranges:
        for info in rooms[start:end + 1]:
            picked.setdefault(info.room_id, info)
    return list(picked.values())
