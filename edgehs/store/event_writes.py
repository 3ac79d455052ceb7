"""Event writes, run inside ``Database.write`` by the persist step (``service/persist.py``):
the event row with its DAG edges, relation and redaction rows, and the forward extremities."""

import sqlite3
from collections.abc import Iterable

import aiosqlite

from edgehs.protocol.canonical_json import encode_canonical_json
from edgehs.protocol.events import auth_event_ids, prev_event_ids, redaction_target
from edgehs.types import JsonDict


class DuplicateTransaction(Exception):
    """The (sender, device, txn_id) already named an event: the request is a retry."""


INSERT_EVENT = """
INSERT INTO events (stream_ordering, event_id, room_id, type, state_key, sender, origin_server_ts,
                    depth, json, outlier, rejected_reason, state_before, state_after, txn_id,
                    device_id, soft_failed, room_state_after)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


async def insert_event(
    conn: aiosqlite.Connection,
    pdu: JsonDict,
    stream_ordering: int,
    room_id: str,
    *,
    state_before: int | None,
    state_after: int | None,
    outlier: bool = False,
    rejected_reason: str | None = None,
    txn_id: str | None = None,
    device_id: str | None = None,
    redaction_by_power: bool = False,
    soft_failed: bool = False,
    room_state_after: int | None = None,
) -> None:
    """Insert the event, its DAG edges, its relation and redaction rows.

    ``redaction_by_power``: for an ``m.room.redaction``, whether its sender had the room's
    ``redact`` level (migration 0015 says when a redaction applies). ``soft_failed`` and
    ``room_state_after``: see migration 0022."""
    event_id = pdu["event_id"]
    body = {k: v for k, v in pdu.items() if k != "event_id"}
    try:
        await conn.execute(INSERT_EVENT, (
            stream_ordering, event_id, room_id, pdu["type"], pdu.get("state_key"),
            pdu["sender"], pdu["origin_server_ts"], pdu["depth"],
            encode_canonical_json(body).decode(), int(outlier), rejected_reason, state_before,
            state_after, txn_id, device_id, int(soft_failed), room_state_after,
        ))
    except sqlite3.IntegrityError as exc:
        if txn_id is not None and "events.txn_id" in str(exc):
            raise DuplicateTransaction(txn_id) from exc
        raise
    await conn.executemany(
        "INSERT OR IGNORE INTO event_edges (event_id, prev_event_id) VALUES (?, ?)",
        [(event_id, p) for p in prev_event_ids(pdu)],
    )
    await conn.executemany(
        "INSERT OR IGNORE INTO event_auth (event_id, auth_id) VALUES (?, ?)",
        [(event_id, a) for a in auth_event_ids(pdu)],
    )
    if rejected_reason is not None:
        return
    content = pdu.get("content")
    relates = content.get("m.relates_to") if isinstance(content, dict) else None
    if isinstance(relates, dict) and isinstance(relates.get("event_id"), str) and isinstance(
        relates.get("rel_type"), str
    ):
        await conn.execute(
            "INSERT OR IGNORE INTO event_relations VALUES (?, ?, ?, ?, ?)",
            (event_id, relates["event_id"], relates["rel_type"], room_id, pdu["type"]),
        )
    redacts = redaction_target(pdu)
    if redacts is not None:
        await conn.execute(
            "INSERT OR IGNORE INTO redactions (event_id, redacts, by_power) VALUES (?, ?, ?)",
            (event_id, redacts, int(redaction_by_power)))


async def update_forward_extremities(
    conn: aiosqlite.Connection, room_id: str, removed: Iterable[str], added: Iterable[str]
) -> None:
    """Take ``removed`` out of the room's forward extremities and put ``added`` in."""
    await conn.executemany(
        "DELETE FROM forward_extremities WHERE room_id = ? AND event_id = ?",
        [(room_id, e) for e in removed],
    )
    await conn.executemany("INSERT OR IGNORE INTO forward_extremities VALUES (?, ?)",
                           [(room_id, e) for e in added])
