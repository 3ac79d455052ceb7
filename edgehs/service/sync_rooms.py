"""One room of a /sync response: its timeline, state, ephemeral events and summary.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync

The ``state`` section is computed in :mod:`edgehs.service.sync_state`. The summary
(``m.heroes``, ``m.joined_member_count``, ``m.invited_member_count``) is sent when the room is
new to the client and when its membership changed since ``since``, as the spec's RoomSummary
allows ("if this field has not changed since the last sync, it may be omitted").

Ignoring users (https://spec.matrix.org/v1.19/client-server-api/#ignoring-users): the
timeline leaves out the non-state events of the users in ``m.ignored_user_list``; the state
events they sent stay, so that the room's state is right.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.filters import SyncFilter
from edgehs.service.receipts import receipt_content
from edgehs.service.sync_state import (
    MEMBER,
    LazyMembers,
    StateItems,
    full_state,
    gappy_state,
    senders_state,
)
from edgehs.service.sync_token import SyncToken
from edgehs.service.typing import TypingService
from edgehs.service.visibility import Visibility
from edgehs.store.account_data import ReceiptRow
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.rooms import MemberStore
from edgehs.store.state import StateStore
from edgehs.types import JsonDict, StateMap

STRIPPED_STATE_TYPES = ("m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
                        "m.room.canonical_alias", "m.room.encryption", "m.room.topic")


@dataclass
class SyncRequest:
    """What every room of one /sync computation shares."""

    user_id: str
    device_id: str | None
    since: SyncToken | None
    now: SyncToken
    flt: SyncFilter
    ignored: frozenset[str] = frozenset()
    # Users who came to share a room with the syncing user in this response (presence).
    new_co_members: set[str] = field(default_factory=set)


def empty_joined() -> JsonDict:
    return {
        "timeline": {"events": [], "limited": False},
        "state": {"events": []},
        "ephemeral": {"events": []},
        "account_data": {"events": []},
        "unread_notifications": {"notification_count": 0, "highlight_count": 0},
        "summary": {},
    }


class RoomBuilder:
    def __init__(self, events: EventStore, state: StateStore, members: MemberStore,
                 typing: TypingService, formatter: ClientEventFormatter) -> None:
        self.events = events
        self.state = state
        self.members = members
        self.typing = typing
        self.formatter = formatter
        self.lazy = LazyMembers()
        self.visibility: Visibility | None = None  # history visibility (set by the wiring)

    async def joined(self, req: SyncRequest, room_id: str, *, after: int | None,
                     newly_joined: bool, receipts: list[ReceiptRow],
                     members_changed: bool) -> JsonDict | None:
        """``after`` None: the room is new to this sync (initial, joined since ``since`` —
        ``newly_joined`` — or full_state); otherwise the changes after that position."""
        flt, limit = req.flt, req.flt.timeline_limit
        raw = await self.timeline(
            req.user_id, room_id, after=after, before=req.now.position, limit=limit + 1,
            types=flt.timeline_types, not_types=flt.timeline_not_types,
            senders=flt.timeline_senders, with_current_state=True,
        )
        limited = len(raw) > limit
        raw = raw[:limit]
        if newly_joined and raw and not limited:
            # The client has none of the room's history: there is a gap unless the timeline
            # reaches back to the room's creation.
            limited = raw[-1].pdu["type"] != "m.room.create"
        timeline = self._shown(list(reversed(raw)), req.ignored)
        ephemeral = self._ephemeral(req, room_id, after, receipts)
        if after is not None and not timeline and not ephemeral and not limited:
            return None
        state_items = await self._joined_state(req, room_id, timeline, after, limited)
        if after is not None and not timeline and not ephemeral and not state_items:
            return None
        room = empty_joined()
        room["timeline"]["limited"] = limited
        if timeline:
            room["timeline"]["prev_batch"] = str(
                SyncToken(timeline[0].stream_ordering - 1, req.now.typing))
        else:
            room["timeline"]["prev_batch"] = str(req.now)
        room["timeline"]["events"] = await self.formatter.format(
            timeline, req.user_id, req.device_id, with_room_id=False,
            federation=flt.federation_format)
        if after is None or members_changed:
            room["summary"] = await self._summary(room_id, req.user_id)
            state_items += await self._hero_members(req, room_id, room["summary"],
                                                    state_items, timeline)
        state_events = await self._load(state_items)
        room["state"]["events"] = await self.formatter.format(
            state_events, req.user_id, with_room_id=False, federation=flt.federation_format)
        room["ephemeral"]["events"] = ephemeral
        if req.since is not None:
            if after is None:
                req.new_co_members |= await self.members.get_joined(room_id)
            else:
                self._note_joins(req, [*timeline, *state_events])
            req.new_co_members.discard(req.user_id)
        return room

    async def _joined_state(self, req: SyncRequest, room_id: str, timeline: list[StoredEvent],
                            after: int | None, limited: bool) -> StateItems:
        flt = req.flt.state
        lazy = flt.lazy_load_members
        senders = {e.pdu["sender"] for e in timeline}
        in_timeline = {e.event_id for e in timeline if "state_key" in e.pdu}
        if after is None:
            start = await self._state_before_timeline(room_id, timeline, req.now.position)
            items = full_state(start, in_timeline, senders | {req.user_id} if lazy else None)
        elif limited:
            start = await self._state_before_timeline(room_id, timeline, req.now.position)
            end = await self._state_at(room_id, req.now.position)
            previous = await self._state_at(room_id, after)
            items = gappy_state(start, end, previous, in_timeline, senders if lazy else None)
        elif await self.events.resolved_between(room_id, after, req.now.position):
            # State resolution changed state that no timeline event carries: send the delta.
            end = await self._state_at(room_id, req.now.position)
            previous = await self._state_at(room_id, after)
            items = [(k, v) for k, v in end.items()
                     if previous.get(k) != v and v not in in_timeline]
        elif lazy and timeline and (flt.include_redundant_members
                                    or not await self._all_known(req, room_id, senders)):
            start = await self._state_before_timeline(room_id, timeline, req.now.position)
            items = senders_state(start, in_timeline, senders)
        else:
            return []
        items = [(k, v) for k, v in items if flt.allows_type(k[0])]
        if not lazy:
            return items
        if req.since is not None and not flt.include_redundant_members:
            since = req.since.position
            items = [(k, v) for k, v in items if k[0] != MEMBER or not self.lazy.known(
                req.user_id, req.device_id, room_id, k[1], v, since)]
        self.lazy.record(req.user_id, req.device_id, room_id, [
            *((k[1], v) for k, v in items if k[0] == MEMBER),
            *((e.pdu["state_key"], e.event_id) for e in timeline
              if e.pdu["type"] == MEMBER and "state_key" in e.pdu),
        ], req.now.position)
        return items

    async def _all_known(self, req: SyncRequest, room_id: str, senders: set[str]) -> bool:
        """Whether the device already has the current member event of every sender (memory
        only: the membership cache and :class:`LazyMembers`), so that the state lookup of a
        gapless lazy-loading sync can be skipped."""
        if req.since is None:
            return False
        for sender in senders:
            current = await self.members.get_membership(room_id, sender)
            if current is None or not self.lazy.known(req.user_id, req.device_id, room_id,
                                                      sender, current[1], req.since.position):
                return False
        return True

    @staticmethod
    def _note_joins(req: SyncRequest, events: list[StoredEvent]) -> None:
        """Users whose join after ``since`` the client sees: their presence goes with it."""
        assert req.since is not None
        for ev in events:
            content = ev.pdu.get("content")
            if (ev.pdu["type"] == MEMBER and isinstance(content, dict)
                    and content.get("membership") == "join"
                    and ev.stream_ordering > req.since.position):
                req.new_co_members.add(str(ev.pdu.get("state_key")))

    async def _hero_members(self, req: SyncRequest, room_id: str, summary: JsonDict,
                            items: StateItems, timeline: list[StoredEvent]) -> StateItems:
        """With lazy-loading, the member events of the heroes the client is not known to
        have, so that it can name the room (as Synapse does)."""
        if not req.flt.state.lazy_load_members or not summary.get("m.heroes") \
                or not req.flt.state.allows_type(MEMBER):
            return []
        have = {k[1] for k, _ in items if k[0] == MEMBER}
        have |= {str(e.pdu.get("state_key")) for e in timeline if e.pdu["type"] == MEMBER}
        since = req.since.position if req.since is not None else -1
        out: StateItems = []
        for hero in summary["m.heroes"]:
            current = await self.members.get_membership(room_id, hero)
            if hero in have or current is None or self.lazy.known(
                    req.user_id, req.device_id, room_id, hero, current[1], since):
                continue
            out.append(((MEMBER, hero), current[1]))
        self.lazy.record(req.user_id, req.device_id, room_id,
                         [(k[1], v) for k, v in out], req.now.position)
        return out

    async def _summary(self, room_id: str, user_id: str) -> JsonDict:
        """https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync (RoomSummary)"""
        found = await self.members.summary(room_id, user_id)
        out: JsonDict = {"m.joined_member_count": found.joined,
                         "m.invited_member_count": found.invited}
        if not found.named:
            out["m.heroes"] = found.heroes
        return out

    async def left(self, req: SyncRequest, room_id: str, leave_pos: int) -> JsonDict:
        """A room the user left (or was banned from) since ``since``, or any left room in an
        initial sync with ``include_leave``. A room the user joined after ``since`` (and left
        again) is new to the client: its timeline and full state, as for a new joined room."""
        flt = req.flt
        after = req.since.position if req.since is not None else None
        if after is not None and await self.events.joined_between(
                room_id, req.user_id, after, leave_pos):
            after = None
        raw = await self.timeline(
            req.user_id, room_id, after=after, before=leave_pos, limit=flt.timeline_limit + 1,
            types=flt.timeline_types, not_types=flt.timeline_not_types,
            senders=flt.timeline_senders,
        )
        limited = len(raw) > flt.timeline_limit
        timeline = self._shown(list(reversed(raw[: flt.timeline_limit])), req.ignored)
        start = await self._state_before_timeline(room_id, timeline, leave_pos)
        in_timeline = {e.event_id for e in timeline if "state_key" in e.pdu}
        lazy = ({e.pdu["sender"] for e in timeline} | {req.user_id}
                if flt.state.lazy_load_members else None)
        if after is None:
            items = full_state(start, in_timeline, lazy)
        else:
            previous = await self._state_at(room_id, after)
            items = [(k, v) for k, v in full_state(start, in_timeline, lazy)
                     if previous.get(k) != v]
        items = [(k, v) for k, v in items if flt.state.allows_type(k[0])]
        state_events = await self._load(items)
        room: JsonDict = {
            "timeline": {
                "events": await self.formatter.format(
                    timeline, req.user_id, with_room_id=False, federation=flt.federation_format),
                "limited": limited,
            },
            "state": {"events": await self.formatter.format(
                state_events, req.user_id, with_room_id=False,
                federation=flt.federation_format)},
            "account_data": {"events": []},
        }
        if timeline:
            room["timeline"]["prev_batch"] = str(SyncToken(timeline[0].stream_ordering - 1, 0))
        return room

    async def invited(self, invite_event_id: str, ignored: frozenset[str]) -> JsonDict | None:
        """Stripped state before the user's invite (or knock) event, and that event; None
        for an invite from an ignored user."""
        invite = await self.events.get_event(invite_event_id)
        assert invite is not None
        if invite.pdu["sender"] in ignored:
            return None
        state = await self.state.get_state_before(invite_event_id) or {}
        ids = [state[(t, "")] for t in STRIPPED_STATE_TYPES if (t, "") in state]
        events = [*list((await self.events.get_events(ids)).values()), invite]
        stripped = [
            {k: e.pdu[k] for k in ("type", "state_key", "content", "sender")} for e in events
        ]
        return {"invite_state": {"events": stripped}}

    # --- pieces -----------------------------------------------------------------------------

    @staticmethod
    def _shown(timeline: list[StoredEvent], ignored: frozenset[str]) -> list[StoredEvent]:
        if not ignored:
            return timeline
        return [e for e in timeline if "state_key" in e.pdu or e.pdu["sender"] not in ignored]

    async def _load(self, items: StateItems) -> list[StoredEvent]:
        loaded = await self.events.get_events(v for _, v in items)
        return [loaded[v] for _, v in items if v in loaded]

    async def timeline(self, user_id: str, room_id: str, *, after: int | None, before: int,
                        limit: int, types: Sequence[str] | None = None,
                        not_types: Sequence[str] | None = None,
                        senders: Sequence[str] | None = None,
                        with_current_state: bool = False) -> list[StoredEvent]:
        """The newest ``limit`` timeline events the user may see, newest first (with the
        current state events of the span: :meth:`Visibility.timeline`)."""
        if self.visibility is not None:
            return await self.visibility.timeline(
                room_id, user_id, after=after, before=before, limit=limit, types=types,
                not_types=not_types, senders=senders, with_current_state=with_current_state)
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
        return await self.state.get_room_state_at(last[0].event_id) or {}

    def _ephemeral(self, req: SyncRequest, room_id: str, after: int | None,
                   receipts: list[ReceiptRow]) -> list[JsonDict]:
        """Typing (when it changed; an empty list only to a client that may have seen someone
        typing) and receipts, as the room's ephemeral filter allows."""
        out: list[JsonDict] = []
        allowed = req.flt.ephemeral.allows_type
        since = req.since
        users = self.typing.typing_users(room_id)
        if allowed("m.typing"):
            if after is None or since is None:
                if users:
                    out.append({"type": "m.typing", "content": {"user_ids": users}})
            elif self.typing.changed_since(room_id, since.typing):
                out.append({"type": "m.typing", "content": {"user_ids": users}})
        if receipts and allowed("m.receipt"):
            content = receipt_content(req.user_id, receipts)
            if content:
                out.append({"type": "m.receipt", "content": content})
        return out
