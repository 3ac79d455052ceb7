"""Typing notifications, kept in memory only (they are gone in seconds anyway).

https://spec.matrix.org/v1.19/client-server-api/#typing-notifications

Every change bumps the notifier's typing serial, which wakes long-polling /sync requests. A
timer per typing user makes the expiry itself a change, so a client waiting in /sync learns
that someone stopped typing without anyone having to ask.
"""

import asyncio
import time
from collections.abc import Callable

from edgehs.service.notifier import Notifier

MAX_TIMEOUT_MS = 120_000
DEFAULT_TIMEOUT_MS = 30_000


class TypingService:
    def __init__(self, notifier: Notifier, clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.clock = clock
        self._typing: dict[str, dict[str, float]] = {}  # room -> user -> expiry
        self._changed: dict[str, int] = {}  # room -> typing serial of the last change
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}  # (room, user) -> timer

    def set_typing(self, room_id: str, user_id: str, typing: bool,
                   timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
        users = self._typing.setdefault(room_id, {})
        was = user_id in users
        self._cancel_timer(room_id, user_id)
        if typing:
            delay = min(max(timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
            expiry = users[user_id] = self.clock() + delay
            self._start_timer(room_id, user_id, expiry, delay)
        else:
            users.pop(user_id, None)
        if was != typing or typing:
            self._bump(room_id)

    def _start_timer(self, room_id: str, user_id: str, expiry: float, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (plain unit tests): expiry is then noticed on read
            return
        self._timers[(room_id, user_id)] = loop.call_later(
            delay, self._timed_out, room_id, user_id, expiry
        )

    def _cancel_timer(self, room_id: str, user_id: str) -> None:
        handle = self._timers.pop((room_id, user_id), None)
        if handle is not None:
            handle.cancel()

    def _timed_out(self, room_id: str, user_id: str, expiry: float) -> None:
        """The timer of one typing notice fired: drop it (unless renewed since) and notify."""
        self._timers.pop((room_id, user_id), None)
        users = self._typing.get(room_id, {})
        if users.get(user_id) == expiry:
            del users[user_id]
            self._bump(room_id)

    def _bump(self, room_id: str) -> None:
        self.notifier.notify(typing=True)
        self._changed[room_id] = self.notifier.typing_serial
        self.notifier.publish_edu(room_id, {
            "type": "m.typing", "room_id": room_id,
            "content": {"user_ids": sorted(self._typing.get(room_id, {}))},
        })

    def _expire(self, room_id: str) -> None:
        users = self._typing.get(room_id, {})
        now = self.clock()
        expired = [u for u, t in users.items() if t <= now]
        for u in expired:
            del users[u]
            self._cancel_timer(room_id, u)
        if expired:
            self._bump(room_id)

    def typing_users(self, room_id: str) -> list[str]:
        self._expire(room_id)
        return sorted(self._typing.get(room_id, {}))

    def changes(self, since: int, upto: int) -> list[tuple[int, str]]:
        """(serial, room_id) of the rooms whose typing users last changed after ``since`` up to
        ``upto``, in serial order: the typing stream the outbox builds m.typing EDUs from."""
        return sorted((serial, room_id) for room_id, serial in self._changed.items()
                      if since < serial <= upto)

    def changed_since(self, room_id: str, serial: int) -> bool:
        self._expire(room_id)
        return self._changed.get(room_id, 0) > serial

    def close(self) -> None:
        """Cancel the expiry timers (at shutdown)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
