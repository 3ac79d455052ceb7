"""Outbound delivery: one worker per destination, in order, with exponential backoff.

Rows are queued in the transaction of what they deliver (``store.outbox``); this sender turns
them into numbered transactions and hands each to the deliverer registered for the
destination's kind ("as:<id>" -> the appservice pusher). A transaction is retried, unchanged
and under the same id, until the destination accepts it; only then are its rows deleted. At
start-up every destination with pending rows is resumed.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol

from edgehs.store.outbox import OutboxRow, OutboxStore

log = logging.getLogger(__name__)

MAX_ROWS_PER_TRANSACTION = 100
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 60.0


class DeliveryFailed(Exception):
    """The destination did not accept the transaction; it will be retried."""


class Deliverer(Protocol):
    async def deliver(self, destination: str, txn_id: int, rows: list[OutboxRow]) -> None:
        """Deliver one transaction or raise DeliveryFailed."""


class OutboxSender:
    def __init__(self, store: OutboxStore, first_retry_s: float = FIRST_RETRY_S,
                 max_retry_s: float = MAX_RETRY_S) -> None:
        self.store = store
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self._retry: dict[str, asyncio.Event] = {}
        self._deliverers: dict[str, Deliverer] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, asyncio.Event] = {}
        self._failures: dict[str, int] = {}
        self._stopped = False

    def register(self, kind: str, deliverer: Deliverer) -> None:
        """Destinations named "<kind>:..." are delivered by ``deliverer``."""
        self._deliverers[kind] = deliverer

    async def start(self) -> None:
        """Resume every destination that still has something to deliver."""
        self.wake(await self.store.pending_destinations())

    async def stop(self) -> None:
        """Stop the workers; an interrupted transaction stays in flight and is resent later."""
        self._stopped = True
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()

    def wake(self, destinations: Iterable[str]) -> None:
        """New rows were committed for these destinations."""
        if self._stopped:
            return
        for destination in destinations:
            self._pending.setdefault(destination, asyncio.Event()).set()
            task = self._workers.get(destination)
            if task is None or task.done():
                self._workers[destination] = asyncio.create_task(
                    self._worker(destination), name=f"outbox {destination}"
                )

    def retry_now(self, destination: str) -> None:
        """Forget the backoff (e.g. the destination told us it is back) and try again."""
        self._failures.pop(destination, None)
        self._retry.setdefault(destination, asyncio.Event()).set()
        self.wake([destination])

    def failures(self, destination: str) -> int:
        return self._failures.get(destination, 0)

    async def _worker(self, destination: str) -> None:
        pending = self._pending[destination]
        deliverer = self._deliverers.get(destination.split(":", 1)[0])
        if deliverer is None:
            log.error("no deliverer for outbox destination %s", destination)
            return
        txn: tuple[int, list[OutboxRow]] | None = None
        while True:
            if txn is None:
                pending.clear()
                txn = await self.store.next_transaction(destination, MAX_ROWS_PER_TRANSACTION)
            if txn is None:
                if not pending.is_set():
                    return  # nothing left: the next wake() starts a new worker
                continue
            txn_id, rows = txn
            try:
                await deliverer.deliver(destination, txn_id, rows)
            except DeliveryFailed as exc:
                failures = self._failures.get(destination, 0) + 1
                self._failures[destination] = failures
                delay = min(self.max_retry_s, self.first_retry_s * 2 ** (failures - 1))
                log.info("delivery of txn %d to %s failed (%s); retry in %.1fs", txn_id,
                         destination, exc, delay)
                retry = self._retry.setdefault(destination, asyncio.Event())
                retry.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(retry.wait(), delay)
                continue  # the same transaction, still in flight
            self._failures.pop(destination, None)
            pending.clear()
            # Acknowledge and claim the next transaction in one commit.
            txn = await self.store.acknowledge(destination, txn_id, MAX_ROWS_PER_TRANSACTION)
            if txn is None and not pending.is_set():
                return  # nothing left and nothing new: the next wake() starts a new worker
