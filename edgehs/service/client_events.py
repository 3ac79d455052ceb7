"""Events as clients see them: the client format with ``unsigned`` filled in.

https://spec.matrix.org/v1.19/client-server-api/#room-event-format
https://spec.matrix.org/v1.19/client-server-api/#aggregations-of-child-events
"""

import time
from collections.abc import Awaitable, Callable, Iterable

from edgehs.protocol.events import redact, strip_for_client
from edgehs.protocol.room_versions import DEFAULT_ROOM_VERSION, get_room_version
from edgehs.service.visibility import Visibility
from edgehs.store.events import EventStore, StoredEvent
from edgehs.store.rooms import RoomStore
from edgehs.types import JsonDict

# The relation types the server aggregates into ``unsigned["m.relations"]``.
AGGREGATED_REL_TYPES = ("m.replace", "m.thread", "m.reference")
# Aggregations nest once: a thread's ``latest_event`` carries its own edit, no deeper.
MAX_BUNDLE_DEPTH = 2


def relates_to(pdu: JsonDict) -> JsonDict | None:
    content = pdu.get("content")
    relates = content.get("m.relates_to") if isinstance(content, dict) else None
    return relates if isinstance(relates, dict) else None


def _is_valid_edit(original: StoredEvent, edit: StoredEvent) -> bool:
    """https://spec.matrix.org/v1.19/client-server-api/#validity-of-replacement-events"""
    o, e = original.pdu, edit.pdu
    if edit.redacted_by is not None or edit.room_id != original.room_id:
        return False
    if e["sender"] != o["sender"] or e["type"] != o["type"]:
        return False
    if "state_key" in e or "state_key" in o:
        return False
    content = e.get("content")
    if e["type"] == "m.room.encrypted":
        return True  # m.new_content is inside the ciphertext
    return isinstance(content, dict) and isinstance(content.get("m.new_content"), dict)


class ClientEventFormatter:
    def __init__(self, events: EventStore, rooms: RoomStore) -> None:
        self.events = events
        self.rooms = rooms
        # Set by the wiring: aggregations then count only the children the viewer may see.
        self.visibility: Visibility | None = None
        # Set by the wiring: the erased ones of some users, with the position of the erasure.
        self.erasures: Callable[[Iterable[str]], Awaitable[dict[str, int]]] | None = None

    async def format(
        self, stored: Iterable[StoredEvent], viewer: str | None, viewer_device: str | None = None,
        *, with_room_id: bool = True, bundle: bool = True, federation: bool = False,
    ) -> list[JsonDict]:
        """Client events; with ``bundle`` the aggregations of their child events (edits,
        threads, references) are added under ``unsigned["m.relations"]``. With
        ``federation`` (a filter's ``event_format``) each event is the PDU as the server holds
        it (auth_events, prev_events, hashes, signatures, depth, room_id...), redacted when it
        was, with the same ``unsigned`` additions."""
        return await self._format(list(stored), viewer, viewer_device, with_room_id,
                                  0 if bundle else MAX_BUNDLE_DEPTH, federation)

    async def _format(self, items: list[StoredEvent], viewer: str | None,
                      viewer_device: str | None, with_room_id: bool, depth: int,
                      federation: bool = False) -> list[JsonDict]:
        redactions = await self.events.get_events(
            e.redacted_by for e in items if e.redacted_by is not None
        )
        erased = await self._erased_for(items, viewer)
        now = int(time.time() * 1000)
        parents: set[str] = set()
        if depth < MAX_BUNDLE_DEPTH:
            parents = await self.events.with_children(
                [e.event_id for e in items if "state_key" not in e.pdu], AGGREGATED_REL_TYPES
            )
        out = []
        for ev in items:
            pdu = ev.pdu
            unsigned: JsonDict = {}
            if ev.redacted_by is not None or ev.event_id in erased:
                version = await self.rooms.get_room_version_id(ev.room_id)
                rv = get_room_version(version or DEFAULT_ROOM_VERSION.identifier)
                pdu = {**redact(pdu, rv), "event_id": ev.event_id}
                because = redactions.get(ev.redacted_by) if ev.redacted_by else None
                if because is not None:
                    unsigned["redacted_because"] = {
                        **strip_for_client(because.pdu), "event_id": because.event_id,
                        "room_id": because.room_id,
                    }
            if federation:
                client = dict(pdu)
                client["event_id"] = ev.event_id
                stored_unsigned = pdu.get("unsigned")
                if isinstance(stored_unsigned, dict):
                    unsigned = {**stored_unsigned, **unsigned}
            else:
                client = strip_for_client(pdu)
                client["event_id"] = ev.event_id
                if with_room_id:
                    client["room_id"] = ev.room_id
                else:
                    client.pop("room_id", None)
            unsigned["age"] = max(0, now - int(pdu["origin_server_ts"]))
            if ev.txn_id is not None and viewer == pdu["sender"] and (
                viewer_device is None or viewer_device == ev.device_id
            ):
                unsigned["transaction_id"] = ev.txn_id
            if ev.event_id in parents:
                relations = await self._aggregate(ev, viewer, with_room_id, depth)
                if relations:
                    unsigned["m.relations"] = relations
            client["unsigned"] = unsigned
            out.append(client)
        return out

    async def _erased_for(self, items: list[StoredEvent], viewer: str | None) -> set[str]:
        """The events of erased senders that ``viewer`` could not see before the erasure:
        they are served redacted, without ``redacted_because`` (no redaction event exists).
        https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountdeactivate"""
        if viewer is None or self.erasures is None or self.visibility is None:
            return set()
        erased = await self.erasures({e.pdu["sender"] for e in items})
        by_erasure: dict[int, list[StoredEvent]] = {}
        for ev in items:
            position = erased.get(ev.pdu["sender"])
            if position is not None and ev.pdu["sender"] != viewer:
                by_erasure.setdefault(position, []).append(ev)
        out: set[str] = set()
        for position, events in by_erasure.items():
            seen = await self.visibility.seen_before(viewer, events, position)
            out.update(e.event_id for e in events if e.event_id not in seen)
        return out

    async def format_one(self, stored: StoredEvent, viewer: str | None,
                         viewer_device: str | None = None) -> JsonDict:
        return (await self.format([stored], viewer, viewer_device))[0]

    async def _aggregate(self, ev: StoredEvent, viewer: str | None, with_room_id: bool,
                         depth: int) -> JsonDict:
        """The ``m.relations`` aggregations of ``ev``: the latest valid edit, the thread
        summary and the references. Called only for events known to have children."""
        if "state_key" in ev.pdu:
            return {}
        own = relates_to(ev.pdu)
        if own is not None and own.get("rel_type") in ("m.replace", "m.annotation"):
            return {}  # edits and reactions are never aggregated themselves
        by_type = {rt: await self.events.get_relations(ev.event_id, rt, None)
                   for rt in AGGREGATED_REL_TYPES}
        loaded = await self.events.get_events(i for ids in by_type.values() for i in ids)
        if self.visibility is not None and viewer is not None and loaded:
            seen = await self.visibility.filter_events(viewer, list(loaded.values()))
            loaded = {e.event_id: e for e in seen}

        def children(rel_type: str) -> list[StoredEvent]:
            return sorted(
                (loaded[i] for i in by_type[rel_type] if i in loaded
                 and loaded[i].redacted_by is None and loaded[i].room_id == ev.room_id),
                key=lambda e: e.stream_ordering,
            )

        out: JsonDict = {}
        edits = [e for e in children("m.replace") if _is_valid_edit(ev, e)]
        if edits and ev.redacted_by is None:
            latest = max(edits, key=lambda e: (int(e.pdu["origin_server_ts"]), e.event_id))
            out["m.replace"] = (await self._format([latest], viewer, None, with_room_id,
                                                   MAX_BUNDLE_DEPTH))[0]
        thread = children("m.thread")
        if thread:
            latest_event = (await self._format([thread[-1]], viewer, None, with_room_id,
                                               depth + 1))[0]
            out["m.thread"] = {
                "latest_event": latest_event,
                "count": len(thread),
                "current_user_participated": viewer is not None and (
                    ev.pdu["sender"] == viewer or any(e.pdu["sender"] == viewer for e in thread)
                ),
            }
        references = children("m.reference")
        if references:
            out["m.reference"] = {"chunk": [{"event_id": e.event_id} for e in references]}
        return out
