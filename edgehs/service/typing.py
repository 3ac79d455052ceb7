"""Typing notifications, kept in memory only (they are gone in seconds anyway).

https://spec.matrix.org/v1.19/client-server-api/#typing-notifications
"""

import time
from collections.abc import Callable

from edgehs.service.notifier import Notifier

MAX_TIMEOUT_MS = 120_000


class TypingService:
    def __init__(self, notifier: Notifier, clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.clock = clock
        self._typing: dict[str, dict[str, float]] = {}  # room -> user -> expiry
        self._changed: dict[str, int] = {}  # room -> typing serial of the last change

    def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        users = self._typing.setdefault(room_id, {})
        was = user_id in users
        if typing:
            users[user_id] = self.clock() + min(timeout_ms, MAX_TIMEOUT_MS) / 1000
        else:
            users.pop(user_id, None)
        if was != typing or typing:
            self._bump(room_id)

    def _bump(self, room_id: str) -> None:
        self.notifier.notify(typing=True)
        self._changed[room_id] = self.notifier.typing_serial

    def _expire(self, room_id: str) -> None:
        users = self._typing.get(room_id, {})
        now = self.clock()
        expired = [u for u, t in users.items() if t <= now]
        for u in expired:
            del users[u]
        if expired:
            self._bump(room_id)

    def typing_users(self, room_id: str) -> list[str]:
        self._expire(room_id)
        return sorted(self._typing.get(room_id, {}))

    def changed_since(self, room_id: str, serial: int) -> bool:
        self._expire(room_id)
        return self._changed.get(room_id, 0) > serial
