"""Order-keeping batching of MIDI messages into events, with one sender task per port.

Messages are queued as they are parsed. One task drains the queue, so events are sent one at a
time and in order, also while edgehs is down (the send retries, messages wait in the queue, and
come out in the same order when it is back). Each event holds:

- with ``window_ms == 0``: exactly one message (the single-message content);
- otherwise: the first waiting message plus every message that arrives within ``window_ms`` of
  it (or that is already waiting, e.g. after a slow send), up to ``max_batch`` messages and
  ``max_bytes`` of JSON. One message alone is sent as the single-message content, two or more
  as ``{"batch": [...]}``. So a lone note waits ``window_ms`` at most; a burst becomes few events.

Nothing is dropped: the queue is unbounded (a MIDI port cannot outrun memory in practice: a
31250-baud DIN line carries about 1,000 messages/s).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

# The event itself (type, sender, room id, hashes, signatures) adds ~ 1 KB to its content; the
# spec's limit for the whole event is 65536 bytes of canonical JSON.
DEFAULT_MAX_BYTES = 48_000


def _size(item: dict[str, Any]) -> int:
    return len(json.dumps(item, separators=(",", ":"))) + 1


class Batcher:
    """``put`` message contents; ``run`` (one task) sends them as events in order."""

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]], *, window_ms: int,
                 max_batch: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._send = send
        self.window = window_ms / 1000.0
        self.max_batch = max_batch if window_ms > 0 else 1
        self.max_bytes = max_bytes
        self._items: deque[tuple[float, dict[str, Any]]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.sent_events = 0
        self.sent_messages = 0

    @property
    def pending(self) -> int:
        return len(self._items)

    def put(self, item: dict[str, Any]) -> None:
        self._items.append((asyncio.get_running_loop().time(), item))
        self._idle.clear()
        self._wake.set()

    async def _take(self) -> list[dict[str, Any]]:
        """The next event's messages: waits for a first one, then for the window."""
        loop = asyncio.get_running_loop()
        while not self._items:
            self._idle.set()
            self._wake.clear()
            await self._wake.wait()
        first_at, first = self._items.popleft()
        items, size = [first], _size(first)
        deadline = first_at + self.window
        while len(items) < self.max_batch:
            if not self._items:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    break
                continue
            item_size = _size(self._items[0][1])
            if size + item_size > self.max_bytes:
                break
            items.append(self._items.popleft()[1])
            size += item_size
        return items

    async def run(self) -> None:
        """The sender loop (run it as one task); a failed send is logged, never fatal."""
        while True:
            items = await self._take()
            content = items[0] if len(items) == 1 else {"batch": items}
            try:
                await self._send(content)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not send %d MIDI message(s); they are lost", len(items))
            else:
                self.sent_events += 1
                self.sent_messages += len(items)
            if not self._items:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued was sent (True) or ``timeout`` seconds passed."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return not self._items
