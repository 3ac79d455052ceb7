"""Send-to-Device messaging: queue messages for devices, once per client transaction.

https://spec.matrix.org/v1.19/client-server-api/#send-to-device-messaging

A send is ONE store transaction: the transaction id, an inbox row per recipient device (each
taking the next position of the to-device stream) and, for users an application service claims
exclusively and that receives ephemeral data, an outbox row per device instead of an inbox row
(delivered in the service's transactions, MSC2409). Then the notifier wakes /sync long-polls
and the outbox wakes the services. Messages for users of other servers are dropped: edgehs does
not federate yet (they will go out as m.direct_to_device EDUs through the outbox).
"""

import time
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.service.appservice.pusher import destination
from edgehs.service.appservice.registry import AppServiceRegistry
from edgehs.service.notifier import Notifier
from edgehs.store.db import Database
from edgehs.store.outbox import enqueue_payload
from edgehs.store.to_device import claim_txn, existing_devices, insert_messages
from edgehs.types import JsonDict

MAX_TYPE_LENGTH = 255

# user id -> device id (or "*") -> message content
Messages = dict[str, dict[str, JsonDict]]


def parse_messages(raw: Any) -> Messages:
    """The request's ``messages``, checked: an object of user ids to objects of device ids to
    content objects (400 M_MISSING_PARAM / M_BAD_JSON / M_INVALID_PARAM otherwise)."""
    if raw is None:
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: messages")
    if not isinstance(raw, dict):
        raise MatrixError(400, Codes.BAD_JSON, "messages must be an object")
    for user_id, devices in raw.items():
        if not _is_user_id(user_id):
            raise MatrixError(400, Codes.INVALID_PARAM, f"{user_id!r} is not a user id")
        if not isinstance(devices, dict):
            raise MatrixError(400, Codes.BAD_JSON,
                              f"messages[{user_id}] must be an object of device ids")
        for device_id, content in devices.items():
            if not device_id:
                raise MatrixError(400, Codes.INVALID_PARAM, "Device ids may not be empty")
            if not isinstance(content, dict):
                raise MatrixError(400, Codes.BAD_JSON,
                                  f"The message for {user_id} {device_id} must be an object")
    return raw


def check_event_type(event_type: str) -> None:
    if not event_type or len(event_type) > MAX_TYPE_LENGTH:
        raise MatrixError(400, Codes.INVALID_PARAM, "Event type must be 1-255 characters")


def _is_user_id(value: str) -> bool:
    local, sep, server = value[1:].partition(":")
    return value.startswith("@") and bool(local) and bool(sep) and bool(server)


class ToDeviceService:
    def __init__(self, server_name: str, db: Database, registry: AppServiceRegistry,
                 notifier: Notifier) -> None:
        self.server_name = server_name
        self.db = db
        self.registry = registry
        self.notifier = notifier
        # Set by the wiring: wakes the outbox sender for the given destinations.
        self.outbox_wake: Callable[[Iterable[str]], None] | None = None

    def _pushed_to(self, user_id: str) -> str | None:
        """The outbox destination of the application service that receives this user's
        to-device messages by push: the service claiming the user exclusively, if it has a
        URL and ``receive_ephemeral``."""
        service = self.registry.exclusive_user_owner(user_id)
        if service is None or not service.url or not service.receive_ephemeral:
            return None
        return destination(service)

    async def send(self, sender: str, sender_device: str, txn_id: str, event_type: str,
                   messages: Messages) -> None:
        """Queue ``messages`` (see :func:`parse_messages`) from ``sender``. A repeated
        (``sender``, ``sender_device``, ``txn_id``) sends nothing again."""
        check_event_type(event_type)
        local = {u: d for u, d in messages.items()
                 if u.partition(":")[2] == self.server_name}
        pushed = {u: self._pushed_to(u) for u in local}
        now_ms = int(time.time() * 1000)

        async def run(conn: aiosqlite.Connection) -> tuple[int, set[str]]:
            if not await claim_txn(conn, sender, sender_device, txn_id, now_ms):
                return 0, set()  # a retry: sent the first time
            last, woken = 0, set()
            for user_id, devices in local.items():
                target = pushed[user_id]
                for device_id, content in devices.items():
                    found = await existing_devices(conn, user_id, device_id)
                    if target is None:
                        last = max(last, await insert_messages(conn, user_id, found, sender,
                                                               event_type, content))
                        continue
                    for device in found:
                        await enqueue_payload(conn, target, "to_device", {
                            "type": event_type, "sender": sender, "content": content,
                            "to_user_id": user_id, "to_device_id": device,
                        })
                        woken.add(target)
            return last, woken

        position, woken = await self.db.write(run)
        if position:
            self.notifier.notify(to_device=position)
        if woken and self.outbox_wake is not None:
            self.outbox_wake(woken)
