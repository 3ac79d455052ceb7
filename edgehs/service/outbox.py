"""Outbound delivery: one worker per destination, in order, with exponential backoff.

Rows are queued in the transaction of what they deliver (``store.outbox``); this sender turns
them into numbered transactions and hands each to the deliverer registered for the
destination's kind ("as:<id>" -> the appservice pusher). A transaction is retried, unchanged
and under the same id, until the destination accepts it; only then are its rows deleted.

A failed delivery persists the destination's retry state (failing since, next attempt,
backoff), so that at start-up -- when every destination with pending rows is resumed -- a
destination that was failing is tried again at its next attempt time with its backoff, neither
at once nor from the first delay.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from edgehs.store.outbox import OutboxRow, OutboxStore, RetryState

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 60.0


class DeliveryFailed(Exception):
    """The destination did not accept the transaction; it will be retried."""


class Deliverer(Protocol):
    async def deliver(self, destination: str, txn_id: int, rows: list[OutboxRow]) -> None:
        """Deliver one transaction or raise DeliveryFailed."""


class OutboxSender:
    def __init__(self, store: OutboxStore, first_retry_s: float = FIRST_RETRY_S,
                 max_retry_s: float = MAX_RETRY_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self.clock = clock  # wall-clock seconds: retry times outlive the process
        self._retry: dict[str, asyncio.Event] = {}
        self._deliverers: dict[str, Deliverer] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, asyncio.Event] = {}
        self._retry_states: dict[str, RetryState] = {}
        self._stopped = False

    def register(self, kind: str, deliverer: Deliverer) -> None:
        """Destinations named "<kind>:..." are delivered by ``deliverer``."""
        self._deliverers[kind] = deliverer

    async def start(self) -> None:
        """Resume every destination that still has something to deliver, each failing one at
        its persisted next attempt time."""
        self._retry_states.update(await self.store.retry_states())
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
        """Forget the backoff (e.g. the destination told us it is back) and try again. The
        destination stays failing (since the same time) until a delivery succeeds."""
        state = self._retry_states.get(destination)
        if state is not None:
            self._retry_states[destination] = RetryState(state.failing_since_ts, 0, 0)
        self._retry.setdefault(destination, asyncio.Event()).set()
        self.wake([destination])

    def retry_state(self, destination: str) -> RetryState | None:
        """The destination's retry state; None when it is not failing."""
        return self._retry_states.get(destination)

    async def _failed(self, destination: str) -> float:
        """Persist the retry state after a failed delivery; the delay before the next try."""
        now_ms = int(self.clock() * 1000)
        previous = self._retry_states.get(destination)
        first_ms = int(self.first_retry_s * 1000)
        if previous is None or previous.backoff_ms <= 0:
            backoff_ms = first_ms
        else:
            backoff_ms = min(int(self.max_retry_s * 1000), previous.backoff_ms * 2)
        state = RetryState(
            failing_since_ts=now_ms if previous is None else previous.failing_since_ts,
            next_attempt_ts=now_ms + backoff_ms, backoff_ms=backoff_ms,
        )
        self._retry_states[destination] = state
        self._retry.setdefault(destination, asyncio.Event()).clear()
        await self.store.set_retry_state(destination, state)
        return backoff_ms / 1000

    async def _wait_for_next_attempt(self, destination: str) -> None:
        """Sleep until the destination's next attempt time, or until retry_now(). Never longer
        than the longest backoff, even if the wall clock stepped back since that time was set."""
        state = self._retry_states.get(destination)
        if state is None:
            return
        delay = min(self.max_retry_s, state.next_attempt_ts / 1000 - self.clock())
        if delay <= 0:
            return
        retry = self._retry.setdefault(destination, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(retry.wait(), delay)

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
                txn = await self.store.next_transaction(destination)
            if txn is None:
                if not pending.is_set():
                    return  # nothing left: the next wake() starts a new worker
                continue
            txn_id, rows = txn
            await self._wait_for_next_attempt(destination)
            try:
                await deliverer.deliver(destination, txn_id, rows)
            except DeliveryFailed as exc:
                delay = await self._failed(destination)
                log.info("delivery of txn %d to %s failed (%s); retry in %.1fs", txn_id,
                         destination, exc, delay)
                continue  # the same transaction, still in flight
            self._retry_states.pop(destination, None)
            pending.clear()
            # Acknowledge and claim the next transaction in one commit.
            txn = await self.store.acknowledge(destination, txn_id, claim_next=True)
            if txn is None and not pending.is_set():
                return  # nothing left and nothing new: the next wake() starts a new worker
