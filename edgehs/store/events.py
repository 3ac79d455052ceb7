"""Events, the DAG edges and forward extremities.

Events are kept as their full PDU (canonical JSON without ``event_id``); loaded events get
``event_id`` added back so that every layer can address them.

Two orders (DESIGN.md, "Orders"):

- the **stream** (``stream_ordering``) says when this server learned of an event. Live events
  have positive positions; backfilled events and outliers negative ones
  (``store/streams.py``). /sync and everything that follows the stream read only positive
  positions (:meth:`EventStore.get_room_events`, :meth:`EventStore.rooms_with_events_after`
  and the others below), so history learned late never looks new;
- the **topological** order, the key ``(depth, stream_ordering)``, says where an event sits in
  its room: /messages and /context follow it (:meth:`EventStore.get_room_events_topo`).

Outliers and rejected events are in neither: no query of a timeline returns them.
"""

import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from edgehs.store.db import Database, Row
from edgehs.types import JsonDict

# (depth, stream_ordering): an event's place in its room. A key also names the gap just after
# that place: pagination from key k goes backwards through events <= k, forwards through > k.
TopoKey = tuple[int, int]
# Before every event (depth is never negative) and after every event.
TOPO_BOTTOM: TopoKey = (-1, 0)
TOPO_TOP: TopoKey = (2**62, 0)


def just_before(key: TopoKey) -> TopoKey:
    """The gap just before the event at ``key`` (stream positions are unique, so no event
    lies between the two keys)."""
    return (key[0], key[1] - 1)


@dataclass(frozen=True)
class StoredEvent:
    """A PDU plus what the server knows about it."""

    pdu: JsonDict  # includes "event_id"; a v12 create event has no "room_id"
    stream_ordering: int
    room_id: str
    redacted_by: str | None = None
    txn_id: str | None = None
    device_id: str | None = None
    outlier: bool = False
    rejected_reason: str | None = None
    soft_failed: bool = False

    @property
    def event_id(self) -> str:
        return str(self.pdu["event_id"])

    @property
    def topo(self) -> TopoKey:
        """The event's place in its room's topological order."""
        return (int(self.pdu["depth"]), self.stream_ordering)

    @property
    def in_timeline(self) -> bool:
        """Whether the event has a place in the room's timeline (neither an outlier nor
        rejected nor soft-failed)."""
        return not self.outlier and self.rejected_reason is None and not self.soft_failed


# Columns every event query selects, and whether a redaction applies to the row.
SELECT_EVENT = """
SELECT e.stream_ordering, e.event_id, e.room_id, e.json, e.txn_id, e.device_id,
       e.outlier, e.rejected_reason, e.soft_failed,
       (SELECT r.event_id FROM applied_redactions r WHERE r.redacts = e.event_id LIMIT 1)
         AS redacted_by
FROM events e
"""


def _row_to_event(row: Row) -> StoredEvent:
    pdu = json.loads(row["json"])
    pdu["event_id"] = row["event_id"]
    return StoredEvent(pdu, row["stream_ordering"], row["room_id"], row["redacted_by"],
                       row["txn_id"], row["device_id"], bool(row["outlier"]),
                       row["rejected_reason"], bool(row["soft_failed"]))


PDU_CACHE_SIZE = 2000

# The conditions of a timeline event, and of a live one (what the stream, so /sync, shows).
TIMELINE = ("e.outlier = 0", "e.rejected_reason IS NULL", "e.soft_failed = 0")
LIVE = (*TIMELINE, "e.stream_ordering > 0")


def _add_filters(where: list[str], params: list[Any], types: Sequence[str] | None,
                 not_types: Sequence[str] | None, senders: Sequence[str] | None) -> None:
    for column, values, op in (("type", types, "IN"), ("type", not_types, "NOT IN"),
                               ("sender", senders, "IN")):
        if values is not None:
            where.append(f"e.{column} {op} ({','.join('?' * len(values))})")
            params.extend(values)


class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # event_id -> PDU. PDUs never change once stored (redaction is applied when served),
        # so the auth events of every send come from here instead of the database.
        self._pdus: OrderedDict[str, JsonDict] = OrderedDict()

    def remember_pdu(self, pdu: JsonDict) -> None:
        """Cache a committed PDU (callers must treat cached PDUs as read-only)."""
        self._pdus[pdu["event_id"]] = pdu
        self._pdus.move_to_end(pdu["event_id"])
        while len(self._pdus) > PDU_CACHE_SIZE:
            self._pdus.popitem(last=False)

    async def get_event(self, event_id: str) -> StoredEvent | None:
        row = await self.db.fetchone(SELECT_EVENT + "WHERE e.event_id = ?", (event_id,))
        return None if row is None else _row_to_event(row)

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
        ids = list(dict.fromkeys(event_ids))
        found: dict[str, StoredEvent] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in await self.db.fetchall(
                SELECT_EVENT + f"WHERE e.event_id IN ({marks})", chunk
            ):
                ev = _row_to_event(row)
                found[ev.event_id] = ev
        return found

    async def get_pdus(self, event_ids: Iterable[str]) -> dict[str, JsonDict]:
        """The raw PDUs (for auth and state resolution, which ignore redactions). Read-only."""
        found: dict[str, JsonDict] = {}
        missing = []
        for event_id in event_ids:
            pdu = self._pdus.get(event_id)
            if pdu is None:
                missing.append(event_id)
            else:
                found[event_id] = pdu
        if missing:
            for event_id, ev in (await self.get_events(missing)).items():
                found[event_id] = ev.pdu
                self.remember_pdu(ev.pdu)
        return found

    async def get_forward_extremities(self, room_id: str) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT event_id FROM forward_extremities WHERE room_id = ?", (room_id,)
        )
        return [r[0] for r in rows]

    async def room_state_group(self, room_id: str) -> int | None:
        """The state group of the room's current state: recorded with the newest live event
        (migration 0022), which every change of current state comes with."""
        value = await self.db.fetchval(
            "SELECT COALESCE(room_state_after, state_after) FROM events WHERE room_id = ? "
            "AND stream_ordering > 0 AND outlier = 0 AND rejected_reason IS NULL "
            "AND soft_failed = 0 ORDER BY stream_ordering DESC LIMIT 1", (room_id,))
        return None if value is None else int(value)

    async def resolved_between(self, room_id: str, after: int, upto: int) -> bool:
        """Whether the room's state was resolved (forks merged) at a position in
        (after, upto]: current state then changed beyond the events' own state."""
        return await self.db.fetchval(
            "SELECT 1 FROM events WHERE room_id = ? AND stream_ordering > ? AND "
            "stream_ordering <= ? AND room_state_after IS NOT NULL LIMIT 1",
            (room_id, after, upto)) is not None

    async def referenced_by_stored(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` a stored, accepted event already lists in its prev_events:
        an event that arrives after its children is no forward extremity."""
        if not event_ids:
            return set()
        rows = await self.db.fetchall(
            "SELECT DISTINCT ed.prev_event_id FROM event_edges ed JOIN events e "
            "ON e.event_id = ed.event_id WHERE e.outlier = 0 AND e.rejected_reason IS NULL "
            "AND e.soft_failed = 0 "
            f"AND ed.prev_event_id IN ({','.join('?' * len(event_ids))})", list(event_ids))
        return {r[0] for r in rows}

    async def rejected_among(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` were stored as rejected."""
        if not event_ids:
            return set()
        rows = await self.db.fetchall(
            "SELECT event_id FROM events WHERE rejected_reason IS NOT NULL AND event_id IN "
            f"({','.join('?' * len(event_ids))})", list(event_ids))
        return {r[0] for r in rows}

    async def get_event_by_txn(self, sender: str, device_id: str, txn_id: str) -> str | None:
        value = await self.db.fetchval(
            "SELECT event_id FROM events WHERE sender = ? AND device_id = ? AND txn_id = ?",
            (sender, device_id, txn_id),
        )
        return None if value is None else str(value)

    async def max_stream_ordering(self) -> int:
        return int(await self.db.fetchval("SELECT COALESCE(MAX(stream_ordering), 0) FROM events"))

    async def get_room_events(
        self,
        room_id: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int,
        backwards: bool,
        types: Sequence[str] | None = None,
        not_types: Sequence[str] | None = None,
        senders: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """The room's live timeline in stream order (what /sync shows): events with
        after < stream_ordering <= before, newest first when ``backwards``. Backfilled events
        (negative positions), outliers and rejected events are never part of it."""
        where = [*LIVE, "e.room_id = ?", "e.stream_ordering > ?"]
        params: list[Any] = [room_id, max(after or 0, 0)]
        if before is not None:
            where.append("e.stream_ordering <= ?")
            params.append(before)
        _add_filters(where, params, types, not_types, senders)
        order = "DESC" if backwards else "ASC"
        rows = await self.db.fetchall(
            SELECT_EVENT + f"WHERE {' AND '.join(where)} ORDER BY e.stream_ordering {order} "
            "LIMIT ?",
            [*params, limit],
        )
        return [_row_to_event(r) for r in rows]

    async def get_room_events_topo(
        self,
        room_id: str,
        *,
        after: TopoKey,
        upto: TopoKey,
        limit: int,
        backwards: bool,
        stream_after: int | None = None,
        stream_upto: int | None = None,
        types: Sequence[str] | None = None,
        not_types: Sequence[str] | None = None,
        senders: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """Room timeline events in topological order (depth, then stream position) with
        after < (depth, stream_ordering) <= upto, newest first when ``backwards`` (what
        /messages and /context show); and, when given, stream_after < stream_ordering <=
        stream_upto (a /sync token as a bound; what the notifier has announced). Backfilled
        events take their place by depth; outliers and rejected events are never part of a
        timeline."""
        where = [*TIMELINE, "e.room_id = ?", "(e.depth, e.stream_ordering) > (?, ?)",
                 "(e.depth, e.stream_ordering) <= (?, ?)"]
        params: list[Any] = [room_id, *after, *upto]
        for bound, op in ((stream_after, ">"), (stream_upto, "<=")):
            if bound is not None:
                where.append(f"e.stream_ordering {op} ?")
                params.append(bound)
        _add_filters(where, params, types, not_types, senders)
        order = "DESC" if backwards else "ASC"
        # The (room_id, depth) index holds the rowid (stream_ordering) too: no sort step.
        rows = await self.db.fetchall(
            SELECT_EVENT + f"WHERE {' AND '.join(where)} "
            f"ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT ?",
            [*params, limit],
        )
        return [_row_to_event(r) for r in rows]

    async def topo_key_at(self, room_id: str, position: int) -> TopoKey | None:
        """Where a /sync position stands in the room's topological order: the key of the
        topologically last live event learned by ``position`` (None: none yet)."""
        # Walk the (room_id, depth) index down from the top: the unary + keeps the planner
        # from taking the stream index instead, which sorts the whole room (the newest events
        # are nearly always the deepest, so this stops at once).
        row = await self.db.fetchone(
            "SELECT depth, stream_ordering FROM events e WHERE "
            f"{' AND '.join(TIMELINE)} AND e.room_id = ? AND +e.stream_ordering > 0 "
            "AND +e.stream_ordering <= ? "
            "ORDER BY e.depth DESC, e.stream_ordering DESC LIMIT 1",
            (room_id, position))
        return None if row is None else (int(row[0]), int(row[1]))

    async def current_state_between(
        self, room_id: str, after: int, before: int, *, types: Sequence[str] | None = None,
        not_types: Sequence[str] | None = None, senders: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """The room's current state events with after < stream_ordering <= before (live
        positions only), newest first."""
        where = [*LIVE, "cs.room_id = ?", "e.stream_ordering > ?", "e.stream_ordering <= ?"]
        params: list[Any] = [room_id, max(after, 0), before]
        _add_filters(where, params, types, not_types, senders)
        rows = await self.db.fetchall(
            SELECT_EVENT + "JOIN current_state cs ON cs.event_id = e.event_id "
            f"WHERE {' AND '.join(where)} ORDER BY e.stream_ordering DESC", params)
        return [_row_to_event(r) for r in rows]

    async def rooms_with_events_after(self, room_ids: Sequence[str], after: int) -> set[str]:
        """The rooms among ``room_ids`` with live timeline events after ``after``."""
        if not room_ids:
            return set()
        rows = await self.db.fetchall(
            f"SELECT DISTINCT room_id FROM events e WHERE {' AND '.join(LIVE)} "
            f"AND e.stream_ordering > ? AND e.room_id IN ({','.join('?' * len(room_ids))})",
            [max(after, 0), *room_ids],
        )
        return {r[0] for r in rows}

    async def room_changes_after(self, room_ids: Sequence[str], after: int) -> dict[str, bool]:
        """The rooms among ``room_ids`` with live timeline events after ``after``, each with
        whether one of them is a member event (one query, as
        :meth:`rooms_with_events_after`)."""
        if not room_ids:
            return {}
        rows = await self.db.fetchall(
            "SELECT room_id, MAX(type = 'm.room.member') FROM events e WHERE "
            f"{' AND '.join(LIVE)} AND e.stream_ordering > ? "
            f"AND e.room_id IN ({','.join('?' * len(room_ids))}) GROUP BY room_id",
            [max(after, 0), *room_ids],
        )
        return {r[0]: bool(r[1]) for r in rows}

    async def joined_between(self, room_id: str, user_id: str, after: int, upto: int) -> bool:
        """Whether the user's membership became "join" at a live position in (after, upto]."""
        return await self.db.fetchval(
            f"SELECT 1 FROM events e WHERE {' AND '.join(LIVE)} AND room_id = ? "
            "AND type = 'm.room.member' AND state_key = ? AND stream_ordering > ? "
            "AND stream_ordering <= ? AND json_extract(json, '$.content.membership') = 'join' "
            "LIMIT 1", (room_id, user_id, max(after, 0), upto)) is not None

    async def with_children(self, event_ids: Sequence[str], rel_types: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` have timeline child events of one of ``rel_types`` (one
        query)."""
        if not event_ids:
            return set()
        rows = await self.db.fetchall(
            "SELECT DISTINCT r.relates_to_id FROM event_relations r "
            f"JOIN events e ON e.event_id = r.event_id WHERE {' AND '.join(TIMELINE)} "
            f"AND r.rel_type IN ({','.join('?' * len(rel_types))}) AND r.relates_to_id IN "
            f"({','.join('?' * len(event_ids))})",
            [*rel_types, *event_ids],
        )
        return {r[0] for r in rows}

    async def get_relations(
        self, event_id: str, rel_type: str | None, event_type: str | None
    ) -> list[str]:
        """The timeline child events of ``event_id`` (outliers and rejected events are no
        one's children)."""
        sql = ("SELECT r.event_id FROM event_relations r JOIN events e ON e.event_id = r.event_id "
               f"WHERE {' AND '.join(TIMELINE)} AND r.relates_to_id = ?")
        params: list[Any] = [event_id]
        if rel_type is not None:
            sql += " AND r.rel_type = ?"
            params.append(rel_type)
        if event_type is not None:
            sql += " AND r.type = ?"
            params.append(event_type)
        return [r[0] for r in await self.db.fetchall(sql, params)]
