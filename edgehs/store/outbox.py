"""The durable outbox: rows to deliver per destination, and each destination's transaction.

A destination's pending rows are delivered as numbered transactions. The rows of the
transaction in flight are remembered (``inflight_last_row``), so a retry -- after a failure or a
restart -- resends the same rows under the same transaction id, as the AS API requires. A
transaction is the longest run of pending rows, in order, with at most 50 events (PDUs) and 100
other rows (EDUs: ephemeral, to-device, push payloads), the limits of the federation spec
(https://spec.matrix.org/v1.19/server-server-api/#transactions).

Transaction ids are seeded from the clock: a new transaction's id is the current time in
milliseconds, or the destination's last id plus one if that is larger. They increase strictly
per destination (also when the clock steps back), and a database that starts over (reset,
restored from a backup) does not reuse ids a destination has already seen -- receivers dedupe on
them and would drop the repeat -- as long as its transactions averaged less than one a
millisecond and the clock did not step back across the reset.

A failing destination's retry state (``outbox_retry``) is persisted too, so that a restart keeps
its backoff; it is cleared in the commit that acknowledges a delivery.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiosqlite

from edgehs.store.db import Database
from edgehs.types import JsonDict

MAX_PDUS = 50  # 'event' rows in one transaction
MAX_EDUS = 100  # the other rows in one transaction


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: str  # 'event', 'ephemeral', 'to_device'
    event_id: str | None
    payload: JsonDict | None


@dataclass(frozen=True)
class RetryState:
    """A failing destination: since when, when to try next, and the current backoff (ms)."""
    failing_since_ts: int
    next_attempt_ts: int
    backoff_ms: int


async def enqueue_event(conn: aiosqlite.Connection, destinations: list[str], event_id: str) -> None:
    """Queue an event for each destination, inside the event's own transaction."""
    await conn.executemany(
        "INSERT INTO outbox (destination, kind, event_id) VALUES (?, 'event', ?)",
        [(d, event_id) for d in destinations],
    )


async def enqueue_payload(conn: aiosqlite.Connection, destination: str, kind: str,
                          payload: JsonDict) -> None:
    await conn.execute(
        "INSERT INTO outbox (destination, kind, payload) VALUES (?, ?, ?)",
        (destination, kind, json.dumps(payload)),
    )


def _row(r: aiosqlite.Row) -> OutboxRow:
    return OutboxRow(r[0], r[1], r[2], None if r[3] is None else json.loads(r[3]))


class OutboxStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock  # wall-clock seconds, the seed of transaction ids

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def pending_destinations(self) -> list[str]:
        """Destinations with something to deliver (for recovery at start-up)."""
        rows = await self.db.fetchall(
            "SELECT DISTINCT destination FROM outbox "
            "UNION SELECT destination FROM outbox_destinations WHERE inflight_txn_id IS NOT NULL"
        )
        return [r[0] for r in rows]

    async def next_transaction(self, destination: str, max_pdus: int = MAX_PDUS,
                               max_edus: int = MAX_EDUS) -> tuple[int, list[OutboxRow]] | None:
        """The transaction to send now: the one in flight if any (same id, same rows), else a
        new one of pending rows within the limits. None when there is nothing to send."""
        async def run(conn: aiosqlite.Connection) -> tuple[int, list[OutboxRow]] | None:
            return await _claim(conn, destination, max_pdus, max_edus, self._now_ms())
        return await self.db.write(run)

    async def acknowledge(self, destination: str, txn_id: int, claim_next: bool = False,
                          max_pdus: int = MAX_PDUS, max_edus: int = MAX_EDUS
                          ) -> tuple[int, list[OutboxRow]] | None:
        """The destination accepted transaction ``txn_id``: drop its rows and its retry
        state. With ``claim_next`` the next transaction is claimed in the same commit (one
        fsync less per transaction) and returned."""
        async def run(conn: aiosqlite.Connection) -> tuple[int, list[OutboxRow]] | None:
            await conn.execute(
                "DELETE FROM outbox WHERE destination = ? AND id <= (SELECT inflight_last_row "
                "FROM outbox_destinations WHERE destination = ? AND inflight_txn_id = ?)",
                (destination, destination, txn_id),
            )
            await conn.execute(
                "UPDATE outbox_destinations SET inflight_txn_id = NULL, inflight_last_row = NULL "
                "WHERE destination = ? AND inflight_txn_id = ?",
                (destination, txn_id),
            )
            # It answered: it is not failing any more.
            await conn.execute("DELETE FROM outbox_retry WHERE destination = ?", (destination,))
            if not claim_next:
                return None
            return await _claim(conn, destination, max_pdus, max_edus, self._now_ms())
        return await self.db.write(run)

    async def retry_states(self) -> dict[str, RetryState]:
        """Every failing destination's retry state (read at start-up)."""
        rows = await self.db.fetchall(
            "SELECT destination, failing_since_ts, next_attempt_ts, backoff_ms FROM outbox_retry"
        )
        return {r[0]: RetryState(int(r[1]), int(r[2]), int(r[3])) for r in rows}

    async def set_retry_state(self, destination: str, state: RetryState) -> None:
        """A delivery failed: remember when to try again, across restarts."""
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT OR REPLACE INTO outbox_retry (destination, failing_since_ts, "
                "next_attempt_ts, backoff_ms) VALUES (?, ?, ?, ?)",
                (destination, state.failing_since_ts, state.next_attempt_ts, state.backoff_ms),
            )
        await self.db.write(run)

    async def count_pending(self, destination: str) -> int:
        return int(await self.db.fetchval(
            "SELECT COUNT(*) FROM outbox WHERE destination = ?", (destination,)
        ))


def _within_limits(rows: list[OutboxRow], max_pdus: int, max_edus: int) -> list[OutboxRow]:
    """The longest prefix of ``rows`` with at most ``max_pdus`` events and ``max_edus`` other
    rows. A prefix, so that rows go out in order and a transaction is "every row up to an id"."""
    pdus = edus = 0
    for n, row in enumerate(rows):
        if row.kind == "event":
            pdus += 1
        else:
            edus += 1
        if pdus > max_pdus or edus > max_edus:
            return rows[:n]
    return rows


async def _claim(conn: aiosqlite.Connection, destination: str, max_pdus: int, max_edus: int,
                 now_ms: int) -> tuple[int, list[OutboxRow]] | None:
    """Inside a transaction: the in-flight transaction, or a new one within the limits,
    numbered ``max(now_ms, next_txn_id)``."""
    await conn.execute(
        "INSERT OR IGNORE INTO outbox_destinations (destination) VALUES (?)", (destination,)
    )
    async with conn.execute(
        "SELECT next_txn_id, inflight_txn_id, inflight_last_row FROM outbox_destinations "
        "WHERE destination = ?", (destination,),
    ) as cur:
        state = await cur.fetchone()
    assert state is not None
    next_txn, inflight, last_row = state
    if inflight is not None:
        rows = await conn.execute_fetchall(
            "SELECT id, kind, event_id, payload FROM outbox WHERE destination = ? "
            "AND id <= ? ORDER BY id", (destination, last_row),
        )
        return int(inflight), [_row(r) for r in rows]
    rows = await conn.execute_fetchall(
        "SELECT id, kind, event_id, payload FROM outbox WHERE destination = ? "
        "ORDER BY id LIMIT ?", (destination, max_pdus + max_edus),
    )
    items = _within_limits([_row(r) for r in rows], max_pdus, max_edus)
    if not items:
        return None
    txn_id = max(int(next_txn), now_ms)
    await conn.execute(
        "UPDATE outbox_destinations SET inflight_txn_id = ?, inflight_last_row = ?, "
        "next_txn_id = ? WHERE destination = ?",
        (txn_id, items[-1].id, txn_id + 1, destination),
    )
    return txn_id, items
