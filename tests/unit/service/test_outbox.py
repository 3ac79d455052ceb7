"""The durable outbox (store.outbox + service.outbox) on a real SQLite file: retry state that
survives a restart, transaction ids seeded from the clock, the spec's limits per transaction."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from edgehs.service.outbound import Delivery, EduStream, Transaction
from edgehs.service.outbox import OutboxSender
from edgehs.store.db import Database
from edgehs.store.outbox import (
    MAX_EDUS,
    MAX_PDUS,
    NextClaim,
    OutboxRow,
    OutboxStore,
    RetryState,
    enqueue_event,
    enqueue_payload,
)

DEST = "as:bridge"
T0 = 1_800_000_000.0  # the fake wall clock's start, in seconds


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


NO_EDUS = NextClaim({}, has_edus=False)  # claim rows only


class Recorder:
    """An outbound sender that records each attempt and fails while ``failing``."""

    def __init__(self, failing: bool, streams: Sequence[EduStream] = ()) -> None:
        self.failing = failing
        self.streams = streams
        self.attempts: list[tuple[int, list[OutboxRow]]] = []
        self.txns: list[Transaction] = []
        self.attempted = asyncio.Event()

    def edu_streams(self) -> Sequence[EduStream]:
        return self.streams

    async def send(self, destination: str, txn: Transaction) -> Delivery:
        assert destination == DEST
        self.attempts.append((txn.txn_id, txn.rows))
        self.txns.append(txn)
        self.attempted.set()
        return Delivery.RETRY if self.failing else Delivery.SENT


async def queue(db: Database, n: int = 1) -> None:
    async def run(conn: aiosqlite.Connection) -> None:
        for i in range(n):
            await enqueue_payload(conn, DEST, "ephemeral", {"type": "m.typing", "n": i})
    await db.write(run)


async def open_sender(path: Path, deliverer: Recorder, clock: Clock,
                      first_retry_s: float = 100.0) -> tuple[Database, OutboxSender]:
    db = Database(path)
    await db.open()
    sender = OutboxSender(OutboxStore(db), first_retry_s=first_retry_s, max_retry_s=1000.0,
                          clock=clock)
    sender.register("as", deliverer)
    await sender.start()
    return db, sender


async def close(db: Database, sender: OutboxSender) -> None:
    await sender.stop()
    await db.close()


async def fail_once(path: Path, clock: Clock) -> RetryState:
    """Queue a row, let its first delivery fail, and close: the state a restart finds."""
    failing = Recorder(failing=True)
    db, sender = await open_sender(path, failing, clock)
    await queue(db)
    sender.wake([DEST])
    await asyncio.wait_for(failing.attempted.wait(), 5)
    for _ in range(100):  # the failure's state is written right after the attempt
        if await sender.store.retry_states():
            break
        await asyncio.sleep(0.01)
    state = sender.retry_state(DEST)
    await close(db, sender)
    assert state is not None
    return state


async def test_a_failure_persists_failing_since_next_attempt_and_backoff(tmp_path: Path) -> None:
    clock = Clock()
    state = await fail_once(tmp_path / "db", clock)
    assert state == RetryState(failing_since_ts=int(T0 * 1000),
                               next_attempt_ts=int(T0 * 1000) + 100_000, backoff_ms=100_000)
    db = Database(tmp_path / "db")
    await db.open()
    try:
        assert await OutboxStore(db).retry_states() == {DEST: state}
    finally:
        await db.close()


async def test_after_a_restart_a_failing_destination_waits_for_its_next_attempt(
        tmp_path: Path) -> None:
    clock = Clock()
    state = await fail_once(tmp_path / "db", clock)
    clock.now = T0 + 10  # restarted 10 s later: 90 s of backoff are left
    deliverer = Recorder(failing=False)
    db, sender = await open_sender(tmp_path / "db", deliverer, clock)
    try:
        assert sender.retry_state(DEST) == state
        await asyncio.sleep(0.3)
        assert deliverer.attempts == [], "the restart does not hammer a failing destination"
    finally:
        await close(db, sender)


async def test_after_a_restart_the_backoff_continues_and_success_clears_it(
        tmp_path: Path) -> None:
    clock = Clock()
    first = await fail_once(tmp_path / "db", clock)

    # Restarted after the next attempt time: tried at once, fails again, the backoff doubles
    # (it did not start over) and the destination is failing since the first failure.
    clock.now = T0 + 150
    failing = Recorder(failing=True)
    db, sender = await open_sender(tmp_path / "db", failing, clock)
    await asyncio.wait_for(failing.attempted.wait(), 5)
    txn_id = failing.attempts[0][0]
    for _ in range(100):
        if (await sender.store.retry_states())[DEST] != first:
            break
        await asyncio.sleep(0.01)
    second = (await sender.store.retry_states())[DEST]
    await close(db, sender)
    assert second == RetryState(failing_since_ts=first.failing_since_ts,
                                next_attempt_ts=int((T0 + 150) * 1000) + 200_000,
                                backoff_ms=200_000)

    # Restarted after that: delivered (same transaction id), and the state is gone.
    clock.now = T0 + 400
    working = Recorder(failing=False)
    db, sender = await open_sender(tmp_path / "db", working, clock)
    try:
        await asyncio.wait_for(working.attempted.wait(), 5)
        assert working.attempts[0][0] == txn_id, "a retried transaction keeps its id"
        for _ in range(100):
            if not await sender.store.retry_states():
                break
            await asyncio.sleep(0.01)
        assert await sender.store.retry_states() == {}
        assert sender.retry_state(DEST) is None
        assert await sender.store.count_pending(DEST) == 0
    finally:
        await close(db, sender)


async def test_retry_now_skips_the_persisted_backoff(tmp_path: Path) -> None:
    clock = Clock()
    await fail_once(tmp_path / "db", clock)
    clock.now = T0 + 1
    deliverer = Recorder(failing=False)
    db, sender = await open_sender(tmp_path / "db", deliverer, clock)
    try:
        await asyncio.sleep(0.1)
        assert deliverer.attempts == []
        sender.retry_now(DEST)  # e.g. the service answered a ping
        await asyncio.wait_for(deliverer.attempted.wait(), 5)
    finally:
        await close(db, sender)


# --- transaction ids -----------------------------------------------------------------------------


async def test_transaction_ids_start_at_the_clock_and_increase_strictly(db: Database) -> None:
    clock = Clock()
    store = OutboxStore(db, clock=clock)
    await queue(db)
    first = await store.claim(DEST, NO_EDUS)
    assert first is not None
    assert first.txn_id == int(T0 * 1000), "the first id is the time in milliseconds"
    again = await store.claim(DEST, NO_EDUS)
    assert again == first, "until acknowledged, the same transaction: same id, same rows"

    await queue(db)
    second = await store.acknowledge(DEST, first.txn_id, claim_next=NO_EDUS)  # same millisecond
    assert second is not None and second.txn_id == first.txn_id + 1
    await queue(db)
    clock.now = T0 - 3600  # the clock steps back an hour
    third = await store.acknowledge(DEST, second.txn_id, claim_next=NO_EDUS)
    assert third is not None and third.txn_id == second.txn_id + 1
    await queue(db)
    clock.now = T0 + 60
    fourth = await store.acknowledge(DEST, third.txn_id, claim_next=NO_EDUS)
    assert fourth is not None and fourth.txn_id == int((T0 + 60) * 1000)


async def test_transaction_ids_are_not_reused_after_a_database_reset(tmp_path: Path) -> None:
    clock = Clock()
    seen: list[int] = []
    for run in range(2):  # the second run starts from an empty database, a minute later
        db = Database(tmp_path / f"db{run}")
        await db.open()
        store = OutboxStore(db, clock=clock)
        for _ in range(5):
            await queue(db)
            txn = await store.claim(DEST, NO_EDUS)
            assert txn is not None
            seen.append(txn.txn_id)
            await store.acknowledge(DEST, txn.txn_id)
        await db.close()
        clock.now += 60
    assert seen == sorted(set(seen)), seen


async def test_transaction_ids_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    db = Database(tmp_path / "db")
    await db.open()
    store = OutboxStore(db, clock=clock)
    ids = []
    for _ in range(3):
        await queue(db)
        txn = await store.claim(DEST, NO_EDUS)
        assert txn is not None
        ids.append(txn.txn_id)
        await store.acknowledge(DEST, txn.txn_id)
    await queue(db)
    inflight = await store.claim(DEST, NO_EDUS)
    await db.close()
    clock.now = T0 - 10  # restarted with a clock that is behind

    db = Database(tmp_path / "db")
    await db.open()
    store = OutboxStore(db, clock=clock)
    try:
        assert await store.claim(DEST, NO_EDUS) == inflight, "the retry keeps its id"
        assert inflight is not None
        await queue(db)
        after = await store.acknowledge(DEST, inflight.txn_id, claim_next=NO_EDUS)
        assert after is not None
        assert [*ids, inflight.txn_id, after.txn_id] == list(range(ids[0], ids[0] + 5))
    finally:
        await db.close()


# --- limits --------------------------------------------------------------------------------------


async def queue_events(db: Database, n: int) -> None:
    async def run(conn: aiosqlite.Connection) -> None:
        for i in range(n):
            await enqueue_event(conn, [DEST], f"$e{i}")
    await db.write(run)


def kinds(rows: list[OutboxRow]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row.kind] = out.get(row.kind, 0) + 1
    return out


async def test_a_transaction_carries_at_most_50_pdus_and_100_edus(db: Database) -> None:
    """https://spec.matrix.org/v1.19/server-server-api/#transactions"""
    assert (MAX_PDUS, MAX_EDUS) == (50, 100)
    store = OutboxStore(db)
    await queue_events(db, 60)
    await queue(db, 10)

    async def to_device(conn: aiosqlite.Connection) -> None:
        for i in range(120):
            await enqueue_payload(conn, DEST, "to_device", {"type": "m.x", "n": i})
    await db.write(to_device)
    await queue_events(db, 5)
    all_ids = [r[0] for r in await db.fetchall("SELECT id FROM outbox ORDER BY id")]

    sent: list[OutboxRow] = []
    shapes = []
    txn = await store.claim(DEST, NO_EDUS)
    while txn is not None:
        shapes.append(kinds(txn.rows))
        sent += txn.rows
        txn = await store.acknowledge(DEST, txn.txn_id, claim_next=NO_EDUS)
    assert shapes == [
        {"event": 50},  # the 51st event would be one PDU too many
        {"event": 10, "ephemeral": 10, "to_device": 90},  # 100 EDUs
        {"to_device": 30, "event": 5},
    ]
    assert [r.id for r in sent] == all_ids, "every row once, in order"
    assert await store.count_pending(DEST) == 0


async def test_a_clock_that_stepped_back_never_stretches_the_wait(tmp_path: Path) -> None:
    clock = Clock()
    await fail_once(tmp_path / "db", clock)  # next attempt at T0 + 100 s
    clock.now = T0 - 86_400  # restarted with the clock a day behind
    deliverer = Recorder(failing=False)
    db = Database(tmp_path / "db")
    await db.open()
    sender = OutboxSender(OutboxStore(db), first_retry_s=100.0, max_retry_s=0.2, clock=clock)
    sender.register("as", deliverer)
    await sender.start()
    try:
        await asyncio.wait_for(deliverer.attempted.wait(), 5)  # after max_retry_s, not a day
    finally:
        await close(db, sender)
