"""The notifier: one fan-out after each write.

Writers call ``notify()`` after their transaction committed; long-polling ``/sync`` requests
wait on it. (Outbound deliveries are woken by the write path itself, through the outbox.)
"""

import asyncio
from collections.abc import Callable

from edgehs.types import JsonDict


class Notifier:
    def __init__(self, position: int = 0) -> None:
        self.position = position  # the highest committed stream position
        self.typing_serial = 0  # bumped on every typing change (typing lives in memory)
        self.to_device_position = 0  # the to-device stream (store.to_device), set at start-up
        self._waiters: set[asyncio.Future[None]] = set()
        self._edu_listeners: list[Callable[[str, JsonDict], None]] = []
        self.closing = False

    def notify(self, position: int | None = None, *, typing: bool = False,
               to_device: int | None = None) -> None:
        if position is not None and position > self.position:
            self.position = position
        if to_device is not None and to_device > self.to_device_position:
            self.to_device_position = to_device
        if typing:
            self.typing_serial += 1
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    @property
    def waiting(self) -> int:
        """How many waits are parked now (long-polls waiting for the next notify)."""
        return sum(1 for fut in self._waiters if not fut.done())

    def add_edu_listener(self, callback: Callable[[str, JsonDict], None]) -> None:
        """``callback(room_id, edu)`` runs for every typing change and public receipt."""
        self._edu_listeners.append(callback)

    def publish_edu(self, room_id: str, edu: JsonDict) -> None:
        for callback in self._edu_listeners:
            callback(room_id, edu)

    def shutdown(self) -> None:
        """Release every waiter now and refuse new waits: the server is stopping."""
        self.closing = True
        self.notify()

    async def wait(self, timeout: float) -> bool:
        """Wait for the next notify; False on timeout or when shutting down."""
        if self.closing:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(fut)
