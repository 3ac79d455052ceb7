"""The notifier counts the waits parked on it, so that a long-poll test can wait for the poll
to park instead of sleeping."""

import asyncio

from edgehs.service.notifier import Notifier


async def test_waiting_counts_parked_waits_until_notify() -> None:
    notifier = Notifier()
    assert notifier.waiting == 0
    first = asyncio.create_task(notifier.wait(10))
    second = asyncio.create_task(notifier.wait(10))
    await asyncio.sleep(0)  # both tasks run up to their wait
    assert notifier.waiting == 2
    notifier.notify(1)
    assert notifier.waiting == 0  # woken, even before the tasks resume
    assert await first and await second
    assert notifier.waiting == 0


async def test_a_timed_out_wait_is_no_longer_counted() -> None:
    notifier = Notifier()
    assert not await notifier.wait(0.01)
    assert notifier.waiting == 0


async def test_shutdown_parks_nobody() -> None:
    notifier = Notifier()
    waiter = asyncio.create_task(notifier.wait(10))
    await asyncio.sleep(0)
    assert notifier.waiting == 1
    notifier.shutdown()
    assert await waiter is True
    assert not await notifier.wait(10)  # refused at once: nothing parks
    assert notifier.waiting == 0
