"""The extensions of simplified sliding sync: to_device, e2ee, account_data, receipts, typing.

https://github.com/matrix-org/matrix-spec-proposals/pull/4186 (and the MSCs it points to:
MSC3885 to-device, MSC3884 e2ee, MSC3959 account data, MSC3960 receipts, MSC3961 typing)

Each one is off unless the request enables it. The room-scoped ones (account_data, receipts,
typing) report on the rooms of the request's lists windows and subscriptions (narrowed by their
own ``lists`` / ``rooms``): everything for a room the connection sees for the first time, the
changes since the connection's last position for the others. to_device has its own token
(``since`` / ``next_batch``), which acknowledges (deletes) the messages up to it, as /sync does.
"""

from dataclasses import dataclass, field

from edgehs.errors import Codes, MatrixError
from edgehs.service.keys import KeyService
from edgehs.service.push import PushService
from edgehs.service.receipts import receipt_content
from edgehs.service.sliding_sync.request import SlidingSyncRequest
from edgehs.service.typing import TypingService
from edgehs.store.account_data import AccountDataStore, ReceiptStore
from edgehs.store.to_device import ToDeviceStore
from edgehs.types import JsonDict


@dataclass
class RoomScope:
    """The rooms the extensions may report on: room id -> (list names, subscribed)."""

    rooms: dict[str, tuple[set[str], bool]] = field(default_factory=dict)
    initial: set[str] = field(default_factory=set)  # rooms new to the connection

    def covered(self, request: SlidingSyncRequest, name: str) -> list[str]:
        ext = request.extension(name)
        return [r for r, (lists, sub) in self.rooms.items() if ext.covers(r, lists, sub)]


@dataclass(frozen=True)
class At:
    user_id: str
    device_id: str | None
    position: int
    typing: int
    to_device: int
    previous: int | None  # the connection's stream position (None: new connection)
    previous_typing: int


class Extensions:
    def __init__(self, account_data: AccountDataStore, receipts: ReceiptStore,
                 typing: TypingService, inbox: ToDeviceStore) -> None:
        self.account_data = account_data
        self.receipts = receipts
        self.typing = typing
        self.inbox = inbox
        self.keys: KeyService | None = None  # set by the wiring
        self.push: PushService | None = None  # set by the wiring (m.push_rules)

    async def build(self, request: SlidingSyncRequest, at: At, scope: RoomScope) -> JsonDict:
        out: JsonDict = {}
        if request.extension("to_device").enabled and at.device_id is not None:
            out["to_device"] = await self._to_device(request, at)
        if request.extension("e2ee").enabled:
            out["e2ee"] = await self._e2ee(at)
        if request.extension("account_data").enabled:
            out["account_data"] = await self._account_data(at, scope.covered(request,
                                                                             "account_data"),
                                                           scope.initial)
        if request.extension("receipts").enabled:
            out["receipts"] = {"rooms": await self._receipts(
                at, scope.covered(request, "receipts"), scope.initial)}
        if request.extension("typing").enabled:
            out["typing"] = {"rooms": self._typing(at, scope.covered(request, "typing"),
                                                   scope.initial)}
        return out

    @staticmethod
    def is_empty(ext: JsonDict) -> bool:
        """Nothing a waiting client needs to hear about (key counts are not news)."""
        to_device = ext.get("to_device", {}).get("events")
        lists = ext.get("e2ee", {}).get("device_lists", {})
        data = ext.get("account_data", {})
        return not (to_device or lists.get("changed") or lists.get("left")
                    or data.get("global") or data.get("rooms")
                    or ext.get("receipts", {}).get("rooms") or ext.get("typing", {}).get("rooms"))

    async def _to_device(self, request: SlidingSyncRequest, at: At) -> JsonDict:
        assert at.device_id is not None
        config = request.extension("to_device")
        since = 0
        if config.since is not None:
            if not config.since.isdigit() or len(config.since) > 18:
                raise MatrixError(400, Codes.INVALID_PARAM,
                                  "extensions.to_device.since is not a to-device token")
            since = int(config.since)
        if since > 0 and await self.inbox.has_messages_upto(at.user_id, at.device_id, since):
            await self.inbox.delete_upto(at.user_id, at.device_id, since)
        messages = await self.inbox.get_messages(at.user_id, at.device_id, since,
                                                 at.to_device, config.limit)
        next_batch = messages[-1].stream_id if len(messages) == config.limit \
            else max(since, at.to_device)
        return {"next_batch": str(next_batch), "events": [m.to_event() for m in messages]}

    async def _e2ee(self, at: At) -> JsonDict:
        out: JsonDict = {"device_lists": {"changed": [], "left": []},
                         "device_one_time_keys_count": {},
                         "device_unused_fallback_key_types": []}
        if self.keys is None:
            return out
        if at.previous is not None:
            changed, left = await self.keys.device_list_changes(at.user_id, at.previous,
                                                                at.position)
            out["device_lists"] = {"changed": changed, "left": left}
        if at.device_id is not None:
            out["device_one_time_keys_count"] = await self.keys.one_time_key_counts(
                at.user_id, at.device_id)
            out["device_unused_fallback_key_types"] = await self.keys.unused_fallback_types(
                at.user_id, at.device_id)
        return out

    async def _account_data(self, at: At, rooms: list[str], initial: set[str]) -> JsonDict:
        changed = await self.account_data.get_changed(at.user_id, at.previous or 0)
        everything = changed if at.previous is None else (
            await self.account_data.get_changed(at.user_id, 0)
            if initial & set(rooms) else {})
        global_data = [{"type": t, "content": c} for t, c in changed.get("", {}).items()]
        if at.previous is None and self.push is not None:
            ruleset = await self.push.ruleset(at.user_id)
            global_data = [e for e in global_data if e["type"] != "m.push_rules"]
            global_data.append({"type": "m.push_rules", "content": {"global": ruleset.to_json()}})
        by_room: JsonDict = {}
        for room_id in rooms:
            source = everything if room_id in initial else changed
            items = source.get(room_id)
            if items:
                by_room[room_id] = [{"type": t, "content": c} for t, c in items.items()]
        return {"global": global_data, "rooms": by_room}

    async def _receipts(self, at: At, rooms: list[str], initial: set[str]) -> JsonDict:
        fresh = [r for r in rooms if r in initial or at.previous is None]
        rows = await self.receipts.get_changed(fresh, 0) if fresh else {}
        rest = [r for r in rooms if r not in fresh]
        if rest and at.previous is not None:
            rows.update(await self.receipts.get_changed(rest, at.previous))
        out: JsonDict = {}
        for room_id, receipts in rows.items():
            content = receipt_content(at.user_id, receipts)
            if content:
                out[room_id] = {"type": "m.receipt", "content": content}
        return out

    def _typing(self, at: At, rooms: list[str], initial: set[str]) -> JsonDict:
        out: JsonDict = {}
        for room_id in rooms:
            fresh = at.previous is None or room_id in initial
            if not fresh and not self.typing.changed_since(room_id, at.previous_typing):
                continue
            users = self.typing.typing_users(room_id)
            if users or not fresh:
                out[room_id] = {"type": "m.typing", "content": {"user_ids": users}}
        return out
