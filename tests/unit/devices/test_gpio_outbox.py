"""devices.gpio.outbox: in order, one at a time, state collapsed to the latest, never stuck."""

import asyncio
from typing import Any

from devices.gpio.outbox import Outbox


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, dict[str, Any]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_on: str | None = None

    async def __call__(self, event_type: str, state_key: str | None,
                       content: dict[str, Any]) -> None:
        await self.gate.wait()
        if event_type == self.fail_on:
            raise RuntimeError("boom")
        self.sent.append((event_type, state_key, content))


async def test_order_and_collapse_while_blocked() -> None:
    rec = Recorder()
    box = Outbox(rec, name="t")
    task = asyncio.create_task(box.run())
    rec.gate.clear()  # edgehs is "down": nothing goes out
    box.put_state("s", "lamp", {"v": 1})
    box.put_event("e", {"n": 1})
    box.put_state("s", "lamp", {"v": 2})
    box.put_state("s", "bell", {"v": 0})
    box.put_event("e", {"n": 2})
    box.put_state("s", "lamp", {"v": 3})
    await asyncio.sleep(0)
    rec.gate.set()
    await asyncio.wait_for(box.drain(), 5)
    assert rec.sent == [("s", "lamp", {"v": 3}), ("e", None, {"n": 1}), ("s", "bell", {"v": 0}),
                        ("e", None, {"n": 2})]
    task.cancel()


async def test_newer_state_while_sending_is_sent_again() -> None:
    rec = Recorder()
    box = Outbox(rec)
    task = asyncio.create_task(box.run())
    rec.gate.clear()
    box.put_state("s", "lamp", {"v": 1})
    await asyncio.sleep(0.01)  # the first send is now in flight, waiting at the gate
    box.put_state("s", "lamp", {"v": 2})
    rec.gate.set()
    await asyncio.wait_for(box.drain(), 5)
    assert rec.sent[-1] == ("s", "lamp", {"v": 2})
    assert len(box) == 0
    task.cancel()


async def test_a_failing_send_is_dropped_not_fatal() -> None:
    rec = Recorder()
    rec.fail_on = "bad"
    box = Outbox(rec)
    task = asyncio.create_task(box.run())
    box.put_event("bad", {})
    box.put_event("good", {})
    await asyncio.wait_for(box.drain(), 5)
    assert rec.sent == [("good", None, {})]
    assert not task.done()
    task.cancel()


async def test_limit_drops_oldest_timeline_event_keeps_state() -> None:
    rec = Recorder()
    box = Outbox(rec, limit=3)
    box.put_state("s", "lamp", {"v": 1})
    box.put_event("e", {"n": 1})
    box.put_event("e", {"n": 2})
    box.put_event("e", {"n": 3})
    assert box.dropped == 1
    task = asyncio.create_task(box.run())
    await asyncio.wait_for(box.drain(), 5)
    assert rec.sent == [("s", "lamp", {"v": 1}), ("e", None, {"n": 2}), ("e", None, {"n": 3})]
    task.cancel()
