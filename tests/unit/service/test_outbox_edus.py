"""EDUs built from their streams when a transaction is built (service.outbox with
service.outbound.EduStream), on a real SQLite file: no outbox row per EDU, positions persisted
only when a transaction is acknowledged, nothing acknowledged resent and nothing unacknowledged
lost across a restart, the 100-EDU limit."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

from edgehs.service.outbound import Delivery, EduStream, Transaction
from edgehs.service.outbox import OutboxSender
from edgehs.store.db import Database
from edgehs.store.outbox import OutboxStore
from edgehs.types import JsonDict

DEST = "as:bridge"


class ListStream:
    """A stream over a list: the EDU at index i has position i + 1. ``durable`` as a stream
    backed by a table (receipts), or not, as one kept in memory (typing)."""

    def __init__(self, name: str, durable: bool) -> None:
        self.name = name
        self.durable = durable
        self.items: list[JsonDict] = []

    def position(self) -> int:
        return len(self.items)

    async def edus(self, destination: str, since: int, upto: int
                   ) -> Sequence[tuple[int, JsonDict]]:
        return [(pos, self.items[pos - 1]) for pos in range(since + 1, upto + 1)]


class Receiver:
    def __init__(self, streams: Sequence[EduStream], failing: bool = False) -> None:
        self.streams = streams
        self.failing = failing
        self.txns: list[Transaction] = []
        self.sent: list[Transaction] = []
        self.attempted = asyncio.Event()

    def edu_streams(self) -> Sequence[EduStream]:
        return self.streams

    async def send(self, destination: str, txn: Transaction) -> Delivery:
        self.txns.append(txn)
        self.attempted.set()
        if self.failing:
            return Delivery.RETRY
        self.sent.append(txn)
        return Delivery.SENT

    def edus(self) -> list[JsonDict]:
        return [edu for txn in self.sent for edu in txn.edus]


async def running(path: Path, receiver: Receiver) -> tuple[Database, OutboxSender]:
    db = Database(path)
    await db.open()
    sender = OutboxSender(OutboxStore(db), first_retry_s=100.0, max_retry_s=1000.0)
    sender.register("as", receiver)
    await sender.start()
    return db, sender


async def idle(sender: OutboxSender) -> None:
    """Until the destination's worker has nothing left to do."""
    for _ in range(500):
        task = sender._workers.get(DEST)
        if task is None or task.done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the outbox worker did not finish")


async def stop(db: Database, sender: OutboxSender) -> None:
    await sender.stop()
    await db.close()


def edu(n: int) -> JsonDict:
    return {"type": "m.receipt", "n": n}


async def test_edus_are_built_into_transactions_without_outbox_rows(tmp_path: Path) -> None:
    receipts = ListStream("receipts", durable=True)
    receiver = Receiver([receipts])
    db, sender = await running(tmp_path / "db", receiver)
    try:
        receipts.items += [edu(1), edu(2)]
        sender.wake([DEST])
        await idle(sender)
        assert receiver.edus() == [edu(1), edu(2)]
        assert await db.fetchval("SELECT COUNT(*) FROM outbox") == 0, "no row per EDU"
        # Acknowledged: the position is persisted, nothing in flight.
        rows = await db.fetchall("SELECT stream, acked, inflight FROM outbox_edu_positions")
        assert [tuple(r) for r in rows] == [("receipts", 2, None)]
        receipts.items.append(edu(3))
        sender.wake([DEST])
        await idle(sender)
        assert receiver.edus() == [edu(1), edu(2), edu(3)], "each EDU once"
    finally:
        await stop(db, sender)


async def test_a_restart_resends_the_unacknowledged_edus_and_none_acknowledged(
        tmp_path: Path) -> None:
    receipts = ListStream("receipts", durable=True)  # its items outlive the process
    first = Receiver([receipts])
    db, sender = await running(tmp_path / "db", first)
    receipts.items += [edu(1), edu(2)]
    sender.wake([DEST])
    await idle(sender)
    assert first.edus() == [edu(1), edu(2)]
    await stop(db, sender)

    # The destination is down: the next EDUs stay in flight when the server stops.
    receipts.items += [edu(3), edu(4)]
    down = Receiver([receipts], failing=True)
    db, sender = await running(tmp_path / "db", down)
    sender.wake([DEST])
    await asyncio.wait_for(down.attempted.wait(), 5)
    await stop(db, sender)
    [attempt] = down.txns
    assert attempt.edus == [edu(3), edu(4)]

    # Restarted: the same transaction (same id, same EDUs), then the new one.
    receipts.items.append(edu(5))
    back = Receiver([receipts])
    db, sender = await running(tmp_path / "db", back)
    try:
        sender.retry_now(DEST)
        await idle(sender)
        assert back.sent[0].txn_id == attempt.txn_id
        assert back.sent[0].edus == [edu(3), edu(4)]
        assert back.edus() == [edu(3), edu(4), edu(5)], "no acknowledged EDU again, none lost"
    finally:
        await stop(db, sender)

    # Restarted once more with nothing new: nothing is sent.
    quiet = Receiver([receipts])
    db, sender = await running(tmp_path / "db", quiet)
    try:
        await idle(sender)
        assert quiet.txns == []
    finally:
        await stop(db, sender)


async def test_a_memory_stream_starts_at_its_position_at_start_up(tmp_path: Path) -> None:
    typing = ListStream("typing", durable=False)
    typing.items += [edu(1)]  # before the start: not this process's to send
    receiver = Receiver([typing])
    db, sender = await running(tmp_path / "db", receiver)
    try:
        typing.items.append(edu(2))
        sender.wake([DEST])
        await idle(sender)
        assert receiver.edus() == [edu(2)]
        assert await db.fetchval("SELECT COUNT(*) FROM outbox_edu_positions") == 0
    finally:
        await stop(db, sender)


async def test_at_most_100_edus_a_transaction_the_rest_in_the_next(tmp_path: Path) -> None:
    receipts = ListStream("receipts", durable=True)
    typing = ListStream("typing", durable=False)
    receiver = Receiver([receipts, typing])
    db, sender = await running(tmp_path / "db", receiver)
    try:
        receipts.items += [edu(n) for n in range(130)]
        typing.items += [{"type": "m.typing", "n": n} for n in range(30)]
        sender.wake([DEST])
        await idle(sender)
        assert [len(t.edus) for t in receiver.sent] == [100, 60]
        assert receiver.edus() == receipts.items + typing.items
    finally:
        await stop(db, sender)
