"""The ordered send queue of one board room.

Everything a board publishes goes through here, one request at a time, in order, so a slow or
restarting edgehs never reorders events and never blocks reading the pins. The kit's client
retries connection errors forever, so while edgehs is down the queue just grows; a device's
state events that pile up meanwhile collapse into the latest one (state is "the current value"),
while timeline events (edges, answers) are all kept, up to ``limit``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from devices.common.intent import HomeserverError

log = logging.getLogger(__name__)

Sender = Callable[[str, "str | None", dict[str, Any]], Awaitable[object]]


class Outbox:
    def __init__(self, send: Sender, *, name: str = "", limit: int = 10_000) -> None:
        """``send(event_type, state_key, content)``; state_key None = a timeline event."""
        self._send = send
        self.name = name
        self.limit = limit
        self._ops: deque[tuple[str, str | None, dict[str, Any] | None]] = deque()
        self._latest: dict[tuple[str, str], dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.dropped = 0
        self.sent = 0

    def __len__(self) -> int:
        return len(self._ops)

    def put_state(self, event_type: str, state_key: str, content: dict[str, Any]) -> None:
        key = (event_type, state_key)
        if key not in self._latest:
            self._ops.append((event_type, state_key, None))
        self._latest[key] = content
        self._kick()

    def put_event(self, event_type: str, content: dict[str, Any]) -> None:
        if len(self._ops) >= self.limit:
            for i, (_t, state_key, _c) in enumerate(self._ops):
                if state_key is None:
                    del self._ops[i]
                    self.dropped += 1
                    log.warning("outbox %s full: dropped the oldest timeline event",
                                self.name)
                    break
        self._ops.append((event_type, None, content))
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Wait until everything queued so far has been sent (or given up on)."""
        await self._idle.wait()

    async def run(self) -> None:
        """Send forever (cancel to stop)."""
        while True:
            if not self._ops:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            event_type, state_key, content = self._ops[0]
            if state_key is not None:
                content = self._latest[(event_type, state_key)]
            assert content is not None
            try:
                await self._send(event_type, state_key, content)
                self.sent += 1
            except asyncio.CancelledError:
                raise
            except HomeserverError as exc:  # a 4xx: sending it again would not help
                log.error("outbox %s: edgehs refused %s (%s): %s; dropped", self.name,
                          event_type, state_key, exc)
            except Exception:
                log.exception("outbox %s: could not send %s (%s); dropped", self.name,
                              event_type, state_key)
            self._ops.popleft()
            if state_key is not None and self._latest.get((event_type, state_key)) is content:
                del self._latest[(event_type, state_key)]
            elif state_key is not None:
                # a newer value came in while sending: send it again, after what is queued
                self._ops.append((event_type, state_key, None))
