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

EDUs are not rows (``service.outbound.EduStream``): a transaction may carry EDUs built from
their streams, and then records, per durable stream, the position it was built up to
(``outbox_edu_positions.inflight``); the commit that acknowledges it makes that position the
destination's acknowledged one. A transaction with EDUs and no row is numbered and remembered
like any other.
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
    kind: str  # 'event', 'to_device', 'push' ('ephemeral': queued before EDUs were built)
    event_id: str | None
    payload: JsonDict | None


@dataclass(frozen=True)
class Claim:
    """A transaction in flight: its id, its rows, and the positions of the durable EDU streams
    it was built up to (stream -> position)."""
    txn_id: int
    rows: list[OutboxRow]
    edu_upto: dict[str, int]


@dataclass(frozen=True)
class NextClaim:
    """What to claim as the next transaction: rows within ``max_pdus`` / ``max_edus`` (the
    EDU budget left after the built EDUs), and the durable streams' ranges its EDUs cover
    (stream -> (acknowledged position, position built up to)). ``has_edus``: the transaction
    is due even without rows."""
    edu_ranges: dict[str, tuple[int, int]]
    has_edus: bool
    max_pdus: int = MAX_PDUS
    max_edus: int = MAX_EDUS


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

    async def inflight(self, destination: str) -> Claim | None:
        """The transaction in flight, to be resent unchanged (same id, same rows, the same EDU
        ranges); None when there is none. (Only the destination's worker changes it.)"""
        state = await self.db.fetchone(
            "SELECT inflight_txn_id, inflight_last_row FROM outbox_destinations "
            "WHERE destination = ? AND inflight_txn_id IS NOT NULL", (destination,),
        )
        if state is None:
            return None
        rows = await self.db.fetchall(
            "SELECT id, kind, event_id, payload FROM outbox WHERE destination = ? "
            "AND id <= ? ORDER BY id", (destination, -1 if state[1] is None else state[1]),
        )
        upto = await self.db.fetchall(
            "SELECT stream, inflight FROM outbox_edu_positions WHERE destination = ? "
            "AND inflight IS NOT NULL", (destination,),
        )
        return Claim(int(state[0]), [_row(r) for r in rows], {r[0]: int(r[1]) for r in upto})

    async def edu_positions(self, destination: str) -> dict[str, int]:
        """The destination's acknowledged position in each durable EDU stream it has seen."""
        rows = await self.db.fetchall(
            "SELECT stream, acked FROM outbox_edu_positions WHERE destination = ?",
            (destination,),
        )
        return {r[0]: int(r[1]) for r in rows}

    async def edu_destinations(self) -> list[str]:
        """Every destination with EDU stream positions (woken at start-up: their streams may
        have moved while nothing was running)."""
        rows = await self.db.fetchall("SELECT DISTINCT destination FROM outbox_edu_positions")
        return [r[0] for r in rows]

    async def claim(self, destination: str, spec: NextClaim) -> Claim | None:
        """The transaction to send now: the one in flight if any, else a new one of pending
        rows within the limits (and the EDU ranges of ``spec``). None when there is nothing
        to send."""
        async def run(conn: aiosqlite.Connection) -> Claim | None:
            return await _claim(conn, destination, spec, self._now_ms())
        return await self.db.write(run)

    async def acknowledge(self, destination: str, txn_id: int, claim_next: NextClaim | None = None
                          ) -> Claim | None:
        """The destination accepted transaction ``txn_id``: drop its rows and its retry
        state, and make the EDU positions it was built up to the acknowledged ones. With
        ``claim_next`` the next transaction is claimed in the same commit (one fsync less per
        transaction) and returned."""
        async def run(conn: aiosqlite.Connection) -> Claim | None:
            async with conn.execute(
                "SELECT 1 FROM outbox_destinations WHERE destination = ? AND inflight_txn_id = ?",
                (destination, txn_id),
            ) as cur:
                current = await cur.fetchone() is not None
            if current:
                await conn.execute(
                    "DELETE FROM outbox WHERE destination = ? AND id <= (SELECT "
                    "inflight_last_row FROM outbox_destinations WHERE destination = ?)",
                    (destination, destination),
                )
                await conn.execute(
                    "UPDATE outbox_destinations SET inflight_txn_id = NULL, "
                    "inflight_last_row = NULL WHERE destination = ?", (destination,),
                )
                await conn.execute(
                    "UPDATE outbox_edu_positions SET acked = inflight, inflight = NULL "
                    "WHERE destination = ? AND inflight IS NOT NULL", (destination,),
                )
            # It answered: it is not failing any more.
            await conn.execute("DELETE FROM outbox_retry WHERE destination = ?", (destination,))
            if claim_next is None:
                return None
            return await _claim(conn, destination, claim_next, self._now_ms())
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

    async def has_pending(self, destination: str) -> bool:
        """Whether any row waits for the destination (a read: no commit when there is none)."""
        return await self.db.fetchone(
            "SELECT 1 FROM outbox WHERE destination = ? LIMIT 1", (destination,)) is not None

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


async def _inflight(conn: aiosqlite.Connection, destination: str) -> Claim | None:
    async with conn.execute(
        "SELECT inflight_txn_id, inflight_last_row FROM outbox_destinations "
        "WHERE destination = ? AND inflight_txn_id IS NOT NULL", (destination,),
    ) as cur:
        state = await cur.fetchone()
    if state is None:
        return None
    inflight, last_row = state
    rows = await conn.execute_fetchall(
        "SELECT id, kind, event_id, payload FROM outbox WHERE destination = ? "
        "AND id <= ? ORDER BY id", (destination, -1 if last_row is None else last_row),
    )
    upto = await conn.execute_fetchall(
        "SELECT stream, inflight FROM outbox_edu_positions WHERE destination = ? "
        "AND inflight IS NOT NULL", (destination,),
    )
    return Claim(int(inflight), [_row(r) for r in rows], {r[0]: int(r[1]) for r in upto})


async def _claim(conn: aiosqlite.Connection, destination: str, spec: NextClaim,
                 now_ms: int) -> Claim | None:
    """Inside a transaction: the in-flight transaction, or a new one within the limits,
    numbered ``max(now_ms, next_txn_id)``, with its EDU ranges recorded."""
    inflight = await _inflight(conn, destination)
    if inflight is not None:
        return inflight
    await conn.execute(
        "INSERT OR IGNORE INTO outbox_destinations (destination) VALUES (?)", (destination,)
    )
    async with conn.execute(
        "SELECT next_txn_id FROM outbox_destinations WHERE destination = ?", (destination,),
    ) as cur:
        state = await cur.fetchone()
    assert state is not None
    rows = await conn.execute_fetchall(
        "SELECT id, kind, event_id, payload FROM outbox WHERE destination = ? "
        "ORDER BY id LIMIT ?", (destination, spec.max_pdus + max(spec.max_edus, 0)),
    )
    items = _within_limits([_row(r) for r in rows], spec.max_pdus, spec.max_edus)
    if not items and not spec.has_edus:
        return None
    txn_id = max(int(state[0]), now_ms)
    await conn.execute(
        "UPDATE outbox_destinations SET inflight_txn_id = ?, inflight_last_row = ?, "
        "next_txn_id = ? WHERE destination = ?",
        (txn_id, items[-1].id if items else None, txn_id + 1, destination),
    )
    await conn.executemany(
        "INSERT INTO outbox_edu_positions (destination, stream, acked, inflight) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (destination, stream) DO UPDATE SET "
        "acked = excluded.acked, inflight = excluded.inflight",
        [(destination, name, since, upto) for name, (since, upto) in spec.edu_ranges.items()],
    )
    return Claim(txn_id, items, {name: upto for name, (_, upto) in spec.edu_ranges.items()})
