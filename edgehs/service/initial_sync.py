"""The 2015 snapshots: ``GET /initialSync`` and ``GET /rooms/{roomId}/initialSync``.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3initialsync (deprecated)
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidinitialsync
https://spec.matrix.org/v1.19/client-server-api/#room-previews

Tokens are /sync tokens (:class:`SyncToken`): ``end`` continues with ``GET /events`` or
``/sync``, ``messages.start`` paginates back with ``/messages``. A room the user left shows the
room as it was when they left (SPEC-216): its state after their leave event and the messages
up to it, and no presence or receipts. A room the user never joined but may read (it is
``world_readable``) is previewed: its current state and the messages they may see, without
``membership`` or account data.

Some of the 2015 shapes that the OpenAPI definitions do not list are kept, because clients of
that API read them: ``receipts`` (m.receipt events with their ``room_id``) in both responses
and ``presence`` in the room one; m.presence events carry ``content.user_id``; room events carry
``user_id`` (their sender) and the ``unsigned`` keys of the v1 format at the top level
(:func:`v1_event`), as in Synapse's v1 serialisation.
"""

from collections.abc import Iterable

from edgehs.errors import Codes, MatrixError
from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.notifier import Notifier
from edgehs.service.presence import PresenceService
from edgehs.service.receipts import receipt_content
from edgehs.service.sync import SyncToken
from edgehs.service.visibility import EVERYTHING, Visibility
from edgehs.store.account_data import AccountDataStore, ReceiptRow, ReceiptStore
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.rooms import MemberStore, RoomStore
from edgehs.store.state import StateStore
from edgehs.types import JsonDict, StateMap

DEFAULT_LIMIT = 10


# unsigned keys the v1 event format also shows at the top level of an event.
V1_COPIED_KEYS = ("age", "redacted_because", "replaces_state", "prev_content",
                  "invite_room_state", "knock_room_state")


def v1_event(event: JsonDict) -> JsonDict:
    """A client event in the 2015 format: ``user_id`` beside ``sender``, and the unsigned
    keys of :data:`V1_COPIED_KEYS` at the top level too."""
    out = dict(event)
    if "sender" in out:
        out["user_id"] = out["sender"]
    unsigned = out.get("unsigned")
    if isinstance(unsigned, dict):
        out.update({k: unsigned[k] for k in V1_COPIED_KEYS if k in unsigned})
    return out


async def format_v1(formatter: ClientEventFormatter, events: Iterable[StoredEvent],
                    user_id: str, device_id: str | None = None, *,
                    bundle: bool = True) -> list[JsonDict]:
    return [v1_event(e) for e in await formatter.format(events, user_id, device_id,
                                                        bundle=bundle)]


def legacy_presence(presence: PresenceService, user_id: str) -> JsonDict:
    """An m.presence event as the 2015 API shows it: ``content.user_id`` included."""
    event = presence.event(user_id)
    event["content"] = {**event["content"], "user_id": user_id}
    return event


def receipt_event(room_id: str, user_id: str, rows: list[ReceiptRow]) -> JsonDict | None:
    """The m.receipt event of a room as ``user_id`` may see it, None when empty."""
    content = receipt_content(user_id, rows)
    if not content:
        return None
    return {"type": "m.receipt", "room_id": room_id, "content": content}


def current_token(notifier: Notifier, presence: PresenceService | None) -> SyncToken:
    """The token of "now" for the legacy APIs: the stream, typing and presence positions (they
    acknowledge no to-device message)."""
    serial = presence.serial if presence is not None else 0
    return SyncToken(notifier.position, notifier.typing_serial, 0, serial)


class InitialSyncService:
    def __init__(self, events: EventStore, state: StateStore, members: MemberStore,
                 rooms: RoomStore, account_data: AccountDataStore, receipts: ReceiptStore,
                 visibility: Visibility, formatter: ClientEventFormatter,
                 notifier: Notifier) -> None:
        self.events = events
        self.state = state
        self.members = members
        self.rooms = rooms
        self.account_data = account_data
        self.receipts = receipts
        self.visibility = visibility
        self.formatter = formatter
        self.notifier = notifier
        self.presence: PresenceService | None = None  # set by the wiring

    def now(self) -> SyncToken:
        return current_token(self.notifier, self.presence)

    # --- GET /initialSync ------------------------------------------------------------------

    async def initial_sync(self, user_id: str, device_id: str | None, limit: int,
                           archived: bool) -> JsonDict:
        """A client starting up: it counts as a poll, so the user is online (as /sync with
        the default ``set_presence``)."""
        if self.presence is None:
            return await self._initial_sync(user_id, device_id, limit, archived)
        with self.presence.syncing(user_id, "online"):
            return await self._initial_sync(user_id, device_id, limit, archived)

    async def _initial_sync(self, user_id: str, device_id: str | None, limit: int,
                            archived: bool) -> JsonDict:
        now = self.now()
        wanted = ("join", "invite", "leave", "ban") if archived else ("join", "invite")
        memberships = await self.members.get_rooms_for_user(user_id, wanted)
        public = set(await self.rooms.get_public_room_ids())
        account_data = await self.account_data.get_changed(user_id, 0)
        joined = [r for r, (m, _, _) in memberships.items() if m == "join"]
        receipts = await self.receipts.get_changed(joined, 0)
        rooms: list[JsonDict] = []
        for room_id, (membership, event_id, pos) in sorted(memberships.items(),
                                                           key=lambda item: item[1][2]):
            if pos > now.position:
                continue  # joined after `now` was taken: the next /events brings it
            entry: JsonDict = {"room_id": room_id, "membership": membership,
                               "visibility": "public" if room_id in public else "private"}
            if membership == "invite":
                invite = await self.events.get_event(event_id)
                if invite is not None:
                    entry["invite"] = (await format_v1(self.formatter, [invite], user_id))[0]
                rooms.append(entry)
                continue
            upto = now.position if membership == "join" else pos
            entry["messages"] = await self._messages(room_id, user_id, device_id, upto, limit,
                                                     now)
            entry["state"] = await self._state(
                room_id, user_id, None if membership == "join" else event_id)
            entry["account_data"] = _account_data(account_data.get(room_id, {}))
            rooms.append(entry)
        receipt_events = [ev for room_id in joined if room_id in receipts
                          if (ev := receipt_event(room_id, user_id, receipts[room_id]))]
        return {
            "end": str(now),
            "rooms": rooms,
            "presence": await self._presence_of_co_members(user_id),
            "account_data": _account_data(account_data.get("", {})),
            "receipts": receipt_events,
        }

    # --- GET /rooms/{roomId}/initialSync ---------------------------------------------------

    async def room_initial_sync(self, user_id: str, device_id: str | None, room_id: str,
                                limit: int) -> JsonDict:
        """403 unless the user is or was a member, or the room is world_readable."""
        until = await self.visibility.readable_until(room_id, user_id)
        if until is None:
            raise MatrixError(403, Codes.FORBIDDEN,
                              "You are not a member of this room and it is not world_readable")
        now = self.now()
        membership = await self.members.get_membership(room_id, user_id)
        public = room_id in set(await self.rooms.get_public_room_ids())
        body: JsonDict = {"room_id": room_id,
                          "visibility": "public" if public else "private"}
        if membership is not None and membership[0] in ("leave", "ban") and until != EVERYTHING:
            # The room as it was when the user left it.
            left = await self.events.get_event(membership[1])
            upto = left.stream_ordering if left is not None else until
            body.update(
                membership=membership[0],
                messages=await self._messages(room_id, user_id, device_id, upto, limit, now),
                state=await self._state(room_id, user_id, membership[1]),
                presence=[], receipts=[],
            )
            return body
        body.update(
            messages=await self._messages(room_id, user_id, device_id, now.position, limit,
                                          now),
            state=await self._state(room_id, user_id, None),
            presence=await self._presence_of_members(room_id),
        )
        rows = (await self.receipts.get_changed([room_id], 0)).get(room_id, [])
        receipts = receipt_event(room_id, user_id, rows)
        body["receipts"] = [receipts] if receipts else []
        if membership is not None and membership[0] == "join":
            body["membership"] = "join"
            changed = await self.account_data.get_changed(user_id, 0)
            body["account_data"] = _account_data(changed.get(room_id, {}))
        return body

    # --- parts -------------------------------------------------------------------------------

    async def _messages(self, room_id: str, user_id: str, device_id: str | None, upto: int,
                        limit: int, now: SyncToken) -> JsonDict:
        """The newest ``limit`` events the user may see up to position ``upto``, oldest
        first, as a pagination chunk."""
        events = []
        if limit > 0:
            events = await self.visibility.timeline(room_id, user_id, after=None, before=upto,
                                                    limit=limit)
            events.reverse()
        start = SyncToken(events[0].stream_ordering - 1 if events else upto, now.typing)
        end = now if upto == now.position else SyncToken(upto, now.typing)
        return {"chunk": await format_v1(self.formatter, events, user_id, device_id),
                "start": str(start), "end": str(end)}

    async def _state(self, room_id: str, user_id: str, after_event: str | None) -> list[JsonDict]:
        """The current state, or the state after ``after_event``."""
        state: StateMap | None
        if after_event is None:
            state = await self.state.get_current_state_ids(room_id)
        else:
            state = await self.state.get_state_after(after_event)
        loaded = await self.events.get_events((state or {}).values())
        return await format_v1(self.formatter, loaded.values(), user_id, bundle=False)

    async def _presence_of_co_members(self, user_id: str) -> list[JsonDict]:
        """The known presence of everyone sharing a room with the user, and the user's."""
        if self.presence is None or not self.presence.enabled:
            return []
        visible = await self.presence.store.co_members(user_id) | {user_id}
        users = [u for u in self.presence.changed_since(None) if u in visible]
        if user_id not in users:
            users.append(user_id)
        return [legacy_presence(self.presence, u) for u in users]

    async def _presence_of_members(self, room_id: str) -> list[JsonDict]:
        if self.presence is None or not self.presence.enabled:
            return []
        joined = await self.members.get_joined(room_id)
        return [legacy_presence(self.presence, u) for u in sorted(joined)]


def _account_data(items: dict[str, JsonDict]) -> list[JsonDict]:
    return [{"type": t, "content": c} for t, c in items.items()]
