"""The timed scenarios. Each records metrics (and notes on anything odd) into a ServerResult.

World set up once per server (untimed):
- ``conc_clients`` users registered (UIA m.login.dummy) and logged in; user 0 is "main".
- room S (private_chat, main only): gets the sequential sends, later paginated.
- room C (public_chat, all users joined): gets the concurrent sends -- every client writes to
  the SAME room, the contended case (per-room ordering / locking) of a family chat.
- ``sync_rooms - 2`` more rooms of main's with ``sync_room_messages`` messages each, so main's
  initial sync covers ``sync_rooms`` rooms.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp

from bench.client import Client, JsonDict
from bench.model import Params, ServerResult
from bench.stats import median, ms, percentile

LONG_POLL_MS = 30_000
# How long the long-poll gets to reach the server and park before the send starts.
PARK_S = 0.2


@dataclass
class World:
    users: list[Client]
    seq_room: str = ""
    conc_room: str = ""
    extra_rooms: list[str] = field(default_factory=list)
    since: str | None = None

    @property
    def main(self) -> Client:
        return self.users[0]


def sync_filter(params: Params) -> JsonDict:
    """The filter every timed /sync uses: at most ``sync_timeline_limit`` events per room."""
    return {"room": {"timeline": {"limit": params.sync_timeline_limit}}}


def timeline_events(sync: JsonDict) -> Iterator[tuple[str, JsonDict]]:
    for room_id, room in sync.get("rooms", {}).get("join", {}).items():
        for event in room.get("timeline", {}).get("events", []):
            yield room_id, event


async def setup(session: aiohttp.ClientSession, base_url: str, params: Params) -> World:
    """Register + log in the users and create/join rooms S and C (untimed)."""
    tag = uuid.uuid4().hex[:6]
    users = []
    for i in range(max(params.conc_clients, 2)):
        client = Client(session, base_url)
        username, password = f"bench{i}_{tag}", f"bench-pw-{i}-{tag}"
        await client.register(username, password)
        await client.login(username, password)
        users.append(client)
    world = World(users=users)
    world.seq_room = await world.main.create_room("sequential", preset="private_chat")
    world.conc_room = await world.main.create_room("concurrent", preset="public_chat")
    for user in users[1:]:
        await user.join(world.conc_room)
    return world


async def _timed_sends(client: Client, room_id: str, count: int, label: str) -> list[float]:
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        await client.send_text(room_id, f"{label} message {i}")
        latencies.append(time.perf_counter() - started)
    return latencies


async def sequential_send(world: World, params: Params, result: ServerResult) -> None:
    """``seq_messages`` sends into room S, one after another, by one user."""
    started = time.perf_counter()
    latencies = await _timed_sends(world.main, world.seq_room, params.seq_messages, "seq")
    elapsed = time.perf_counter() - started
    result.metrics["seq_rate"] = len(latencies) / elapsed
    result.metrics["seq_p50"] = ms(percentile(latencies, 50))
    result.metrics["seq_p95"] = ms(percentile(latencies, 95))


async def concurrent_send(world: World, params: Params, result: ServerResult) -> None:
    """``conc_clients`` users each send ``conc_messages`` into room C, all at once."""
    clients = world.users[: params.conc_clients]
    started = time.perf_counter()
    per_client = await asyncio.gather(
        *(
            _timed_sends(c, world.conc_room, params.conc_messages, f"conc{i}")
            for i, c in enumerate(clients)
        )
    )
    elapsed = time.perf_counter() - started
    latencies = [x for chunk in per_client for x in chunk]
    result.metrics["conc_rate"] = len(latencies) / elapsed
    result.metrics["conc_p50"] = ms(percentile(latencies, 50))
    result.metrics["conc_p95"] = ms(percentile(latencies, 95))


async def fill_extra_rooms(world: World, params: Params) -> None:
    """Main's remaining rooms for the initial-sync scenario (untimed)."""
    for r in range(params.sync_rooms - 2):
        room_id = await world.main.create_room(f"extra {r}")
        world.extra_rooms.append(room_id)
        for i in range(params.sync_room_messages):
            await world.main.send_text(room_id, f"extra {r} message {i}")


async def initial_sync(world: World, params: Params, result: ServerResult) -> None:
    """``sync_samples`` full initial syncs (no ``since``) of main, filtered; the median."""
    filt = sync_filter(params)
    samples = []
    resp: JsonDict = {}
    for _ in range(params.sync_samples):
        started = time.perf_counter()
        resp = await world.main.sync(sync_filter=filt)
        samples.append(time.perf_counter() - started)
    result.metrics["isync_ms"] = ms(median(samples))
    world.since = str(resp["next_batch"])
    joined = resp.get("rooms", {}).get("join", {})
    if len(joined) != params.sync_rooms:
        result.notes.append(
            f"initial sync listed {len(joined)} joined rooms, {params.sync_rooms} expected"
        )
    longest = max(
        (len(r.get("timeline", {}).get("events", [])) for r in joined.values()), default=0
    )
    if longest > params.sync_timeline_limit:
        result.notes.append(f"initial sync ignored the filter: a timeline had {longest} events")


async def _poll_until(client: Client, since: str, marker: str, filt: JsonDict) -> tuple[float, str]:
    """Long-poll /sync from ``since`` until an event with body ``marker`` arrives.

    Returns (perf_counter when it arrived, the next since token). At most 10 polls.
    """
    for _ in range(10):
        resp = await client.sync(since=since, timeout_ms=LONG_POLL_MS, sync_filter=filt)
        arrived = time.perf_counter()
        since = str(resp["next_batch"])
        for _room, event in timeline_events(resp):
            if event.get("content", {}).get("body") == marker:
                return arrived, since
    raise RuntimeError(f"event {marker!r} never came down /sync after 10 long-polls")


async def sync_wakeup(world: World, params: Params, result: ServerResult) -> None:
    """Main long-polls /sync; user 1 sends into room C; time from send start to poll return."""
    if world.since is None:
        world.since = str((await world.main.sync(sync_filter=sync_filter(params)))["next_batch"])
    filt = sync_filter(params)
    sender = world.users[1]
    samples = []
    for i in range(params.wake_samples):
        marker = f"wake-up {i} {uuid.uuid4().hex[:8]}"
        poll = asyncio.create_task(_poll_until(world.main, world.since, marker, filt))
        await asyncio.sleep(PARK_S)
        if poll.done():  # nothing was sent yet, so this can only be an error: raise it
            poll.result()
        started = time.perf_counter()
        try:
            await sender.send_text(world.conc_room, marker)
            arrived, world.since = await poll
        finally:
            poll.cancel()
        samples.append(arrived - started)
    result.metrics["wake_p50"] = ms(percentile(samples, 50))
    result.metrics["wake_p95"] = ms(percentile(samples, 95))


async def paginate(world: World, params: Params, result: ServerResult) -> None:
    """Walk room S backwards (``dir=b``) ``page_limit`` events a page, from main's latest
    /sync ``next_batch``, following ``end``, until ``page_events`` messages were seen."""
    start_token = world.since
    if start_token is None:
        start_token = str((await world.main.sync(sync_filter=sync_filter(params)))["next_batch"])
    max_pages = math.ceil(params.page_events / params.page_limit) + 5
    token: str | None = start_token
    page_times: list[float] = []
    seen_messages = 0
    started = time.perf_counter()
    while seen_messages < params.page_events and len(page_times) < max_pages:
        page_started = time.perf_counter()
        resp = await world.main.messages(world.seq_room, token, limit=params.page_limit)
        page_times.append(time.perf_counter() - page_started)
        chunk = resp.get("chunk", [])
        seen_messages += sum(1 for e in chunk if e.get("type") == "m.room.message")
        token = resp.get("end")
        if not chunk or token is None:
            break
    total = time.perf_counter() - started
    result.metrics["page_total_ms"] = ms(total)
    result.metrics["page_p50"] = ms(median(page_times))
    expected_pages = math.ceil(params.page_events / params.page_limit)
    if seen_messages < params.page_events or len(page_times) != expected_pages:
        result.notes.append(
            f"pagination saw {seen_messages}/{params.page_events} messages in "
            f"{len(page_times)} pages ({expected_pages} expected)"
        )
