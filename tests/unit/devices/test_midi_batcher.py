"""devices.midi.batcher: order kept, nothing lost, batches bounded, outages survived."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from devices.midi.batcher import Batcher


def item(i: int) -> dict[str, Any]:
    return {"kind": "note", "state": "on", "note": i % 128, "velocity": 1, "channel": 1,
            "midi_ts": 1_700_000_000_000 + i}


class Sink:
    """The batcher's send: records contents; can be held closed (edgehs down) or fail."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.open = asyncio.Event()
        self.open.set()
        self.fail_next = 0
        self.attempts = 0

    async def send(self, content: dict[str, Any]) -> None:
        self.attempts += 1
        await self.open.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("boom")
        self.events.append(content)

    def messages(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in self.events:
            out.extend(event.get("batch", [event]))
        return out


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    yield Sink()


async def running(batcher: Batcher) -> asyncio.Task[None]:
    return asyncio.create_task(batcher.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_window_zero_sends_one_event_per_message(sink: Sink) -> None:
    batcher = Batcher(sink.send, window_ms=0, max_batch=500)
    task = await running(batcher)
    for i in range(50):
        batcher.put(item(i))
    assert await batcher.drain(10)
    await stop(task)
    assert sink.events == [item(i) for i in range(50)]


async def test_lone_message_is_sent_as_single_content(sink: Sink) -> None:
    batcher = Batcher(sink.send, window_ms=5, max_batch=500)
    task = await running(batcher)
    batcher.put(item(1))
    assert await batcher.drain(10)
    await stop(task)
    assert sink.events == [item(1)]


async def test_burst_of_2000_is_batched_in_order_with_nothing_lost(sink: Sink) -> None:
    batcher = Batcher(sink.send, window_ms=20, max_batch=500)
    task = await running(batcher)
    for i in range(2000):
        batcher.put(item(i))
    assert await batcher.drain(10)
    await stop(task)
    assert sink.messages() == [item(i) for i in range(2000)]
    assert len(sink.events) == 4  # all queued before the first send: full batches
    assert all(len(e["batch"]) == 500 for e in sink.events)
    assert (batcher.sent_events, batcher.sent_messages) == (4, 2000)


async def test_batches_stay_under_the_byte_budget(sink: Sink) -> None:
    batcher = Batcher(sink.send, window_ms=20, max_batch=5000, max_bytes=4000)
    task = await running(batcher)
    for i in range(1000):
        batcher.put(item(i))
    assert await batcher.drain(10)
    await stop(task)
    assert sink.messages() == [item(i) for i in range(1000)]
    assert all(len(json.dumps(e, separators=(",", ":"))) <= 4100 for e in sink.events)
    assert len(sink.events) > 20


async def test_outage_keeps_order_and_loses_nothing(sink: Sink) -> None:
    batcher = Batcher(sink.send, window_ms=0, max_batch=1)
    task = await running(batcher)
    sink.open.clear()  # edgehs is down: the first send hangs (the kit retries inside it)
    for i in range(300):
        batcher.put(item(i))
        await asyncio.sleep(0)
    assert not await batcher.drain(0.05)
    assert batcher.pending >= 298
    sink.open.set()
    assert await batcher.drain(10)
    await stop(task)
    assert sink.events == [item(i) for i in range(300)]


async def test_after_an_outage_waiting_messages_go_out_batched(sink: Sink) -> None:
    batcher = Batcher(sink.send, window_ms=20, max_batch=100)
    task = await running(batcher)
    sink.open.clear()
    batcher.put(item(0))
    while sink.attempts == 0:
        await asyncio.sleep(0.001)
    for i in range(1, 251):
        batcher.put(item(i))
    sink.open.set()
    assert await batcher.drain(10)
    await stop(task)
    assert sink.messages() == [item(i) for i in range(251)]
    assert [len(e.get("batch", [e])) for e in sink.events] == [1, 100, 100, 50]


async def test_a_failed_send_is_logged_and_the_loop_goes_on(
        sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    batcher = Batcher(sink.send, window_ms=0, max_batch=1)
    sink.fail_next = 1
    task = await running(batcher)
    for i in range(3):
        batcher.put(item(i))
    assert await batcher.drain(10)
    await stop(task)
    assert sink.events == [item(1), item(2)]
    assert "could not send 1 MIDI message(s)" in caplog.text
