"""One room of a sliding sync response.

A room the connection has not sent before is ``initial``: its latest ``timeline_limit`` events
and every ``required_state`` entry. A room sent before gets only what is new since it was last
brought up to date: the events after that position (``limited`` when there are more than the
limit) and the ``required_state`` entries that changed or were not sent yet (a subscription may
ask for more state than the list did). Invites and knocks carry ``invite_state`` instead.
"""

from dataclasses import dataclass

from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.sliding_sync.connection import RoomSent
from edgehs.service.sliding_sync.request import RoomConfig
from edgehs.service.sliding_sync.room_list import RoomInfo
from edgehs.service.sync import STRIPPED_STATE_TYPES, SyncToken
from edgehs.service.visibility import Visibility
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.rooms import MemberStore
from edgehs.types import JsonDict

MAX_HEROES = 5


@dataclass(frozen=True)
class Snapshot:
    """The positions a response is computed at, and the connection's previous ones."""

    position: int
    typing: int
    previous: int | None  # the connection's stream position (None: a new connection)


class RoomDataBuilder:
    def __init__(self, events: EventStore, members: MemberStore,
                 formatter: ClientEventFormatter) -> None:
        self.events = events
        self.members = members
        self.formatter = formatter
        self.visibility: Visibility | None = None  # history visibility (set by the wiring)

    async def build(self, user_id: str, device_id: str | None, info: RoomInfo,
                    config: RoomConfig, sent: RoomSent | None, at: Snapshot
                    ) -> tuple[JsonDict, RoomSent] | None:
        """The room's JSON and what the connection then knows of it; None when there is
        nothing new to tell."""
        # New to the connection, or (re)joined / left after an invite: all of it again.
        initial = sent is None or (sent.membership != info.membership
                                   and sent.membership != "join")
        if info.membership in ("invite", "knock"):
            if not initial:
                return None
            invited = await self._invited(user_id, info)
            return invited, RoomSent(info.member_position, {}, info.membership)
        until = info.until or at.position
        after = None if initial or sent is None else sent.position
        limit = config.timeline_limit
        # A subscription asking for more timeline than the room was sent with (the room was
        # opened): the latest ``limit`` events again, flagged ``expanded_timeline``.
        expanded = sent is not None and not initial and limit > sent.timeline_limit
        if expanded:
            after = None
        timeline: list[StoredEvent] = []
        limited = False
        if not info.was_joined:
            # Left without ever joining (a rejected invite): the membership event only.
            found = list((await self.events.get_events([info.member_event_id])).values())
            timeline = found if after is None or after < until else []
        elif after is None or after < until:
            if self.visibility is not None:
                found = await self.visibility.timeline(
                    info.room_id, user_id, after=after, before=until, limit=limit + 1)
            else:
                found = await self.events.get_room_events(
                    info.room_id, after=after, before=until, limit=limit + 1, backwards=True)
            limited = len(found) > limit
            timeline = list(reversed(found[:limit]))
        senders = {e.pdu["sender"] for e in timeline}
        wanted = {k: v for k, v in info.state.items() if info.was_joined
                  and config.required_state.wants(k, user_id, senders)}
        if initial or sent is None:
            new_state = wanted
        else:
            new_state = {k: v for k, v in wanted.items() if sent.state.get(k) != v}
        if not initial and not timeline and not new_state and (
                sent is None or sent.membership == info.membership):
            return None
        room: JsonDict = {"initial": True} if initial else {}
        if expanded and timeline:
            # Both names: the MSC's and the unstable one Synapse (and so clients) use.
            room["expanded_timeline"] = room["unstable_expanded_timeline"] = True
        room["timeline"] = await self.formatter.format(timeline, user_id, device_id,
                                                       with_room_id=False)
        room["limited"] = limited
        room["num_live"] = 0 if at.previous is None else sum(
            1 for e in timeline if e.stream_ordering > at.previous)
        if timeline:
            room["prev_batch"] = str(SyncToken(timeline[0].stream_ordering - 1, at.typing))
        elif initial:
            room["prev_batch"] = str(SyncToken(until, at.typing))
        state_events = (await self.events.get_events(new_state.values())).values()
        room["required_state"] = await self.formatter.format(state_events, user_id,
                                                             with_room_id=False, bundle=False)
        await self._describe(room, user_id, info)
        known = dict(sent.state) if sent is not None and not initial else {}
        known.update(new_state)
        widest = max(limit, sent.timeline_limit if sent is not None else 0)
        return room, RoomSent(until, known, info.membership, widest)

    async def _describe(self, room: JsonDict, user_id: str, info: RoomInfo) -> None:
        """name, avatar, heroes, member counts, bump_stamp and is_dm."""
        keys = [("m.room.name", ""), ("m.room.avatar", ""), ("m.room.canonical_alias", "")]
        ids = {k: info.state[k] for k in keys if k in info.state}
        pdus = await self.events.get_pdus(ids.values())

        def content(key: tuple[str, str], field: str) -> str | None:
            value = pdus.get(ids.get(key, ""), {}).get("content", {}).get(field)
            return value if isinstance(value, str) and value else None

        name = content(("m.room.name", ""), "name")
        if name is not None:
            room["name"] = name
        avatar = content(("m.room.avatar", ""), "url")
        if avatar is not None:
            room["avatar"] = avatar
        if info.membership == "join":
            members = list((await self.members.get_members(info.room_id, None)).values())
            room["joined_count"] = members.count("join")
            room["invited_count"] = members.count("invite")
        if name is None:
            joined_once = info.membership != "invite" and info.membership != "knock" \
                and info.was_joined
            room["heroes"] = await self._heroes(user_id, info) if joined_once \
                else await self._inviter(info)
        room["bump_stamp"] = info.bump_stamp
        if info.is_dm:
            room["is_dm"] = True

    async def _heroes(self, user_id: str, info: RoomInfo) -> list[JsonDict]:
        member_ids = {k[1]: v for k, v in info.state.items()
                      if k[0] == "m.room.member" and k[1] != user_id}
        pdus = await self.events.get_pdus(member_ids.values())
        candidates = []
        for uid, event_id in member_ids.items():
            pdu = pdus.get(event_id, {})
            content = pdu.get("content", {})
            if isinstance(content, dict) and content.get("membership") in ("join", "invite"):
                candidates.append((int(pdu.get("depth", 0)), uid, content))
        candidates.sort(key=lambda c: (c[0], c[1]))
        heroes = []
        for _depth, uid, content in candidates[:MAX_HEROES]:
            hero: JsonDict = {"user_id": uid}
            for field in ("displayname", "avatar_url"):
                if isinstance(content.get(field), str):
                    hero[field] = content[field]
            heroes.append(hero)
        return heroes

    async def _inviter(self, info: RoomInfo) -> list[JsonDict]:
        """The hero of a room the user is not joined to: whoever sent the membership event
        (the inviter), as the user may not see the member list."""
        pdus = await self.events.get_pdus([info.member_event_id])
        sender = pdus.get(info.member_event_id, {}).get("sender")
        if not isinstance(sender, str) or info.membership == "knock":
            return []
        their = info.state.get(("m.room.member", sender))
        content = (await self.events.get_pdus([their])).get(their, {}).get("content", {}) \
            if their else {}
        hero: JsonDict = {"user_id": sender}
        for field in ("displayname", "avatar_url"):
            if isinstance(content.get(field), str):
                hero[field] = content[field]
        return [hero]

    async def _invited(self, user_id: str, info: RoomInfo) -> JsonDict:
        keys: list[tuple[str, str]] = [(t, "") for t in STRIPPED_STATE_TYPES]
        keys.append(("m.room.member", user_id))
        ids = [info.state[k] for k in keys if k in info.state]
        if info.member_event_id not in ids:
            ids.append(info.member_event_id)
        pdus = await self.events.get_pdus(ids)
        stripped = [{k: pdus[i][k] for k in ("type", "state_key", "content", "sender")}
                    for i in ids if i in pdus]
        room: JsonDict = {"initial": True, "invite_state": stripped}
        await self._describe(room, user_id, info)
        return room

