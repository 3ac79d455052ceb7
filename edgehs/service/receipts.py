"""Receipts and the fully read marker.

https://spec.matrix.org/v1.19/client-server-api/#receipts
https://spec.matrix.org/v1.19/client-server-api/#fully-read-markers

Receipts and markers only move forwards: one for an event older than the current one is
accepted and ignored. ``m.fully_read`` is room account data, never an ``m.receipt``; private
receipts are stored like public ones and /sync shows them only to their owner. Every write takes
a stream position through :meth:`EventService.run_write`, so waiting /sync requests wake.
"""

import time
from collections.abc import Callable

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.service.events import EventService
from edgehs.service.push_gateway import PusherService
from edgehs.service.visibility import Visibility
from edgehs.store.account_data import (
    AccountDataStore,
    ReceiptRow,
    ReceiptStore,
    put_account_data,
    put_receipt,
)
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.outbox import enqueue_payload
from edgehs.types import JsonDict

RECEIPT_TYPES = ("m.read", "m.read.private")
FULLY_READ = "m.fully_read"
MAIN_THREAD = "main"
MAX_RELATION_HOPS = 3  # an edit or reaction of a threaded event is in that thread too


def _relates_to(ev: StoredEvent) -> tuple[str, str] | None:
    """(rel_type, parent event id) of the event's m.relates_to, if it has a usable one."""
    rel = ev.pdu.get("content", {}).get("m.relates_to")
    if not isinstance(rel, dict):
        return None
    rel_type, parent = rel.get("rel_type"), rel.get("event_id")
    if isinstance(rel_type, str) and isinstance(parent, str):
        return rel_type, parent
    return None


class ReceiptService:
    def __init__(
        self, events: EventService, event_store: EventStore, receipts: ReceiptStore,
        account_data: AccountDataStore, visibility: Visibility,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.events = events
        self.event_store = event_store
        self.receipts = receipts
        self.account_data = account_data
        self.visibility = visibility
        self.clock = clock
        # The pushers to send badge updates to (set by homeserver.py).
        self.pushers: PusherService | None = None

    async def send_receipt(self, room_id: str, user_id: str, receipt_type: str, event_id: str,
                           thread_id: str | None) -> None:
        """POST /rooms/{roomId}/receipt/{receiptType}/{eventId}."""
        if receipt_type not in (*RECEIPT_TYPES, FULLY_READ):
            raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown receipt type {receipt_type!r}")
        if thread_id is not None:
            if receipt_type == FULLY_READ:
                raise MatrixError(400, Codes.INVALID_PARAM,
                                  "thread_id cannot be used with m.fully_read")
            if not thread_id or not (thread_id == MAIN_THREAD or thread_id.startswith("$")):
                raise MatrixError(400, Codes.INVALID_PARAM,
                                  "thread_id must be 'main' or a thread root's event id")
        await self._check_room(room_id, user_id)
        target = await self._event_in_room(room_id, event_id)
        if receipt_type == FULLY_READ:
            await self.set_read_markers(room_id, user_id, fully_read=event_id)
            return
        if (thread_id is not None and event_id != thread_id
                and await self._thread_of(target) != thread_id):
            raise MatrixError(400, Codes.INVALID_PARAM,
                              f"{event_id} is not in thread {thread_id}")
        thread = thread_id or ""
        if await self._is_older(await self.receipts.get_receipt(
                room_id, receipt_type, user_id, thread), target):
            return
        ts = int(self.clock() * 1000)
        badges = await self._badge_destinations(room_id, user_id)

        async def write(conn: aiosqlite.Connection, pos: int) -> None:
            await put_receipt(conn, pos, room_id, receipt_type, user_id, thread, event_id, ts)
            await _enqueue_badges(conn, badges, user_id)
        await self.events.run_write(write)
        self._wake(badges)
        self._publish(room_id, {receipt_type: event_id}, user_id, ts, thread)

    async def set_read_markers(self, room_id: str, user_id: str, *, fully_read: str | None = None,
                               read: str | None = None, read_private: str | None = None) -> None:
        """POST /rooms/{roomId}/read_markers: the fully read marker and (unthreaded) receipts,
        written in one transaction."""
        await self._check_room(room_id, user_id)
        wanted = {FULLY_READ: fully_read, "m.read": read, "m.read.private": read_private}
        targets = {k: await self._event_in_room(room_id, v)
                   for k, v in wanted.items() if v is not None}
        changes: dict[str, str] = {}
        for kind, target in targets.items():
            if kind == FULLY_READ:
                current = await self.account_data.get(user_id, room_id, FULLY_READ)
                previous = current.get("event_id") if current else None
            else:
                previous = await self.receipts.get_receipt(room_id, kind, user_id, "")
            if not await self._is_older(previous if isinstance(previous, str) else None, target):
                changes[kind] = target.event_id
        if not changes:
            return
        ts = int(self.clock() * 1000)
        reads = changes.keys() - {FULLY_READ}
        badges = await self._badge_destinations(room_id, user_id) if reads else []

        async def write(conn: aiosqlite.Connection, pos: int) -> None:
            await _enqueue_badges(conn, badges, user_id)
            for kind, event_id in changes.items():
                if kind == FULLY_READ:
                    await put_account_data(conn, pos, user_id, room_id, FULLY_READ,
                                           {"event_id": event_id})
                else:
                    await put_receipt(conn, pos, room_id, kind, user_id, "", event_id, ts)
        await self.events.run_write(write)
        self._wake(badges)
        self._publish(room_id, changes, user_id, ts, "")

    async def _badge_destinations(self, room_id: str, user_id: str) -> list[str]:
        if self.pushers is None:
            return []
        return await self.pushers.badge_destinations(user_id, room_id)

    def _wake(self, destinations: list[str]) -> None:
        if destinations and self.events.outbox_wake is not None:
            self.events.outbox_wake(destinations)

    def _publish(self, room_id: str, receipts: dict[str, str], user_id: str, ts: int,
                 thread: str) -> None:
        """Public receipts as an m.receipt EDU (for appservices with receive_ephemeral)."""
        content: JsonDict = {}
        for kind, event_id in receipts.items():
            if kind != "m.read":
                continue  # private receipts and the fully read marker stay with their owner
            entry: JsonDict = {"ts": ts, **({"thread_id": thread} if thread else {})}
            content.setdefault(event_id, {}).setdefault(kind, {})[user_id] = entry
        if content:
            self.events.notifier.publish_edu(
                room_id, {"type": "m.receipt", "room_id": room_id, "content": content}
            )

    async def _check_room(self, room_id: str, user_id: str) -> None:
        await self.events.room_version(room_id)  # 404 M_NOT_FOUND for unknown rooms
        await self.visibility.require_joined(room_id, user_id)

    async def _event_in_room(self, room_id: str, event_id: str) -> StoredEvent:
        ev = await self.event_store.get_event(event_id) if event_id.startswith("$") else None
        if ev is None or ev.room_id != room_id:
            raise MatrixError(404, Codes.NOT_FOUND, f"Event {event_id} not found in this room")
        return ev

    async def _is_older(self, current_id: str | None, target: StoredEvent) -> bool:
        """True when the current marker is already at ``target`` or after it."""
        if current_id is None:
            return False
        if current_id == target.event_id:
            return True
        current = await self.event_store.get_event(current_id)
        return current is not None and current.stream_ordering > target.stream_ordering

    async def _thread_of(self, ev: StoredEvent) -> str:
        """The thread an event belongs to: its root's event id, or 'main' (thread roots and
        unthreaded events)."""
        for _ in range(MAX_RELATION_HOPS):
            rel = _relates_to(ev)
            if rel is None:
                return MAIN_THREAD
            if rel[0] == "m.thread":
                return rel[1]
            parent = await self.event_store.get_event(rel[1])
            if parent is None or parent.room_id != ev.room_id:
                return MAIN_THREAD
            ev = parent
        return MAIN_THREAD


def receipt_content(user_id: str, receipts: list[ReceiptRow]) -> JsonDict:
    """The content of an ``m.receipt`` EDU as ``user_id`` may see it: event -> type -> user ->
    {ts, thread_id?}; other users' private receipts are left out."""
    content: JsonDict = {}
    for rtype, uid, thread_id, event_id, ts in receipts:
        if rtype == "m.read.private" and uid != user_id:
            continue  # private receipts go only to their owner
        entry: JsonDict = {"ts": ts}
        if thread_id:
            entry["thread_id"] = thread_id
        content.setdefault(event_id, {}).setdefault(rtype, {})[uid] = entry
    return content


async def _enqueue_badges(conn: aiosqlite.Connection, destinations: list[str],
                          user_id: str) -> None:
    """A badge update for each pusher, in the receipt's own transaction (push_gateway)."""
    for target in destinations:
        await enqueue_payload(conn, target, "push", {"user_id": user_id, "badge": True})
