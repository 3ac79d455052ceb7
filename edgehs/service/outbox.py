"""Outbound delivery: one worker per destination, in order, with exponential backoff.

Rows are queued in the transaction of what they deliver (``store.outbox``); this sender turns
them, with the EDUs of the destination's kind built from their streams, into numbered
transactions and hands each to the :class:`~edgehs.service.outbound.OutboundSender` registered
for the destination's kind ("as:<id>" -> the appservice pusher, "push:<id>" -> the push
gateway). A transaction is retried, unchanged and under the same id, until the destination
accepts it; only then are its rows deleted and its EDU stream positions acknowledged.

EDUs are built when a transaction is built: for each of the kind's streams, those after the
destination's acknowledged position up to the stream's current one, within the spec's 100
EDUs per transaction (a stream whose EDUs do not all fit stops at the position before the
first left out, and goes on in the next transaction). Durable streams' positions are persisted
with the transaction in flight and made the acknowledged ones in the commit that acknowledges
it, so a restart resends what was not acknowledged and nothing that was. Streams kept in
memory start over, with the process, at their position at start-up.

A failed delivery persists the destination's retry state (failing since, next attempt,
backoff), so that at start-up -- when every destination with pending rows is resumed -- a
destination that was failing is tried again at its next attempt time with its backoff, neither
at once nor from the first delay.
"""

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence

from edgehs.service.outbound import Delivery, EduStream, OutboundSender, Transaction
from edgehs.store.outbox import MAX_EDUS, MAX_PDUS, Claim, NextClaim, OutboxStore, RetryState
from edgehs.types import JsonDict

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 60.0


class OutboxSender:
    def __init__(self, store: OutboxStore, first_retry_s: float = FIRST_RETRY_S,
                 max_retry_s: float = MAX_RETRY_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self.clock = clock  # wall-clock seconds: retry times outlive the process
        self._retry: dict[str, asyncio.Event] = {}
        self._senders: dict[str, OutboundSender] = {}
        self._acked: dict[str, dict[str, int]] = {}  # destination -> stream -> position
        self._built: dict[str, dict[str, int]] = {}  # destination -> stream -> built up to
        self._start_positions: dict[str, int] = {}  # stream -> its position at start-up
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, asyncio.Event] = {}
        self._retry_states: dict[str, RetryState] = {}
        self._started = self._stopped = False

    def register(self, kind: str, sender: OutboundSender) -> None:
        """Destinations named "<kind>:..." are delivered by ``sender``."""
        self._senders[kind] = sender

    async def start(self) -> None:
        """Resume every destination that still has something to deliver, each failing one at
        its persisted next attempt time."""
        for sender in self._senders.values():
            for stream in sender.edu_streams():
                self._start_positions[stream.name] = stream.position()
        self._retry_states.update(await self.store.retry_states())
        self._started = True
        self.wake(await self.store.pending_destinations())
        self.wake(await self.store.edu_destinations())

    async def stop(self) -> None:
        """Stop the workers; an interrupted transaction stays in flight and is resent later."""
        self._stopped = True
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()

    def wake(self, destinations: Iterable[str]) -> None:
        """New rows were committed for these destinations, or their EDU streams moved. Before
        start() nothing runs: start() resumes every destination with pending rows."""
        if self._stopped or not self._started:
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

    # --- building transactions -------------------------------------------------------------

    async def _positions(self, destination: str, streams: Sequence[EduStream]
                         ) -> dict[str, int]:
        """The destination's acknowledged position in each stream (loaded once)."""
        acked = self._acked.get(destination)
        if acked is None:
            persisted = await self.store.edu_positions(destination)
            acked = self._acked[destination] = {
                s.name: persisted.get(s.name, self._start_positions.get(s.name, 0))
                if s.durable else self._start_positions.get(s.name, 0) for s in streams
            }
        for s in streams:
            acked.setdefault(s.name, self._start_positions.get(s.name, 0))
        return acked

    async def _build_edus(self, destination: str, streams: Sequence[EduStream],
                          since: dict[str, int], upto: dict[str, int], budget: int
                          ) -> tuple[list[JsonDict], dict[str, int]]:
        """The EDUs of each stream after ``since`` up to ``upto``, at most ``budget`` in all;
        and the position each stream was built up to."""
        edus: list[JsonDict] = []
        reached: dict[str, int] = {}
        for stream in streams:
            low, high = since[stream.name], upto.get(stream.name, since[stream.name])
            reached[stream.name] = max(low, high)
            if high <= low:
                continue
            items = list(await stream.edus(destination, low, high))
            room = max(budget - len(edus), 0)
            if len(items) > room:
                # Stop before the first EDU left out; the rest go in the next transaction.
                high = items[room][0] - 1
                items = [item for item in items[:room] if item[0] <= high]
                reached[stream.name] = high
            edus += [edu for _, edu in items]
        return edus, reached

    async def _next_claim(self, destination: str, streams: Sequence[EduStream]
                          ) -> tuple[NextClaim, list[JsonDict], dict[str, int]]:
        """A new transaction's EDUs, built from every stream up to its current position."""
        acked = await self._positions(destination, streams)
        upto = {s.name: s.position() for s in streams}
        edus, reached = await self._build_edus(destination, streams, acked, upto, MAX_EDUS)
        ranges = {s.name: (acked[s.name], reached[s.name]) for s in streams if s.durable}
        spec = NextClaim(ranges, bool(edus), MAX_PDUS, MAX_EDUS - len(edus))
        return spec, edus, reached

    def _transaction(self, destination: str, claim: Claim | None, edus: list[JsonDict],
                     reached: dict[str, int]) -> Transaction | None:
        """The transaction of what was just claimed; when nothing was, the streams' new
        positions held nothing for this destination and are taken as seen."""
        if claim is None:
            self._acked.setdefault(destination, {}).update(reached)
            return None
        self._built[destination] = reached
        return Transaction(claim.txn_id, claim.rows, edus)

    async def _first(self, destination: str, streams: Sequence[EduStream]
                     ) -> Transaction | None:
        """The transaction in flight (resent unchanged: same id, rows and EDU ranges), else a
        new one."""
        inflight = await self.store.inflight(destination)
        if inflight is not None:
            acked = await self._positions(destination, streams)
            # Memory streams built before a restart are gone with it: an empty range. The
            # ranges are rebuilt whole (their EDUs can only have become fewer: a receipt moved
            # on leaves the range), since acknowledging them acknowledges every position.
            upto = {**self._built.get(destination, {}), **inflight.edu_upto}
            edus, reached = await self._build_edus(destination, streams, acked, upto,
                                                   budget=sys.maxsize)
            self._built[destination] = reached
            return Transaction(inflight.txn_id, inflight.rows, edus)
        spec, edus, reached = await self._next_claim(destination, streams)
        if not edus and not await self.store.has_pending(destination):
            return self._transaction(destination, None, edus, reached)  # no commit for nothing
        claim = await self.store.claim(destination, spec)
        return self._transaction(destination, claim, edus, reached)

    async def _acknowledge(self, destination: str, streams: Sequence[EduStream],
                           txn: Transaction) -> Transaction | None:
        """The destination took ``txn``: acknowledge it and claim the next in one commit."""
        self._acked.setdefault(destination, {}).update(self._built.pop(destination, {}))
        spec, edus, reached = await self._next_claim(destination, streams)
        claim = await self.store.acknowledge(destination, txn.txn_id, claim_next=spec)
        return self._transaction(destination, claim, edus, reached)

    async def _worker(self, destination: str) -> None:
        pending = self._pending[destination]
        sender = self._senders.get(destination.split(":", 1)[0])
        if sender is None:
            log.error("no sender for outbox destination %s", destination)
            return
        streams = sender.edu_streams()
        txn: Transaction | None = None
        while True:
            if txn is None:
                pending.clear()
                txn = await self._first(destination, streams)
            if txn is None:
                if not pending.is_set():
                    return  # nothing left: the next wake() starts a new worker
                continue
            await self._wait_for_next_attempt(destination)
            if await sender.send(destination, txn) is Delivery.RETRY:
                delay = await self._failed(destination)
                log.info("delivery of txn %d to %s failed; retry in %.1fs", txn.txn_id,
                         destination, delay)
                continue  # the same transaction, still in flight
            self._retry_states.pop(destination, None)
            pending.clear()
            txn = await self._acknowledge(destination, streams, txn)
            if txn is None and not pending.is_set():
                return  # nothing left and nothing new: the next wake() starts a new worker
