"""The /sync sections of Send-to-Device messaging and end-to-end encryption.

https://spec.matrix.org/v1.19/client-server-api/#extensions-to-sync (to-device)
https://spec.matrix.org/v1.19/client-server-api/#e2e-extensions-to-sync

To-device messages are delivered once: the third part of the sync token is a position of the
to-device stream, and a /sync with a ``since`` token acknowledges (deletes) the syncing
device's messages up to that position before it reads the next ones, at most
``TO_DEVICE_LIMIT`` a response (``next_batch`` then stops at the last one delivered, so the
client comes straight back for the rest).

With a :class:`~edgehs.service.keys.KeyService` wired in, the sections of end-to-end encryption
follow: ``device_lists`` (incremental syncs only), ``device_one_time_keys_count`` (always with
``signed_curve25519``) and ``device_unused_fallback_key_types``.
"""

from dataclasses import dataclass, field

from edgehs.service.keys import KeyService
from edgehs.store.to_device import ToDeviceStore
from edgehs.types import JsonDict

TO_DEVICE_LIMIT = 100


@dataclass
class E2eeSections:
    to_device: list[JsonDict] = field(default_factory=list)
    to_device_position: int = 0  # the to-device part of next_batch
    changed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    one_time_keys_count: dict[str, int] = field(default_factory=dict)
    unused_fallback_key_types: list[str] | None = None

    def is_empty(self) -> bool:
        return not (self.to_device or self.changed or self.left)

    def to_json(self) -> JsonDict:
        out: JsonDict = {
            "to_device": {"events": self.to_device},
            "device_lists": {"changed": self.changed, "left": self.left},
            "device_one_time_keys_count": self.one_time_keys_count,
        }
        if self.unused_fallback_key_types is not None:
            out["device_unused_fallback_key_types"] = self.unused_fallback_key_types
        return out


class E2eeSync:
    def __init__(self, to_device: ToDeviceStore, to_device_limit: int = TO_DEVICE_LIMIT) -> None:
        self.inbox = to_device
        self.to_device_limit = to_device_limit
        self.keys: KeyService | None = None  # set by the wiring

    async def sections(self, user_id: str, device_id: str | None, *, since_to_device: int | None,
                       now_to_device: int, since_position: int | None = None,
                       now_position: int = 0) -> E2eeSections:
        """``since_*`` None: an initial sync (nothing acknowledged, no device list changes)."""
        out = E2eeSections(to_device_position=now_to_device)
        if self.keys is not None:
            if since_position is not None:
                out.changed, out.left = await self.keys.device_list_changes(
                    user_id, since_position, now_position)
            if device_id is not None:
                out.one_time_keys_count = await self.keys.one_time_key_counts(user_id, device_id)
                out.unused_fallback_key_types = await self.keys.unused_fallback_types(
                    user_id, device_id)
        if device_id is None:
            return out  # an application service acting without a device has no inbox
        after = since_to_device or 0
        if after > 0 and await self.inbox.has_messages_upto(user_id, device_id, after):
            await self.inbox.delete_upto(user_id, device_id, after)
        messages = await self.inbox.get_messages(user_id, device_id, after, now_to_device,
                                                 self.to_device_limit)
        out.to_device = [m.to_event() for m in messages]
        if len(messages) == self.to_device_limit:
            out.to_device_position = messages[-1].stream_id
        return out
